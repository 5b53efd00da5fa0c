// sparsa/generate.h — autoregressive text generation with a Model (CPU).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "sparsa/model.h"

namespace sparsa {

struct GenerateOptions {
  int64_t steps = 256;        // forward positions, prompt included (llama2.c's -n); capped at the context
  float temperature = 0.0f;   // 0: greedy (argmax, first index on ties)
  float top_p = 1.0f;         // nucleus sampling when < 1 and temperature > 0
  uint64_t seed = 0;
  int32_t stop_token = -1;    // generation ends when this token is produced (-1: never)
};

// Picks the next token from logits [vocab] as configured. Greedy needs no rng.
int32_t sample_token(const float* logits, int64_t vocab, const GenerateOptions& opt, std::mt19937_64& rng);

// The llama2.c loop: position by position, the prompt's tokens are forced and later ones are
// sampled, until `steps` positions or the stop token. `on_token(prev, next)` sees every token
// after the first (prompt tokens included), in order, as it is decided. Returns all tokens.
// `prompt` must be non-empty; throws Error(kBadInput) when it is longer than the context.
std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                              const std::function<void(int32_t prev, int32_t next)>& on_token);

}  // namespace sparsa
