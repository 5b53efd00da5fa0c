// src/cuda/launch.h — the kernel launchers behind the *_cuda ops (private to src/cuda).
//
// ops_cuda.cpp validates arguments (with the library's error helpers) and calls these; each is
// defined in the .cu file of its kernel, enqueues on the default stream (or on `stream`, a
// cudaStream_t, where a launcher takes one) and checks the launch.
// Arguments are already valid here: sizes > 0 and within the grid limits.
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// x, y: [n_tokens, dim]; weight: [dim]. y may alias x.
void launch_rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps);

// gate, up, out: [n]. out may alias gate.
void launch_silu_mul(const float* gate, const float* up, float* out, int64_t n, void* stream = nullptr);

inline constexpr int64_t kRopeMaxHalf = 256;  // = kRopeMaxHeadDim / 2 (sparsa/cuda.h)

// The per-pair inverse frequencies of rope, passed to the kernel by value.
struct RopeFreqs {
  float inv_freq[kRopeMaxHalf];  // [head_dim / 2]
};

// inv_freq[i] = 1 / theta^(2i / head_dim), the CPU rope's expression (host code, defined in
// ops_cuda.cpp, so the values are bit-identical to the CPU's). head_dim / 2 <= kRopeMaxHalf.
RopeFreqs rope_freqs(int64_t head_dim, float theta);

// x: [n_tokens, n_heads, head_dim], positions: [n_tokens]; head_dim / 2 <= kRopeMaxHalf. In place.
void launch_rope(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                 const RopeFreqs& freqs);

}  // namespace sparsa::cuda
