// Statistics of the inputs at one observation point over calibration samples (internal).
//
// Per sample X [n_tokens, dim]: Wanda needs Σ_tokens x_j^2 per feature, SparseGPT XᵀX. A
// sample's contribution is computed on its own (in any thread), then merged in sample order,
// so the totals do not depend on the thread count or batching.
#pragma once

#include <cstdint>
#include <vector>

#include "sparsa/tensor.h"

namespace sparsa {

struct InputStatsConfig {
  bool sqnorm = false;   // Wanda
  bool hessian = false;  // SparseGPT
};

// One sample's contribution (thread-local scratch).
struct SampleStats {
  std::vector<float> sqnorm;  // [dim]
  Tensor xtx;                 // [dim, dim], upper triangle valid
  void compute(const InputStatsConfig& cfg, const float* x, int64_t n_tokens, int64_t dim);
};

class InputStats {
 public:
  InputStats(const InputStatsConfig& cfg, int64_t dim);
  void merge(const SampleStats& s);
  int64_t samples() const { return samples_; }
  // mean over samples of Σ_tokens x_j^2: Wanda's scaler_row. [dim]
  std::vector<float> mean_sqnorm() const;
  // (2 / samples) Σ XᵀX, symmetric: SparseGPT's H. [dim, dim]
  Tensor hessian() const;

 private:
  InputStatsConfig cfg_;
  int64_t dim_, samples_ = 0;
  std::vector<double> sqnorm_sum_;  // [dim]
  std::vector<float> xtx_sum_;      // [dim, dim] upper triangle
};

}  // namespace sparsa
