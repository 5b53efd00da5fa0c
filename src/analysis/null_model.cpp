// Permutation null models of cluster quality and the seed's neighbourhood procedure (see
// sparsa/coactivation.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "coactivation_common.h"
#include "sparsa/coactivation.h"

namespace sparsa {
namespace {

// SplitMix64's finaliser: decorrelates the per-row seeds derived from (seed, row).
uint64_t seed_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The set bits of one row moved to `count` distinct uniformly chosen columns: a partial
// Fisher-Yates shuffle of the column indices, `count` steps. `columns` is scratch [cols].
void scatter_row(uint64_t* row, int64_t words, int64_t cols, int64_t count, coact::Rng& rng,
                 std::vector<int32_t>& columns) {
  std::iota(columns.begin(), columns.end(), 0);
  std::fill_n(row, words, uint64_t{0});
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + rng.below(cols - i);
    std::swap(columns[static_cast<size_t>(i)], columns[static_cast<size_t>(j)]);
    const int64_t c = columns[static_cast<size_t>(i)];
    row[c >> 6] |= uint64_t{1} << (c & 63);
  }
}

NullComparison compare_with_null(double observed, std::vector<double> null) {
  NullComparison c;
  c.observed = observed;
  c.summary = sparsa::summarize(std::span<const double>(null));  // qualified: a unity sibling has its own summarize
  const auto at_least = std::count_if(null.begin(), null.end(), [&](double v) { return !(v < observed); });
  c.p_value = static_cast<double>(1 + at_least) / static_cast<double>(1 + null.size());
  const double diff = observed - c.summary.mean;
  c.z = c.summary.stddev > 0 ? diff / c.summary.stddev
        : diff == 0          ? 0.0
                             : std::copysign(std::numeric_limits<double>::infinity(), diff);
  c.null = std::move(null);
  return c;
}

struct NullStatistics {
  double separation = 0, agreement = 1;
};

// The statistics of one matrix at one k: the separation ratio of the run with the lowest
// objective and the mean ARI between the runs (kmeans_repeated).
NullStatistics null_statistics(const BitMatrix& m, const KMeansOptions& base, int k, int runs) {
  KMeansOptions o = base;
  o.k = k;
  const KMeansRuns r = kmeans_repeated(m, o, runs);
  size_t best = 0;
  for (size_t i = 1; i < r.runs.size(); ++i)
    if (r.runs[i].objective < r.runs[best].objective) best = i;
  return {r.quality[best].separation, r.agreement.mean};
}

void check_null_options(const BitMatrix& m, const ClusterNullOptions& o) {
  coact::check_matrix(m, "cluster null model");
  if (o.ks.empty()) bad_input("cluster null model: no k given");
  for (int k : o.ks)
    if (k < 2 || k > m.rows()) bad_input("cluster null model: k = {} is not in [2, {}] (the features)", k, m.rows());
  if (o.shuffles < 1) bad_input("cluster null model: {} shuffles, need at least 1", o.shuffles);
  if (o.runs < 1) bad_input("cluster null model: {} k-means runs, need at least 1", o.runs);
}

}  // namespace

BitMatrix shuffle_rows(const BitMatrix& m, uint64_t seed) {
  coact::check_matrix(m, "shuffle rows");
  BitMatrix out(m.rows(), m.cols());
  const uint64_t base = seed_mix(seed);
#pragma omp parallel
  {
    std::vector<int32_t> columns(static_cast<size_t>(m.cols()));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m.rows(); ++r) {
      coact::Rng rng(seed_mix(base ^ static_cast<uint64_t>(r)));
      scatter_row(out.row(r), m.words_per_row(), m.cols(), m.row_count(r), rng, columns);
    }
  }
  return out;
}

