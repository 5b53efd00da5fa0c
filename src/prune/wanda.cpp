// Wanda: |W| scaled by the input's per-feature L2 norm, compared within each output row.
#include <cmath>

#include "prune/select.h"
#include "sparsa/error.h"
#include "sparsa/prune.h"

namespace sparsa {

Mask wanda_mask(const Tensor& w, const std::vector<float>& act_sqnorm, const SparsityTarget& t) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  SPARSA_ASSERT(static_cast<int64_t>(act_sqnorm.size()) == cols);
  check_finite_scores(w.ptr(), w.numel(), cols, "Wanda: the weight");
  if (const int64_t j = first_non_finite(act_sqnorm.data(), act_sqnorm.size()); j >= 0)
    runtime_failure("Wanda: the calibration activations' squared norm of input feature {} is {}: the activations "
                    "overflow", j, act_sqnorm[static_cast<size_t>(j)]);
  std::vector<float> norm(static_cast<size_t>(cols));  // [in]
  for (int64_t j = 0; j < cols; ++j) norm[j] = std::sqrt(act_sqnorm[j]);
  std::vector<float> score(w.numel());  // [rows, cols]
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) score[r * cols + j] = std::fabs(w.data[r * cols + j]) * norm[j];
  if (t.is_nm()) return nm_mask_from_scores(score.data(), rows, cols, t.n, t.m);
  return row_lowest_mask(score.data(), rows, cols, ratio_count(cols, t.ratio));
}

}  // namespace sparsa
