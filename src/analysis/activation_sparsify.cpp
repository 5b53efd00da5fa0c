// The observers that sparsify activations (|x| <= t -> 0 at every point of every block).
#include <cmath>

#include "sparsa/activations.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

float threshold_at(const ActivationThresholds& t, int64_t layer, ObsPoint point) {
  SPARSA_ASSERT(layer >= 0 && layer < static_cast<int64_t>(t.t.size()));
  return t.t[static_cast<size_t>(layer)][static_cast<size_t>(point)];
}

// x[i] = 0 where |x[i]| <= t. [n]
void zero_inactive(float* x, int64_t n, float t) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = std::fabs(x[i]) <= t ? 0.0f : x[i];
}

}  // namespace

void ActivationSparsifier::observe(int64_t layer, ObsPoint point, float* x, int64_t n_tokens, int64_t dim) {
  zero_inactive(x, n_tokens * dim, threshold_at(t_, layer, point));
}

DecodeSparsifier::DecodeSparsifier(ActivationThresholds t)
    : t_(std::move(t)), zeroed_(t_.t.size(), std::array<int64_t, kNumObsPoints>{}), seen_(zeroed_) {}

void DecodeSparsifier::observe(int64_t layer, ObsPoint point, float* x, int64_t n_tokens, int64_t dim) {
  const float t = threshold_at(t_, layer, point);
  const float* last = x + (n_tokens - 1) * dim;  // [dim] the step's new token
  int64_t zeroed = 0;
  for (int64_t i = 0; i < dim; ++i) zeroed += std::fabs(last[i]) <= t ? 1 : 0;
  zeroed_[static_cast<size_t>(layer)][static_cast<size_t>(point)] += zeroed;
  seen_[static_cast<size_t>(layer)][static_cast<size_t>(point)] += dim;
  if (layer == 0 && point == ObsPoint::kAttnIn) ++steps_;
  zero_inactive(x, n_tokens * dim, t);
}

std::vector<std::array<double, kNumObsPoints>> DecodeSparsifier::inactive_fractions() const {
  std::vector<std::array<double, kNumObsPoints>> f(zeroed_.size());
  for (size_t l = 0; l < f.size(); ++l)
    for (size_t p = 0; p < kNumObsPoints; ++p)
      f[l][p] = seen_[l][p] ? static_cast<double>(zeroed_[l][p]) / static_cast<double>(seen_[l][p]) : 0.0;
  return f;
}

}  // namespace sparsa
