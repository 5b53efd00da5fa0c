#include "sparsa/generate.h"

#include <algorithm>
#include <cmath>
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

}  // namespace

int32_t sample_token(const float* logits, int64_t vocab, const GenerateOptions& opt, std::mt19937_64& rng) {
  if (opt.temperature <= 0.0f) return argmax(logits, vocab);
  std::vector<double> p(static_cast<size_t>(vocab));
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += p[i] = std::exp((logits[i] - mx) / opt.temperature);
  for (auto& v : p) v /= sum;
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = vocab;
  if (opt.top_p < 1.0f) {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    double cum = 0;
    for (keep = 0; keep < vocab && cum < opt.top_p; ++keep) cum += p[order[keep]];
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
                              const std::function<void(int32_t, int32_t)>& on_token) {
  if (prompt.empty()) bad_input("generate needs at least one prompt token");
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
      for (int64_t l = 0; l < m.config.num_layers; ++l) block_forward(m, l, x, buf);
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
