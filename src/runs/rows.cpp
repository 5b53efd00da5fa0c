// The rows a run adds to the study database: pruned matrices, comparisons, activation
// histograms and thresholds (sparsa/runs.h).
#include "sparsa/runs.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace sparsa {

// ---- rows ----

PrunedCounts pruned_counts(const Mask& m) {
  PrunedCounts c{std::vector<int64_t>(static_cast<size_t>(m.rows), 0), std::vector<int64_t>(static_cast<size_t>(m.cols), 0), 0};
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t col = 0; col < m.cols; ++col)
      if (m.at(r, col)) {
        ++c.per_row[static_cast<size_t>(r)];
        ++c.per_col[static_cast<size_t>(col)];
      }
  for (int64_t n : c.per_row) c.total += n;
  return c;
}

PrunedCounts pruned_counts(const BitMatrix& b) {
  PrunedCounts c{std::vector<int64_t>(static_cast<size_t>(b.rows()), 0),
                 std::vector<int64_t>(static_cast<size_t>(b.cols()), 0), 0};
  for (int64_t r = 0; r < b.rows(); ++r) {
    const uint64_t* words = b.row(r);
    for (int64_t w = 0; w < b.words_per_row(); ++w)
      for (uint64_t bits = words[w]; bits != 0; bits &= bits - 1) {
        const int64_t col = w * 64 + std::countr_zero(bits);
        if (col >= b.cols()) break;
        ++c.per_row[static_cast<size_t>(r)];
        ++c.per_col[static_cast<size_t>(col)];
      }
  }
  for (int64_t n : c.per_row) c.total += n;
  return c;
}

namespace {

// One FeatureMetric per feature: pruned count and kept fraction of a row / column of `length`.
std::vector<FeatureMetric> own_features(const std::vector<int64_t>& pruned, int64_t length) {
  std::vector<FeatureMetric> out(pruned.size());
  for (size_t i = 0; i < pruned.size(); ++i) {
    out[i].feature = static_cast<int64_t>(i);
    out[i].pruned = pruned[i];
    out[i].kept_fraction = 1.0 - static_cast<double>(pruned[i]) / static_cast<double>(length);
  }
  return out;
}

// One row per feature of a comparison: [features] metrics -> FeatureMetric.
std::vector<FeatureMetric> compared_features(const FeatureMetrics& f, int64_t length) {
  std::vector<FeatureMetric> out(f.jaccard.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].feature = static_cast<int64_t>(i);
    out[i].pruned = std::llround(f.sparsity_a[i] * static_cast<double>(length));
    out[i].kept_fraction = 1.0 - f.sparsity_a[i];
    out[i].jaccard = f.jaccard[i];
    out[i].hamming = f.hamming[i];
    if (!f.cosine.empty() && std::isfinite(f.cosine[i])) out[i].cosine = f.cosine[i];
  }
  return out;
}

}  // namespace

void add_pruned_matrix_rows(RunWriter& w, const std::string& hf_name, int64_t rows, int64_t cols,
                            const PrunedCounts& counts, double seconds) {
  w.add_matrix({hf_name, rows, cols, static_cast<double>(counts.total) / static_cast<double>(rows * cols), seconds});
  w.add_feature_metrics({hf_name, FeatureAxis::kRow}, own_features(counts.per_row, cols));
  w.add_feature_metrics({hf_name, FeatureAxis::kCol}, own_features(counts.per_col, rows));
}

void add_prune_rows(RunWriter& w, const PruneResult& r) {
  for (const LinearPruneResult& l : r.linears)
    add_pruned_matrix_rows(w, l.name, l.mask.rows, l.mask.cols, pruned_counts(l.mask), l.seconds);
}

void add_comparison_rows(RunWriter& w, const MaskSetComparison& c, int64_t run_a, int64_t run_b) {
  std::vector<ComparisonRow> rows;
  for (const MatrixComparison& mc : c.matrices) {
    ComparisonRow r;
    r.run_a = run_a;
    r.run_b = run_b;
    r.hf_name = mc.name;
    r.jaccard = mc.counts.jaccard();
    r.hamming = mc.counts.hamming();
    if (mc.cosine && std::isfinite(*mc.cosine)) r.cosine = *mc.cosine;
    r.sparsity_a = mc.counts.sparsity_a();
    r.sparsity_b = mc.counts.sparsity_b();
    rows.push_back(r);
    w.add_feature_metrics({mc.name, FeatureAxis::kRow, run_a, run_b}, compared_features(mc.per_row, mc.cols));
    w.add_feature_metrics({mc.name, FeatureAxis::kCol, run_a, run_b}, compared_features(mc.per_col, mc.rows));
  }
  w.add_comparisons(rows);
}

// Re-bins the fine log-spaced magnitude histogram into linear signed bins over ±R, each fine bin
// going to the coarse bin of its midpoint; values beyond ±R fold into the edge bins.
CoarseHistogram coarsen(const ActivationHistogram& h) {
  constexpr double kRange = 0.999;  // the bins span ±(this quantile of |x|)
  double range = h.threshold(kRange);
  if (!(range > 0)) range = 1.0;
  CoarseHistogram c;
  c.counts.assign(kCoarseHistogramBins, 0);
  for (int64_t i = 0; i <= kCoarseHistogramBins; ++i)
    c.edges.push_back(-range + 2.0 * range * static_cast<double>(i) / static_cast<double>(kCoarseHistogramBins));
  const auto& counts = h.counts();  // [2, kBinsPerSign]: x >= +0, then x <= -0
  for (int sign = 0; sign < 2; ++sign) {
    for (int64_t b = 0; b < ActivationHistogram::kBinsPerSign; ++b) {
      const uint64_t n = counts[static_cast<size_t>(sign * ActivationHistogram::kBinsPerSign + b)];
      if (n == 0) continue;
      const double lo = ActivationHistogram::bin_lower(b), hi = ActivationHistogram::bin_upper(b);
      const double mid = std::isfinite(hi) ? 0.5 * (lo + hi) : lo;
      const double x = sign == 0 ? mid : -mid;
      const auto idx = static_cast<int64_t>(std::floor((x + range) / (2.0 * range) * kCoarseHistogramBins));
      c.counts[static_cast<size_t>(std::clamp<int64_t>(idx, 0, kCoarseHistogramBins - 1))] += static_cast<int64_t>(n);
    }
  }
  return c;
}

void add_act_histogram_rows(RunWriter& w, const ActivationProfile& profile) {
  for (int64_t l = 0; l < profile.n_layers; ++l)
    for (int p = 0; p < kNumObsPoints; ++p) {
      const CoarseHistogram c = coarsen(profile.at(l, static_cast<ObsPoint>(p)));
      w.add_act_histogram(l, static_cast<ObsPoint>(p), c.edges, c.counts);
    }
}

void add_act_threshold_rows(RunWriter& w, const ActivationThresholds& t) {
  std::vector<ActThresholdRow> rows;
  for (size_t l = 0; l < t.t.size(); ++l)
    for (int p = 0; p < kNumObsPoints; ++p)
      rows.push_back({static_cast<int64_t>(l), static_cast<ObsPoint>(p), t.sparsity, t.t[l][static_cast<size_t>(p)]});
  w.add_act_thresholds(rows);
}

}  // namespace sparsa
