// src/cuda/gelu_tanh_mul.cuh — the gated tanh-GELU of Gemma's MLP (GeGLU; op: gelu_tanh_mul.cu).
// CPU reference: sparsa::gelu_tanh_mul (sparsa/ops.h).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// out[i] = 0.5 g (1 + tanh(sqrt(2/π) (g + 0.044715 g³))) · up[i], g = gate[i]. gate, up, out: [n];
// out may alias gate or up. Default stream.
void launch_gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n);

}  // namespace sparsa::cuda
