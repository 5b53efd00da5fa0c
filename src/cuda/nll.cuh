// src/cuda/nll.cuh — per-token negative log-likelihood for GPU perplexity (op: nll.cu).
// CPU reference: the NLL of sparsa::perplexity (src/model); test-gpu-ops checks the launcher
// against the same expression.
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// logits: [n, vocab]; targets: [n] (valid ids) -> nll[t] = logsumexp(logits[t]) -
// logits[t, targets[t]], in double from the fp32 max and sum; with `greedy` [n] also
// greedy[t] = 1 when targets[t] is the row's argmax (its first index on ties, as numpy and the
// task scores' row_argmax_is), else 0. One block per row; default stream.
void launch_row_nll(const float* logits, const int32_t* targets, double* nll, int64_t n, int64_t vocab,
                    uint8_t* greedy = nullptr);

}  // namespace sparsa::cuda
