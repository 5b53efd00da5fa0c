// src/cuda/decode_attention.cuh — single-query grouped attention over a KV cache, the GPU
// decoder's attention (op: decode_attention.cu). CPU reference: the attention of sparsa's CPU
// forward for one query (src/model); test-gpu-ops checks it against that expression.
#pragma once

#include <cstdint>

#include "cuda/elem.h"

namespace sparsa::cuda {

// out [n_heads * head_dim] = softmax(q·k / sqrt(head_dim)) · v of q [n_heads * head_dim] over cache
// rows first..*pos of k_cache, v_cache [max_seq, n_kv_heads * head_dim] of `e` (head h reads KV head
// h / (n_heads / n_kv_heads)); first = 0, or with a sliding window (window > 0) max(0, *pos + 1 -
// window): the query at i sees the keys j with i - window < j <= i, as the CPU forward's sliding
// layers. *pos (device memory) < max_seq <= sparsa::kDecodeMaxSeq
// (a block keeps its scores in shared memory). Each
// head is one cluster of blocks that split the keys and merge their partial softmaxes through
// distributed shared memory. Enqueues on `stream` (a cudaStream_t).
void launch_decode_attention(const float* q, const void* k_cache, const void* v_cache, Elem e, const int32_t* pos,
                             float* out, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t max_seq,
                             int64_t window, void* stream);

}  // namespace sparsa::cuda
