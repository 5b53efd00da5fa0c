// Internal to src/model: the negative log-likelihood of one token under one row of logits, the
// one computation behind perplexity() and the task scores (sparsa/tasks.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/vec_math.h"

namespace sparsa {

// -log softmax(row)[token] for row [vocab], in double: max + log Σ e^(x - max) - x[token].
inline double token_nll(const float* row, int64_t vocab, int32_t token) {
  float mx = row[0];
  for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, row[j]);
  const float sum = sum_exp(row, vocab, mx, 1.0f, nullptr);
  return static_cast<double>(mx) + std::log(static_cast<double>(sum)) - static_cast<double>(row[token]);
}

}  // namespace sparsa
