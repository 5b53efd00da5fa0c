// src/cuda/argmax.cuh — the greedy decoding step's end (op: argmax.cu). CPU reference: the
// greedy choice of sparsa::generate at temperature 0 (first index of the maximum).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// best = argmax(logits [vocab]) (the first index on ties; NaN never wins, all NaN gives 0);
// tokens[*pos + 1] = best unless position *pos + 1 is still in the prompt (*pos + 1 <
// *prompt_len); then ++*pos. tokens, pos and prompt_len are device memory. One block; enqueues on
// `stream` (a cudaStream_t).
void launch_argmax_advance(const float* logits, int64_t vocab, int32_t* tokens, int32_t* pos,
                           const int32_t* prompt_len, void* stream);

}  // namespace sparsa::cuda
