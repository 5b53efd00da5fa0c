// src/cuda/softmax.cuh — the causal softmax of the GPU attention (op: softmax.cu).
// CPU reference: the softmax inside sparsa's CPU attention (src/model/ops.cpp); test-gpu-ops
// checks the launcher against the same expression.
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// scores: [n_rows, seqlen] fp32, row r is query position r % seqlen; writes p [n_rows, seqlen]
// (fp32 when half_out is false, else bf16 (half_bf16) or fp16): softmax over keys 0..pos of
// scores * scale, zero for later keys. One block per row; default stream.
void launch_causal_softmax(const float* scores, void* p, int64_t n_rows, int64_t seqlen, float scale,
                           bool half_out, bool half_bf16);

}  // namespace sparsa::cuda
