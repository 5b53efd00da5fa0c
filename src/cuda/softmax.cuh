// src/cuda/softmax.cuh — the causal softmax of the GPU attention (op: softmax.cu).
// CPU reference: the softmax inside sparsa's CPU attention (src/model/attention.cpp,
// causal_softmax_rows); test-gpu-ops checks the launcher against the same expression.
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// What a query row may see and how its scores are shaped (sparsa::AttentionOptions' meaning).
struct CausalSoftmaxOptions {
  float scale = 1.0f;    // the scores are multiplied by it
  int64_t window = 0;    // > 0: the query at position i sees keys i - window < j <= i; 0: all j <= i
  float softcap = 0.0f;  // > 0: s -> softcap · tanh(s · scale / softcap) before the softmax
};

// scores: [n_rows, seqlen] fp32, row r is query position r % seqlen; writes p [n_rows, seqlen]
// (fp32 when half_out is false, else bf16 (half_bf16) or fp16): softmax over the visible keys of
// scores shaped by `o`, zero for the others. One block per row; default stream.
void launch_causal_softmax(const float* scores, void* p, int64_t n_rows, int64_t seqlen, const CausalSoftmaxOptions& o,
                           bool half_out, bool half_bf16);

}  // namespace sparsa::cuda
