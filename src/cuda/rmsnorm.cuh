// src/cuda/rmsnorm.cuh — RMSNorm, alone or fused with the residual add before it (op:
// rmsnorm.cu). CPU reference: sparsa::rmsnorm (sparsa/ops.h) — after x += delta for the fused
// form. The public face is sparsa::rmsnorm_cuda (sparsa/cuda.h).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// y = x / sqrt(mean(x²) + eps) * weight per row (the CPU expression; fp32 sums of squares).
// x, y: [n_tokens, dim]; weight: [dim]. y may alias x. Enqueues on `stream` (a cudaStream_t;
// nullptr: the default stream); 256 threads per row.
void launch_rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps,
                    void* stream = nullptr);

// The decoder's fused form: x += delta (skipped when delta is null; x is the residual stream and
// keeps the sum), then y = rmsnorm(x) * weight. x, delta, y: [n_tokens, dim]; y aliases neither x
// nor delta. 1024 threads per row (the decoder's single token). Enqueues on `stream`.
void launch_residual_rmsnorm(float* x, const float* delta, const float* weight, float* y, int64_t n_tokens,
                             int64_t dim, float eps, void* stream);

}  // namespace sparsa::cuda
