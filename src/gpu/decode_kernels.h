// src/gpu/decode_kernels.h — launchers of the GPU decoder's kernels (private to src/gpu). Each
// enqueues on `stream` (a cudaStream_t) and checks the launch; arguments are valid here (the
// decoder checked them). The position `pos` and the tokens are device memory, so a captured
// graph replays correctly at every position. Defined in decode_kernels.cu and
// decode_attention.cu.
#pragma once

#include <cstdint>

#include "cuda/launch.h"

namespace sparsa::gpu {

// Element type of the device weights and the KV cache.
enum class DecodeElem : uint8_t { kF32, kBf16, kF16 };

// ---- decode_kernels.cu ----

// x [d] = table[tokens[*pos], :] widened to fp32. table: [vocab, d] of `e`.
void launch_decode_embed(const void* table, DecodeElem e, const int32_t* tokens, const int32_t* pos, float* x,
                         int64_t d, void* stream);

// x [d] += delta [d] (skipped when delta is null), then y [d] = x / sqrt(mean(x²) + eps) * w [d]
// (the CPU rmsnorm's expression). One block.
void launch_residual_rmsnorm(float* x, const float* delta, const float* w, float* y, int64_t d, float eps,
                             void* stream);

// qkv [q_dim + 2 kv_dim] = q | k | v of the token at position *pos: RoPE (HF rotate_half, the
// CPU rope's angles pos · inv_freq) on q in place and on k, then k and v stored (rounded to `e`)
// in row *pos of k_cache and v_cache [max_seq, kv_dim].
void launch_rope_append(float* qkv, void* k_cache, void* v_cache, DecodeElem e, const int32_t* pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, const cuda::RopeFreqs& freqs, void* stream);

// out [n_heads * head_dim] = single-query grouped attention of q [n_heads * head_dim] over cache
// rows 0..*pos (head h reads KV head h / (n_heads / n_kv_heads)), softmax(q·k / sqrt(head_dim)).
// Each head is one cluster of blocks that split the keys and merge their partial softmaxes
// through distributed shared memory. *pos < max_seq <= kDecodeMaxSeq.
void launch_decode_attention(const float* q, const void* k_cache, const void* v_cache, DecodeElem e,
                             const int32_t* pos, float* out, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                             int64_t max_seq, void* stream);

// The greedy step's end: best = argmax(logits [vocab]) (first index on ties); tokens[*pos + 1] =
// best unless position *pos + 1 is still in the prompt (*pos + 1 < *prompt_len); then ++*pos.
// One block.
void launch_argmax_advance(const float* logits, int64_t vocab, int32_t* tokens, int32_t* pos,
                           const int32_t* prompt_len, void* stream);

// data [n] of `e` = stddev · N(0, 1) from a counter-based hash of (seed, index): deterministic for
// any launch shape.
void launch_fill_normal(void* data, DecodeElem e, int64_t n, uint64_t seed, float stddev, void* stream);

}  // namespace sparsa::gpu
