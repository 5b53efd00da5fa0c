// The rmsnorm kernel behind cuda/rmsnorm.cuh; the CPU reference is sparsa::rmsnorm.
// One block per row: each thread sums the squares of a strided slice (adding the residual delta
// first in the fused form), the block reduces (cuda/reduce.cuh), then every thread scales its
// slice. All fp32. Each thread reads back only the elements it wrote, so y may alias x.
#include "cuda/cuda_check.h"
#include "cuda/reduce.cuh"
#include "cuda/rmsnorm.cuh"

#include <cstdint>

namespace sparsa::cuda {
namespace {

constexpr int kRowThreads = 256;     // many rows (the forward pass): 8 warps per row
constexpr int kSingleThreads = 1024; // the decoder's one row of a few thousand

// x, y: [n_tokens, dim]; weight: [dim]; delta: [n_tokens, dim] or null. grid = n_tokens blocks.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
rmsnorm_kernel(float* x, const float* __restrict__ delta, const float* __restrict__ weight, float* y, int64_t dim,
               float eps) {
  __shared__ float scratch[kThreads / 32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * dim;
  float* xr = x + row;
  float* yr = y + row;

  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    float v = xr[i];
    if (delta != nullptr) xr[i] = v = v + delta[row + i];
    ss += v * v;
  }
  ss = block_reduce<kThreads, false>(ss, scratch);

  // Same expression as the CPU reference (IEEE sqrt and division).
  const float scale = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) yr[i] = xr[i] * scale * weight[i];
}

}  // namespace

void launch_rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps,
                    void* stream) {
  // x is only read when delta is null.
  rmsnorm_kernel<kRowThreads><<<static_cast<unsigned>(n_tokens), kRowThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      const_cast<float*>(x), nullptr, weight, y, dim, eps);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_residual_rmsnorm(float* x, const float* delta, const float* weight, float* y, int64_t n_tokens,
                             int64_t dim, float eps, void* stream) {
  rmsnorm_kernel<kSingleThreads>
      <<<static_cast<unsigned>(n_tokens), kSingleThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, delta, weight, y,
                                                                                                   dim, eps);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
