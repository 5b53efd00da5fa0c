// src/cuda/silu_mul.cuh — the gated SiLU of the MLP (op: silu_mul.cu). CPU reference:
// sparsa::silu_mul (sparsa/ops.h). The public face is sparsa::silu_mul_cuda (sparsa/cuda.h).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// out[i] = gate[i] / (1 + exp(-gate[i])) * up[i]. gate, up, out: [n]; out may alias gate.
// Vectorised when all three are 16-byte aligned. Enqueues on `stream` (a cudaStream_t; nullptr:
// the default stream).
void launch_silu_mul(const float* gate, const float* up, float* out, int64_t n, void* stream = nullptr);

}  // namespace sparsa::cuda
