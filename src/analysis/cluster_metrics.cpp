// Cluster quality (pairwise Hamming within / between clusters), the adjusted Rand index, and
// repeated k-means runs with their aggregate statistics.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "analysis/coactivation_common.h"
#include "sparsa/coactivation.h"

namespace sparsa {
namespace {

double pairs(double n) { return n * (n - 1) / 2; }

}  // namespace

ClusterQuality cluster_quality(const BitMatrix& m, std::span<const int32_t> labels, int k) {
  coact::check_matrix(m, "cluster quality");
  if (static_cast<int64_t>(labels.size()) != m.rows())
    bad_input("cluster quality: {} labels for {} features", labels.size(), m.rows());
  if (k < 1) bad_input("cluster quality: k = {} must be at least 1", k);
  const int64_t n = m.rows(), cols = m.cols();
  ClusterQuality q;
  q.sizes.assign(static_cast<size_t>(k), 0);
  std::vector<int64_t> count(static_cast<size_t>(k * cols), 0);  // [k, cols]
  for (int64_t i = 0; i < n; ++i) {
    const int32_t l = labels[i];
    if (l < 0 || l >= k) bad_input("cluster quality: label {} of feature {} is outside [0, {})", l, i, k);
    ++q.sizes[l];
    for (int64_t w = 0; w < m.words_per_row(); ++w)
      for (uint64_t bits = m.row(i)[w]; bits; bits &= bits - 1) ++count[l * cols + w * 64 + std::countr_zero(bits)];
  }
  // A column contributes count * (size - count) differing pairs inside a cluster, and
  // total * (n - total) over all pairs.
  double within_sum = 0, all_sum = 0, within_pairs = 0;
  for (int64_t j = 0; j < cols; ++j) {
    int64_t total = 0;
    for (int64_t l = 0; l < k; ++l) {
      const int64_t c = count[l * cols + j];
      within_sum += static_cast<double>(c * (q.sizes[l] - c));
      total += c;
    }
    all_sum += static_cast<double>(total * (n - total));
  }
  for (int64_t l = 0; l < k; ++l) within_pairs += pairs(static_cast<double>(q.sizes[l]));
  const double between_pairs = pairs(static_cast<double>(n)) - within_pairs;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  q.within = within_pairs > 0 ? within_sum / within_pairs / static_cast<double>(cols) : nan;
  q.between = between_pairs > 0 ? (all_sum - within_sum) / between_pairs / static_cast<double>(cols) : nan;
  q.separation = q.within == 0 ? std::numeric_limits<double>::infinity() : q.between / q.within;
  return q;
}

double adjusted_rand_index(std::span<const int32_t> a, std::span<const int32_t> b) {
  if (a.size() != b.size()) bad_input("adjusted Rand index: labelings of {} and {} items", a.size(), b.size());
  if (a.empty()) bad_input("adjusted Rand index: no items");
  std::map<std::pair<int32_t, int32_t>, int64_t> cells;
  std::map<int32_t, int64_t> rows, cols;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] < 0 || b[i] < 0) bad_input("adjusted Rand index: negative label at item {}", i);
    ++cells[{a[i], b[i]}], ++rows[a[i]], ++cols[b[i]];
  }
  double index = 0, sum_a = 0, sum_b = 0;
  for (const auto& [key, c] : cells) index += pairs(static_cast<double>(c));
  for (const auto& [key, c] : rows) sum_a += pairs(static_cast<double>(c));
  for (const auto& [key, c] : cols) sum_b += pairs(static_cast<double>(c));
  const double expected = sum_a * sum_b / pairs(static_cast<double>(a.size()));
  const double best = (sum_a + sum_b) / 2;
  if (best == expected) return 1.0;  // both trivial: one cluster each, or all singletons
  return (index - expected) / (best - expected);
}

Summary summarize(std::span<const double> values) {
  if (values.empty()) bad_input("summary: no values");
  Summary s;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.stddev = std::sqrt(sq / static_cast<double>(values.size()));
  return s;
}

KMeansRuns kmeans_repeated(const BitMatrix& m, const KMeansOptions& options, int runs,
                           std::span<const int64_t> reference_features) {
  if (!reference_features.empty()) runs = static_cast<int>(reference_features.size());
  if (runs < 1) bad_input("k-means runs: {} runs, need at least 1", runs);
  KMeansRuns out;
  std::vector<double> objective, within, between, separation, agreement;
  for (int r = 0; r < runs; ++r) {
    KMeansOptions o = options;
    o.seed = options.seed + 1000 * static_cast<uint64_t>(r);
    if (!reference_features.empty()) o.first_center = reference_features[r];
    out.runs.push_back(kmeans(m, o));
    out.quality.push_back(cluster_quality(m, out.runs.back().labels, o.k));
    objective.push_back(out.runs.back().objective);
    within.push_back(out.quality.back().within);
    between.push_back(out.quality.back().between);
    separation.push_back(out.quality.back().separation);
  }
  for (int a = 0; a < runs; ++a)
    for (int b = a + 1; b < runs; ++b) agreement.push_back(adjusted_rand_index(out.runs[a].labels, out.runs[b].labels));
  if (agreement.empty()) agreement.push_back(1.0);
  out.objective = summarize(objective);
  out.within = summarize(within);
  out.between = summarize(between);
  out.separation = summarize(separation);
  out.agreement = summarize(agreement);
  return out;
}

std::vector<int64_t> cluster_order(std::span<const int32_t> labels) {
  std::vector<int64_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return labels[a] < labels[b]; });
  return order;
}

}  // namespace sparsa
