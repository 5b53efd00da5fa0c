// The sums-of-squares kernels behind cuda/sqsum.cuh: per-feature statistics (Wanda's input norms).
#include "cuda/cuda_check.h"
#include "cuda/half.cuh"
#include "cuda/sqsum.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;

// grid (ceil(cols / kThreads), n_slices): thread = one column of one slice of tokens.
template <typename T>
__global__ void __launch_bounds__(kThreads)
slice_sqsum_kernel(const T* __restrict__ x, float* __restrict__ partial, int64_t n_tokens, int64_t cols) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (c >= cols) return;
  const int64_t t0 = blockIdx.y * kSqsumSlice;
  const int64_t t1 = t0 + kSqsumSlice < n_tokens ? t0 + kSqsumSlice : n_tokens;
  float s = 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    const float v = as_float(x[t * cols + c]);
    s += v * v;
  }
  partial[blockIdx.y * cols + c] = s;
}

__global__ void __launch_bounds__(kThreads)
merge_slices_kernel(const float* __restrict__ partial, double* acc, int64_t n_slices, int64_t cols) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (c >= cols) return;
  double s = acc[c];
  for (int64_t k = 0; k < n_slices; ++k) s += static_cast<double>(partial[k * cols + c]);
  acc[c] = s;
}

__global__ void mean_sqrt_kernel(const double* __restrict__ acc, float* __restrict__ out, int64_t cols,
                                 int64_t samples) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
  if (c < cols) out[c] = sqrtf(static_cast<float>(acc[c] / static_cast<double>(samples)));
}

}  // namespace

void launch_col_sqsum(const float* x32, const void* x_half, bool half_bf16, double* acc, float* partial,
                      int64_t n_tokens, int64_t cols) {
  const int64_t n_slices = (n_tokens + kSqsumSlice - 1) / kSqsumSlice;
  const dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(n_slices));
  if (x32)
    slice_sqsum_kernel<<<grid, kThreads>>>(x32, partial, n_tokens, cols);
  else if (half_bf16)
    slice_sqsum_kernel<<<grid, kThreads>>>(static_cast<const __nv_bfloat16*>(x_half), partial, n_tokens, cols);
  else
    slice_sqsum_kernel<<<grid, kThreads>>>(static_cast<const __half*>(x_half), partial, n_tokens, cols);
  SPARSA_CUDA_CHECK_LAUNCH();
  merge_slices_kernel<<<grid.x, kThreads>>>(partial, acc, n_slices, cols);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_mean_sqrt(const double* acc, float* out, int64_t cols, int64_t samples) {
  mean_sqrt_kernel<<<static_cast<unsigned>((cols + kThreads - 1) / kThreads), kThreads>>>(acc, out, cols, samples);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
