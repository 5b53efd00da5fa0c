// src/cuda/rope.cuh — rotary position embedding, HF "rotate_half" layout (op: rope.cu): in place
// over many tokens (the forward pass), or fused with the KV-cache append for the decoder's one
// token. CPU reference: sparsa::rope (sparsa/ops.h) — and a row copy into the cache for the
// fused form. The public face is sparsa::rope_cuda (sparsa/cuda.h).
#pragma once

#include <cstdint>

#include "cuda/elem.h"

namespace sparsa::cuda {

inline constexpr int64_t kRopeMaxHalf = 256;  // = kRopeMaxHeadDim / 2 (sparsa/cuda.h)

// The per-pair inverse frequencies of rope, passed to the kernels by value.
struct RopeFreqs {
  float inv_freq[kRopeMaxHalf];  // [head_dim / 2]
};

// inv_freq[i] = 1 / theta^(2i / head_dim), the CPU rope's expression (host code, defined in
// ops_cuda.cpp, so the values are bit-identical to the CPU's). head_dim / 2 <= kRopeMaxHalf.
RopeFreqs rope_freqs(int64_t head_dim, float theta);

// x: [n_tokens, n_heads, head_dim], positions: [n_tokens] (device); head_dim / 2 <= kRopeMaxHalf,
// head_dim even. In place; default stream.
void launch_rope(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                 const RopeFreqs& freqs);

// The decoder's token at position *pos (device memory, so a captured graph serves every
// position): qkv [q_dim + 2 kv_dim] = q | k | v; RoPE on q in place and on k, then k and v stored
// (rounded to `e`) in row *pos of k_cache and v_cache [max_seq, kv_dim]. q_dim = n_heads ·
// head_dim, kv_dim = n_kv_heads · head_dim. Enqueues on `stream` (a cudaStream_t).
void launch_rope_append(float* qkv, void* k_cache, void* v_cache, Elem e, const int32_t* pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, const RopeFreqs& freqs, void* stream);

}  // namespace sparsa::cuda
