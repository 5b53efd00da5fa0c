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

// Error(kBadInput) unless temperature is finite and >= 0 and top_p is in [0, 1].
void check_generate_options(const GenerateOptions& opt);

// Picks the next token from logits [vocab >= 1] as configured: always an id in [0, vocab), the
// same one for the same logits, options and rng state. Greedy needs no rng. -inf logits are never
// picked (unless sampling at temperature 0 finds nothing larger); +inf logits share all of the
// probability. top_p keeps the smallest set of most likely tokens whose probability reaches
// top_p, at least one (top_p 0 keeps the most likely). Error(kBadInput) for options
// check_generate_options refuses; Error(kRuntime) for a NaN logit or when every logit is -inf.
int32_t sample_token(const float* logits, int64_t vocab, const GenerateOptions& opt, std::mt19937_64& rng);

// The llama2.c loop: position by position, the prompt's tokens are forced and later ones are
// sampled, until `steps` positions or the stop token. `on_token(prev, next)` sees every token
// after the first (prompt tokens included), in order, as it is decided. Returns all tokens.
// `prompt` must be non-empty; throws Error(kBadInput) when it is longer than the context.
// `obs` (optional) sees every block's four points of each step's forward pass, which runs over the
// whole prefix [tokens so far, d_model] (no KV cache): the new token is the last row.
std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                              const std::function<void(int32_t prev, int32_t next)>& on_token, Observer* obs = nullptr);

}  // namespace sparsa
