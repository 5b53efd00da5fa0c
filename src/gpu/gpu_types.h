// src/gpu/gpu_types.h — cuBLAS data types of the GPU precisions (private to src/gpu, host-only).
#pragma once

#include <library_types.h>

#include "sparsa/gpu.h"

namespace sparsa::gpu {

inline bool is_half(GpuPrecision p) { return p != GpuPrecision::kFp32; }
inline bool is_bf16(GpuPrecision p) { return p == GpuPrecision::kBf16; }
inline size_t element_bytes(GpuPrecision p) { return is_half(p) ? 2 : 4; }
inline cudaDataType_t cuda_type(GpuPrecision p) {
  switch (p) {
    case GpuPrecision::kFp32: return CUDA_R_32F;
    case GpuPrecision::kBf16: return CUDA_R_16BF;
    case GpuPrecision::kFp16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

}  // namespace sparsa::gpu
