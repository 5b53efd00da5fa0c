// The selection kernels behind cuda/wanda_select.cuh: per output row, the k lowest of |w| * norm (unstructured) or
// the n lowest of every m (N:M), ties towards the lower column as a stable sort orders them.
//
// Unstructured: one block per row finds the k-th smallest score by a 4-pass radix select over
// the score's bits (non-negative floats order like their bit patterns), then marks every
// score below it and, among those equal to it, the first ones in column order (a block scan).
#include <cub/block/block_scan.cuh>

#include "cuda/cuda_check.h"
#include "cuda/wanda_select.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 512;

__device__ inline uint32_t score_bits(const float* w, const float* norm, int64_t c) {
  return __float_as_uint(fabsf(w[c]) * norm[c]);  // the CPU's expression: |w| * sqrt(sqnorm)
}

__global__ void __launch_bounds__(kThreads)
row_lowest_kernel(const float* __restrict__ w, const float* __restrict__ norm, uint8_t* __restrict__ mask,
                  int64_t cols, int64_t k) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int hist[256];
  __shared__ uint32_t s_prefix;
  __shared__ int64_t s_rank;
  const float* wr = w + static_cast<int64_t>(blockIdx.x) * cols;
  uint8_t* mr = mask + static_cast<int64_t>(blockIdx.x) * cols;

  // Radix select of the k-th smallest (1-based rank k) bit pattern, 8 bits per pass.
  uint32_t prefix = 0, known = 0;
  int64_t rank = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
    __syncthreads();
    for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
      const uint32_t b = score_bits(wr, norm, c);
      if ((b & known) == prefix) atomicAdd(&hist[(b >> shift) & 255u], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t below = 0;
      int d = 0;
      while (below + hist[d] < rank) below += hist[d++];
      s_prefix = prefix | (static_cast<uint32_t>(d) << shift);
      s_rank = rank - below;
    }
    __syncthreads();
    prefix = s_prefix;
    rank = s_rank;
    known |= 255u << shift;
    __syncthreads();
  }
  // prefix = the k-th smallest pattern; `rank` of the columns equal to it are pruned, first first.
  int64_t equal_seen = 0;
  for (int64_t base = 0; base < cols; base += kThreads) {
    const int64_t c = base + threadIdx.x;
    const uint32_t b = c < cols ? score_bits(wr, norm, c) : 0xffffffffu;
    const int eq = c < cols && b == prefix;
    int before = 0, total = 0;
    Scan(scan_storage).ExclusiveSum(eq, before, total);
    if (c < cols) mr[c] = b < prefix || (eq && equal_seen + before < rank);
    equal_seen += total;
    __syncthreads();
  }
}

// One thread per (row, group of m columns).
__global__ void nm_lowest_kernel(const float* __restrict__ w, const float* __restrict__ norm,
                                 uint8_t* __restrict__ mask, int64_t rows, int64_t cols, int n, int m) {
  const int64_t groups = (cols + m - 1) / m;
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= rows * groups) return;
  const int64_t r = g / groups, c0 = (g % groups) * m;
  const int width = static_cast<int>(cols - c0 < m ? cols - c0 : m);
  const int keep_n = n < width ? n : width;
  const float* wr = w + r * cols;
  for (int a = 0; a < width; ++a) {
    const float sa = fabsf(wr[c0 + a]) * norm[c0 + a];
    int lower = 0;  // scores ordered before a in a stable ascending sort
    for (int b = 0; b < width; ++b) {
      const float sb = fabsf(wr[c0 + b]) * norm[c0 + b];
      lower += sb < sa || (sb == sa && b < a);
    }
    mask[r * cols + c0 + a] = lower < keep_n;
  }
}

}  // namespace

void launch_row_lowest(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols, int64_t k) {
  if (k == 0) {
    SPARSA_CUDA_CHECK(cudaMemset(mask, 0, static_cast<size_t>(rows * cols)));
    return;
  }
  row_lowest_kernel<<<static_cast<unsigned>(rows), kThreads>>>(w, norm, mask, cols, k);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_nm_lowest(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols, int n, int m) {
  const int64_t items = rows * ((cols + m - 1) / m);
  nm_lowest_kernel<<<static_cast<unsigned>((items + 255) / 256), 256>>>(w, norm, mask, rows, cols, n, m);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
