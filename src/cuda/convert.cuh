// src/cuda/convert.cuh — fp32 <-> bf16 / fp16 conversion (op: convert.cu).
// CPU reference: sparsa's host conversions (sparsa/tensor.h: float_to_bf16 / float_to_f16 and
// back), round to nearest even. The public face is sparsa::to_half_cuda (sparsa/cuda.h).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// y[i] = half(x[i]) (round to nearest even). x: [n] fp32, y: [n] bf16 (half_bf16) or fp16.
// `stream`: a cudaStream_t (nullptr: the default stream).
void launch_to_half(const float* x, void* y, int64_t n, bool half_bf16, void* stream = nullptr);
// y[i] = float(x[i]) (exact). x: [n] bf16/fp16, y: [n] fp32. Default stream.
void launch_from_half(const void* x, float* y, int64_t n, bool half_bf16);

}  // namespace sparsa::cuda
