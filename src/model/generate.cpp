#include "sparsa/generate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "sparsa/error.h"

namespace sparsa {
namespace {

int32_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

// Error(kRuntime) when no token can be chosen: a NaN logit (the model's outputs are not numbers),
// or every logit -inf.
void check_logits(const float* logits, int64_t vocab) {
  bool any = false;
  for (int64_t i = 0; i < vocab; ++i) {
    if (std::isnan(logits[i])) runtime_failure("sampling: logit {} of {} is NaN; the model's outputs are not numbers", i, vocab);
    any = any || logits[i] > -std::numeric_limits<float>::infinity();
  }
  if (!any) runtime_failure("sampling: every one of the {} logits is -inf; no token can be chosen", vocab);
}

// exp((logits - max) / temperature) [vocab], unnormalised; with +inf logits, 1 for each of them
// and 0 for the rest (the limit of the softmax).
std::vector<double> softmax_weights(const float* logits, int64_t vocab, float temperature) {
  std::vector<double> p(static_cast<size_t>(vocab));
  const float mx = *std::max_element(logits, logits + vocab);
  const bool infinite = std::isinf(mx);
  for (int64_t i = 0; i < vocab; ++i)
    p[i] = infinite ? (logits[i] == mx ? 1.0 : 0.0) : std::exp((logits[i] - mx) / temperature);
  return p;
}

}  // namespace

void check_generate_options(const GenerateOptions& opt) {
  if (!std::isfinite(opt.temperature) || opt.temperature < 0.0f)
    bad_input("temperature must be a finite number >= 0, got {}", opt.temperature);
  if (!(opt.top_p >= 0.0f && opt.top_p <= 1.0f)) bad_input("top-p must be in [0, 1], got {}", opt.top_p);
}

int32_t sample_token(const float* logits, int64_t vocab, const GenerateOptions& opt, std::mt19937_64& rng) {
  check_generate_options(opt);
  if (vocab < 1) bad_input("sampling needs at least one logit, got {}", vocab);
  check_logits(logits, vocab);
  if (opt.temperature == 0.0f) return argmax(logits, vocab);
  std::vector<double> p = softmax_weights(logits, vocab, opt.temperature);
  double sum = 0;
  for (double v : p) sum += v;
  for (auto& v : p) v /= sum;
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = vocab;
  if (opt.top_p < 1.0f) {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    double cum = 0;
    for (keep = 0; keep < vocab && cum < opt.top_p; ++keep) cum += p[order[keep]];
    keep = std::max<int64_t>(keep, 1);  // top-p 0 (or below the first probability) keeps the most likely
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[order[i]];
  double r = std::uniform_real_distribution<double>(0.0, total)(rng);
  for (int64_t i = 0; i < keep; ++i) {
    r -= p[order[i]];
    if (r <= 0) return order[i];
  }
  return order[keep - 1];
}

std::vector<int32_t> generate(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                              const std::function<void(int32_t, int32_t)>& on_token, Observer* obs) {
  if (prompt.empty()) bad_input("generate needs at least one prompt token");
  check_generate_options(opt);
  const int64_t steps = std::min<int64_t>(opt.steps, m.config.max_position);
  if (static_cast<int64_t>(prompt.size()) > m.config.max_position)
    bad_input("the prompt has {} tokens, more than the model's context of {}", prompt.size(), m.config.max_position);
  std::mt19937_64 rng(opt.seed);
  std::vector<int32_t> tokens{prompt[0]};
  ForwardBuffers buf;
  Tensor x, logits;
  const auto n_prompt = static_cast<int64_t>(prompt.size());
  for (int64_t pos = 0; pos < steps; ++pos) {
    int32_t next;
    if (pos + 1 < n_prompt) {
      next = prompt[static_cast<size_t>(pos + 1)];
    } else {
      // Only the last position's logits are needed: run the blocks, then the head on one row.
      embed_tokens(m, tokens.data(), static_cast<int64_t>(tokens.size()), x);
      for (int64_t l = 0; l < m.config.num_layers; ++l) block_forward(m, l, x, buf, obs);
      Tensor last({1, m.config.hidden_size});
      std::copy_n(x.ptr() + (x.dim(0) - 1) * m.config.hidden_size, m.config.hidden_size, last.ptr());
      lm_logits(m, last, logits, buf);
      next = sample_token(logits.ptr(), m.config.vocab_size, opt, rng);
    }
    if (next == opt.stop_token) break;
    on_token(tokens.back(), next);
    tokens.push_back(next);
  }
  return tokens;
}

}  // namespace sparsa
