// src/cuda/layernorm.cuh — LayerNorm over rows, with an optional bias (op: layernorm.cu): OPT's
// norm. CPU reference: sparsa::layernorm (sparsa/ops.h).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias per row (the CPU expression: fp32 sums,
// the biased variance). x, y: [n_tokens, dim]; weight, bias: [dim]; bias may be null; y may alias
// x. One block of 256 threads per row; default stream.
void launch_layernorm(const float* x, const float* weight, const float* bias, float* y, int64_t n_tokens, int64_t dim,
                      float eps);

}  // namespace sparsa::cuda
