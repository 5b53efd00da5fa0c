// The SparseGPT kernels behind cuda/sparsegpt.cuh: Hessian preparation, the block scores for the unstructured threshold,
// and the fused column-block update that replaces the reference's 128 launches per block.
//
// The fused kernel gives each row to one warp: rows are independent inside a column block (each
// row's updates read only its own weights and the shared Hinv block), so a warp keeps its row's
// block in shared memory and walks the columns in order with no global synchronisation.
#include <cub/device/device_radix_sort.cuh>

#include "cuda/cuda_check.h"
#include "cuda/launch_util.cuh"
#include "cuda/sparsegpt.cuh"
#include "cuda/reduce.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = 8;  // rows per block of the fused kernel
constexpr int kMaxBlock = kSparseGptMaxBlock;

// w[:, j] = 0 where h[j, j] == 0 (before the diagonal is fixed).
__global__ void zero_dead_columns_kernel(const float* __restrict__ h, float* w, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i % cols;
    if (h[c * cols + c] == 0.0f) w[i] = 0.0f;
  }
}

// One block: dead diagonal entries become 1, then every diagonal entry gets percdamp * mean.
__global__ void __launch_bounds__(1024) dampen_kernel(float* h, int64_t cols, float percdamp) {
  __shared__ float scratch[1024 / 32];
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += 1024) {
    float& d = h[j * cols + j];
    if (d == 0.0f) d = 1.0f;
    s += d;
  }
  s = block_reduce<1024, false>(s, scratch);
  const float damp = percdamp * (s / static_cast<float>(cols));
  for (int64_t j = threadIdx.x; j < cols; j += 1024) h[j * cols + j] += damp;
}

__global__ void zero_lower_kernel(float* h, int64_t n) {
  const int64_t total = n * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (i % n < i / n) h[i] = 0.0f;
}

__device__ inline float block_score(float w, float d) { return w * w / (d * d); }  // the CPU's expression

__global__ void block_scores_kernel(const float* __restrict__ w, const float* __restrict__ hinv, float* score,
                                    int64_t rows, int64_t cols, int64_t i1, int64_t count) {
  const int64_t n = rows * count;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / count, c = i % count;
    score[i] = block_score(w[r * cols + i1 + c], hinv[(i1 + c) * cols + i1 + c]);
  }
}

// Shared memory: Hinv1 [count, count], then per warp its row [kMaxBlock] and mask [kMaxBlock].
size_t block_smem_bytes(int64_t count) {
  return static_cast<size_t>(count * count) * sizeof(float) + kWarps * kMaxBlock * (sizeof(float) + 1);
}

template <bool kNM>
__global__ void __launch_bounds__(kWarps * 32)
sparsegpt_block_kernel(float* w, const float* __restrict__ hinv, uint8_t* __restrict__ mask, float* __restrict__ err,
                       int64_t rows, int64_t cols, int64_t i1, int count, float thresh, int n, int m) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* h = smem;                                      // Hinv1 [count, count]
  float* row = smem + count * count + warp * kMaxBlock;  // this warp's W1 row [count]
  uint8_t* pruned = reinterpret_cast<uint8_t*>(smem + count * count + kWarps * kMaxBlock) + warp * kMaxBlock;
  for (int i = threadIdx.x; i < count * count; i += kWarps * 32)
    h[i] = hinv[(i1 + i / count) * cols + i1 + i % count];
  __syncthreads();
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= rows) return;  // no block-wide synchronisation follows
  float* wr = w + r * cols + i1;
  for (int c = lane; c < count; c += 32) {
    row[c] = wr[c];
    if (!kNM) pruned[c] = block_score(row[c], h[c * count + c]) <= thresh;
  }
  __syncwarp();
  for (int i = 0; i < count; ++i) {
    if (kNM && i % m == 0) {  // the row's n lowest of the next m (already updated) weights
      const int width = count - i < m ? count - i : m;
      const int keep = n < width ? n : width;
      for (int a = lane; a < width; a += 32) {
        const float sa = block_score(row[i + a], h[(i + a) * count + i + a]);
        int lower = 0;
        for (int b = 0; b < width; ++b) {
          const float sb = block_score(row[i + b], h[(i + b) * count + i + b]);
          lower += sb < sa || (sb == sa && b < a);
        }
        pruned[i + a] = lower < keep;
      }
      __syncwarp();
    }
    const float wv = row[i];
    const float q = pruned[i] ? 0.0f : wv;
    const float e = (wv - q) / h[i * count + i];
    __syncwarp();  // every lane has read row[i]
    for (int c = i + lane; c < count; c += 32) row[c] = c == i ? q : row[c] - e * h[i * count + c];
    if (lane == 0) err[r * count + i] = e;
    __syncwarp();
  }
  for (int c = lane; c < count; c += 32) {
    wr[c] = row[c];
    mask[r * cols + i1 + c] = pruned[c];
  }
}

unsigned grid_for(int64_t n) { return grid_stride_blocks(n, kThreads, 65535 * 32); }

}  // namespace

void launch_sparsegpt_prepare(float* h, float* w, int64_t rows, int64_t cols, float percdamp) {
  zero_dead_columns_kernel<<<grid_for(rows * cols), kThreads>>>(h, w, rows, cols);
  SPARSA_CUDA_CHECK_LAUNCH();
  dampen_kernel<<<1, 1024>>>(h, cols, percdamp);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_zero_lower(float* h, int64_t n) {
  zero_lower_kernel<<<grid_for(n * n), kThreads>>>(h, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_block_scores(const float* w, const float* hinv, float* score, int64_t rows, int64_t cols, int64_t i1,
                         int64_t count) {
  block_scores_kernel<<<grid_for(rows * count), kThreads>>>(w, hinv, score, rows, cols, i1, count);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_sparsegpt_block(float* w, const float* hinv, uint8_t* mask, float* err, int64_t rows, int64_t cols,
                            int64_t i1, int64_t count, float thresh, int n, int m) {
  const size_t smem = block_smem_bytes(count);
  const auto grid = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
  static const bool configured = [] {  // opt in to more than 48 KB of shared memory, once
    const auto most = static_cast<int>(block_smem_bytes(kMaxBlock));
    SPARSA_CUDA_CHECK(cudaFuncSetAttribute(sparsegpt_block_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, most));
    SPARSA_CUDA_CHECK(cudaFuncSetAttribute(sparsegpt_block_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, most));
    return true;
  }();
  (void)configured;
  const int c = static_cast<int>(count);
  if (m > 0)
    sparsegpt_block_kernel<true><<<grid, kWarps * 32, smem>>>(w, hinv, mask, err, rows, cols, i1, c, thresh, n, m);
  else
    sparsegpt_block_kernel<false><<<grid, kWarps * 32, smem>>>(w, hinv, mask, err, rows, cols, i1, c, thresh, n, m);
  SPARSA_CUDA_CHECK_LAUNCH();
}

size_t kth_smallest_temp_bytes(int64_t n) {
  size_t bytes = 0;
  SPARSA_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, bytes, static_cast<const float*>(nullptr),
                                                   static_cast<float*>(nullptr), static_cast<int>(n)));
  return bytes;
}

float kth_smallest_device(const float* values, float* sorted, void* temp, size_t temp_bytes, int64_t n, int64_t k) {
  SPARSA_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp, temp_bytes, values, sorted, static_cast<int>(n)));
  float v = 0.0f;
  SPARSA_CUDA_CHECK(cudaMemcpy(&v, sorted + k, sizeof(float), cudaMemcpyDeviceToHost));
  return v;
}

}  // namespace sparsa::cuda
