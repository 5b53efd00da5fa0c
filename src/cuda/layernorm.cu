// The layernorm kernel behind cuda/layernorm.cuh; the CPU reference is sparsa::layernorm.
// One block per row: a block reduction for the mean, a second over the squared deviations, then
// every thread writes its strided slice. Each thread reads back only the elements it wrote, so y
// may alias x.
#include "cuda/cuda_check.h"
#include "cuda/layernorm.cuh"
#include "cuda/reduce.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;

// x, y: [n_tokens, dim]; weight, bias: [dim] (bias may be null). grid = n_tokens blocks.
__global__ void __launch_bounds__(kThreads)
layernorm_kernel(const float* x, const float* __restrict__ weight, const float* __restrict__ bias, float* y,
                 int64_t dim, float eps) {
  __shared__ float scratch[kThreads / 32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * dim;
  const float* xr = x + row;
  float* yr = y + row;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) sum += xr[i];
  const float mean = block_reduce<kThreads, false>(sum, scratch) / static_cast<float>(dim);
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) ss += (xr[i] - mean) * (xr[i] - mean);
  ss = block_reduce<kThreads, false>(ss, scratch);
  const float scale = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads)
    yr[i] = (xr[i] - mean) * scale * weight[i] + (bias != nullptr ? bias[i] : 0.0f);
}

}  // namespace

void launch_layernorm(const float* x, const float* weight, const float* bias, float* y, int64_t n_tokens, int64_t dim,
                      float eps) {
  layernorm_kernel<<<static_cast<unsigned>(n_tokens), kThreads>>>(x, weight, bias, y, dim, eps);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
