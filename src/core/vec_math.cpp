#include "core/vec_math.h"

#include "core/multiversion.h"

namespace sparsa {

SPARSA_MULTIVERSION float sum_exp(const float* x, int64_t n, float shift, float scale, float* terms) {
  constexpr int kLanes = 16;
  float lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const float e = fast_exp((x[j + l] - shift) * scale);
      if (terms) terms[j + l] = e;
      lane[l] += e;
    }
  }
  for (int l = 0; j < n; ++j, ++l) {
    const float e = fast_exp((x[j] - shift) * scale);
    if (terms) terms[j] = e;
    lane[l] += e;
  }
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += lane[l];
  return sum;
}

}  // namespace sparsa