std::vector<ClusterNull> cluster_null_model(const BitMatrix& m, const ClusterNullOptions& o) {
  check_null_options(m, o);
  std::vector<ClusterNull> out;
  for (int k : o.ks) {
    ClusterNull c;
    c.k = k;
    const NullStatistics s = null_statistics(m, o.kmeans, k, o.runs);
    c.separation.observed = s.separation;
    c.agreement.observed = s.agreement;
    out.push_back(std::move(c));
  }
  std::vector<std::vector<double>> separation(o.ks.size()), agreement(o.ks.size());
  for (int r = 0; r < o.shuffles; ++r) {
    const BitMatrix shuffled = shuffle_rows(m, o.seed + static_cast<uint64_t>(r));
    for (size_t i = 0; i < o.ks.size(); ++i) {
      const NullStatistics s = null_statistics(shuffled, o.kmeans, o.ks[i], o.runs);
      separation[i].push_back(s.separation);
      agreement[i].push_back(s.agreement);
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].separation = compare_with_null(out[i].separation.observed, std::move(separation[i]));
    out[i].agreement = compare_with_null(out[i].agreement.observed, std::move(agreement[i]));
  }
  return out;
}

std::vector<int64_t> neighbourhood(const BitMatrix& m, int64_t reference, int64_t size) {
  coact::check_matrix(m, "neighbourhood");
  coact::check_feature(m, reference, "neighbourhood");
  if (size < 1) bad_input("neighbourhood: size {} must be at least 1", size);
  std::vector<int64_t> out{reference};
  if (size == 1 || m.rows() == 1) return out;
  const std::vector<int64_t> near = hamming_nearest(m, reference, size - 1);
  out.insert(out.end(), near.begin(), near.end());
  return out;
}

std::vector<int64_t> reference_features(const BitMatrix& m, int count, uint64_t seed, double min_density) {
  coact::check_matrix(m, "reference features");
  if (count < 1) bad_input("reference features: count {} must be at least 1", count);
  if (!(min_density >= 0 && min_density <= 0.5)) bad_input("reference features: minimum density {} is not in [0, 0.5]", min_density);
  std::vector<int64_t> eligible;
  const double cols = static_cast<double>(m.cols());
  for (int64_t r = 0; r < m.rows(); ++r) {
    const double d = static_cast<double>(m.row_count(r)) / cols;
    if (d > 0 && d < 1 && d >= min_density && d <= 1 - min_density) eligible.push_back(r);
  }
  coact::Rng rng(seed);
  const auto n = static_cast<int64_t>(eligible.size());
  const int64_t take = std::min<int64_t>(count, n);
  for (int64_t i = 0; i < take; ++i) std::swap(eligible[static_cast<size_t>(i)], eligible[static_cast<size_t>(i + rng.below(n - i))]);
  eligible.resize(static_cast<size_t>(take));
  return eligible;
}

BitMatrix select_rows(const BitMatrix& m, std::span<const int64_t> rows) {
  BitMatrix out(static_cast<int64_t>(rows.size()), m.cols());
  for (size_t i = 0; i < rows.size(); ++i) {
    coact::check_feature(m, rows[i], "select rows");
    std::copy_n(m.row(rows[i]), m.words_per_row(), out.row(static_cast<int64_t>(i)));
  }
  return out;
}

std::vector<NeighbourhoodClustering> neighbourhood_clusterings(const BitMatrix& m,
                                                               std::span<const int64_t> references,
                                                               const NeighbourhoodOptions& o) {
  if (o.ks.empty()) bad_input("neighbourhood clustering: no k given");
  std::vector<NeighbourhoodClustering> out;
  for (int64_t ref : references) {
    const std::vector<int64_t> members = neighbourhood(m, ref, o.size);
    const BitMatrix group = select_rows(m, members);
    for (int k : o.ks) {
      if (k < 2 || k > group.rows())
        bad_input("neighbourhood clustering: k = {} is not in [2, {}] (the neighbourhood's features)", k, group.rows());
      KMeansOptions ko = o.kmeans;
      ko.k = k;
      KMeansResult r = kmeans(group, ko);
      NeighbourhoodClustering c;
      c.reference = ref;
      c.k = k;
      c.members = members;
      c.quality = cluster_quality(group, r.labels, k);
      c.objective = r.objective;
      c.labels = std::move(r.labels);
      out.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace sparsa
