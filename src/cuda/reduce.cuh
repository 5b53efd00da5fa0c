// src/cuda/reduce.cuh — block-wide reductions for the ops' kernels (private to src/cuda .cu files).
#pragma once

namespace sparsa::cuda {

inline constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ inline float warp_add(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Reduces v over a block of kThreads (a multiple of 32) with op; every thread gets the result.
// `scratch` is shared memory of kThreads / 32 floats; the call synchronises the block twice.
template <int kThreads, bool kMax>
__device__ float block_reduce(float v, float* scratch) {
  v = kMax ? warp_max(v) : warp_add(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < kThreads / 32 ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  r = kMax ? warp_max(r) : warp_add(r);
  __syncthreads();  // scratch may be reused by the next call
  return r;
}

}  // namespace sparsa::cuda
