// The rmsnorm kernel behind sparsa::rmsnorm_cuda; the CPU reference is sparsa::rmsnorm.
// One block per row: each thread sums the squares of a strided slice, warps reduce with shuffles,
// warp 0 reduces the per-warp partials, then every thread scales its slice. All fp32.
#include "cuda/cuda_check.h"
#include "cuda/launch.h"

#include <cstdint>

namespace sparsa::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kThreads = 256;  // per block (one row): 8 warps
constexpr int kWarps = kThreads / kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ float warp_sum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// Sum of `v` over the block; every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float partials[kWarps];  // [kWarps]
  __shared__ float total;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) partials[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = warp_sum(lane < kWarps ? partials[lane] : 0.0f);
    if (lane == 0) total = v;
  }
  __syncthreads();
  return total;
}

// x, y: [n_tokens, dim]; weight: [dim]; grid = n_tokens blocks of kThreads.
// y may alias x: each thread reads and writes only its own elements.
__global__ void __launch_bounds__(kThreads)
rmsnorm_kernel(const float* x, const float* __restrict__ weight, float* y, int64_t dim, float eps) {
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * dim;

  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) ss += xr[i] * xr[i];
  ss = block_sum(ss);

  // Same expression as the CPU reference (IEEE sqrt and division).
  const float scale = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) yr[i] = xr[i] * scale * weight[i];
}

}  // namespace

void launch_rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps) {
  rmsnorm_kernel<<<static_cast<unsigned>(n_tokens), kThreads>>>(x, weight, y, dim, eps);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
