// The observer that sparsifies activations: |x| <= t -> 0 at every point of every block.
#include <cmath>

#include "sparsa/activations.h"
#include "sparsa/error.h"

namespace sparsa {

void ActivationSparsifier::observe(int64_t layer, ObsPoint point, float* x, int64_t n_tokens, int64_t dim) {
  SPARSA_ASSERT(layer >= 0 && layer < static_cast<int64_t>(t_.t.size()));
  const float t = t_.t[static_cast<size_t>(layer)][static_cast<size_t>(point)];
  const int64_t n = n_tokens * dim;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = std::fabs(x[i]) <= t ? 0.0f : x[i];
}

}  // namespace sparsa
