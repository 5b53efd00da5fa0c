#include "prune/input_stats.h"

#include <cblas.h>

#include <algorithm>

namespace sparsa {

void SampleStats::compute(const InputStatsConfig& cfg, const float* x, int64_t n_tokens, int64_t dim) {
  if (cfg.sqnorm) {
    sqnorm.assign(static_cast<size_t>(dim), 0.0f);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* row = x + t * dim;
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) sqnorm[j] += row[j] * row[j];
    }
  }
  if (cfg.hessian) {
    if (xtx.numel() != static_cast<size_t>(dim * dim)) xtx = Tensor({dim, dim});
    // xtx = Xᵀ X (upper triangle): X is [n_tokens, dim] row-major.
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(dim), static_cast<int>(n_tokens), 1.0f, x,
                static_cast<int>(dim), 0.0f, xtx.ptr(), static_cast<int>(dim));
  }
}

InputStats::InputStats(const InputStatsConfig& cfg, int64_t dim) : cfg_(cfg), dim_(dim) {
  if (cfg.sqnorm) sqnorm_sum_.assign(static_cast<size_t>(dim), 0.0);
  if (cfg.hessian) xtx_sum_.assign(static_cast<size_t>(dim * dim), 0.0f);
}

void InputStats::merge(const SampleStats& s) {
  ++samples_;
  if (cfg_.sqnorm)
    for (int64_t j = 0; j < dim_; ++j) sqnorm_sum_[j] += s.sqnorm[j];
  if (cfg_.hessian)
    for (int64_t i = 0; i < dim_; ++i) {
      const float* src = s.xtx.ptr() + i * dim_;
      float* dst = xtx_sum_.data() + i * dim_;
#pragma omp simd
      for (int64_t j = i; j < dim_; ++j) dst[j] += src[j];
    }
}

std::vector<float> InputStats::mean_sqnorm() const {
  std::vector<float> out(static_cast<size_t>(dim_));
  for (int64_t j = 0; j < dim_; ++j) out[j] = static_cast<float>(sqnorm_sum_[j] / static_cast<double>(samples_));
  return out;
}

Tensor InputStats::hessian() const {
  Tensor h({dim_, dim_});
  const float scale = 2.0f / static_cast<float>(samples_);
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = i; j < dim_; ++j) h.data[i * dim_ + j] = h.data[j * dim_ + i] = xtx_sum_[i * dim_ + j] * scale;
  return h;
}

}  // namespace sparsa
