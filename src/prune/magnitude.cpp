// Magnitude pruning, as the Wanda repository's prune_magnitude.
#include <cmath>

#include "prune/select.h"
#include "sparsa/prune.h"

namespace sparsa {

Mask magnitude_mask(const Tensor& w, const SparsityTarget& t) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  check_finite_scores(w.ptr(), w.numel(), cols, "magnitude: the weight");
  std::vector<float> mag(w.numel());  // [rows, cols]
  for (size_t i = 0; i < mag.size(); ++i) mag[i] = std::fabs(w.data[i]);
  if (t.is_nm()) return nm_mask_from_scores(mag.data(), rows, cols, t.n, t.m);
  const int64_t k = ratio_count(static_cast<int64_t>(mag.size()), t.ratio);
  const float thresh = kth_smallest(mag, k);
  Mask mask(rows, cols);
  for (size_t i = 0; i < mag.size(); ++i) mask.pruned[i] = mag[i] <= thresh;
  return mask;
}

}  // namespace sparsa
