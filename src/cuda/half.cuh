// src/cuda/half.cuh — fp32 <-> bf16 / fp16 conversions for the ops' kernels (private to src/cuda
// .cu files): as_float widens any of the three exactly; from_float<T> rounds to nearest even.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sparsa::cuda {

__device__ inline float as_float(float v) { return v; }
__device__ inline float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float as_float(__half v) { return __half2float(v); }

template <typename T>
__device__ T from_float(float v);
template <>
__device__ inline float from_float<float>(float v) { return v; }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ inline __half from_float<__half>(float v) { return __float2half_rn(v); }

}  // namespace sparsa::cuda
