// k-means on bit-packed 0/1 rows. The assignment step needs x . c for every row x and centroid c.
// For 0/1 centroids (the k-means++ seeds) that is |x AND c|, a popcount. Otherwise, with x binary,
// it is a sum of centroid entries over x's set columns: the centroids are stored column-major
// ([cols, k], as uint16 column counts when they are means, small enough for L2) and a row's k dot
// products are one 16-lane vector add per set bit, over the rows' set columns listed once. The
// update step keeps integer column counts per cluster and adjusts them only for the rows whose
// label changed, and Hamerly's distance bounds spare the assignment step the rows that cannot
// change cluster.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "analysis/coactivation_common.h"
#include "analysis/hamming_bitsliced.h"
#include "core/multiversion.h"
#include "sparsa/coactivation.h"
#include "sparsa/parallel.h"

namespace sparsa {
namespace {

constexpr int64_t kLanes = 16;  // clusters are padded to a multiple of this many values

// 16 floats or int32 as one GCC vector (one zmm register, or two ymm on AVX2); 16 uint16.
using Lanes = float __attribute__((vector_size(kLanes * sizeof(float))));
using IntLanes = int32_t __attribute__((vector_size(kLanes * sizeof(int32_t))));
using ShortLanes = uint16_t __attribute__((vector_size(kLanes * sizeof(uint16_t))));
inline void add_lanes(Lanes& acc, const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  acc += v;
}
inline void add_lanes(IntLanes& acc, const uint16_t* p) {
  ShortLanes v;
  std::memcpy(&v, p, sizeof v);
  acc += __builtin_convertvector(v, IntLanes);
}

// What the assignment step multiplies rows with. For 0/1 centroids (k-means++ seeds) the dot
// products are AND popcounts, all computed up front. Otherwise the centroids column-major, padded
// with zeros to kp clusters, so that a row's kp dot products are one vector add per set bit: when
// every centroid is (integer column counts) / (cluster size), as after an update step, the table
// holds the counts as uint16 (exact integer sums, and half the bytes of floats: 16 clusters x
// 16384 columns stay in a 1 MiB L2) and x . c = sum / size; else the float values.
struct DotTable {
  int64_t k = 0, kp = 0;
  std::vector<int32_t> and_counts;  // [rows, k] for 0/1 centroids
  std::vector<uint16_t> counts;     // [cols, kp] for centroids = counts / size
  std::vector<double> inv_size;     // [kp] x . c = (sum of counts over x's set columns) * inv_size[c]
  std::vector<float> values;        // [cols, kp] otherwise
};

DotTable dot_table(const BitMatrix& m, const std::vector<float>& centroids, const std::vector<int32_t>* counts,
                   const std::vector<int64_t>* sizes, int64_t k) {
  const int64_t cols = m.cols();
  DotTable t;
  t.k = k;
  t.kp = (k + kLanes - 1) / kLanes * kLanes;
  if (!counts && std::all_of(centroids.begin(), centroids.end(), [](float v) { return v == 0.0f || v == 1.0f; })) {
    BitMatrix bits(k, cols);
    for (int64_t c = 0; c < k; ++c)
      for (int64_t j = 0; j < cols; ++j) bits.set(c, j, centroids[c * cols + j] > 0);
    t.and_counts = coact::and_counts(m, bits);
    return t;
  }
  bool integral = counts != nullptr;  // counts below 2^16, and int32 sums of up to `cols` of them
  for (int64_t c = 0; integral && c < k; ++c) integral = (*sizes)[c] <= std::min<int64_t>(UINT16_MAX, INT32_MAX / cols);
  if (!integral) {
    t.values.assign(static_cast<size_t>(cols * t.kp), 0.0f);
    for (int64_t c = 0; c < k; ++c)
      for (int64_t j = 0; j < cols; ++j) t.values[j * t.kp + c] = centroids[c * cols + j];
    return t;
  }
  t.counts.assign(static_cast<size_t>(cols * t.kp), 0);
  t.inv_size.assign(static_cast<size_t>(t.kp), 0.0);
  for (int64_t c = 0; c < k; ++c) {
    t.inv_size[c] = (*sizes)[c] > 0 ? 1.0 / static_cast<double>((*sizes)[c]) : 0.0;
    for (int64_t j = 0; j < cols; ++j) t.counts[j * t.kp + c] = static_cast<uint16_t>((*counts)[c * cols + j]);
  }
  return t;
}

// Sums the table's rows at the `n` columns in `set`, kLanes clusters at a time, into out[kp].
// Four interleaved partial sums per lane, combined in a fixed order.
template <typename Acc, typename T, typename Index>
[[gnu::always_inline]] inline void sum_rows(const T* table, int64_t kp, const Index* set, int64_t n, Acc* out) {
  using Vec = std::conditional_t<std::is_same_v<T, float>, Lanes, IntLanes>;
  for (int64_t c0 = 0; c0 < kp; c0 += kLanes) {
    Vec a0 = {}, a1 = {}, a2 = {}, a3 = {};
    const T* base = table + c0;
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) {
      add_lanes(a0, base + set[t] * kp);
      add_lanes(a1, base + set[t + 1] * kp);
      add_lanes(a2, base + set[t + 2] * kp);
      add_lanes(a3, base + set[t + 3] * kp);
    }
    for (; t < n; ++t) add_lanes(a0, base + set[t] * kp);
    const Vec sum = (a0 + a1) + (a2 + a3);
    for (int64_t l = 0; l < kLanes; ++l) out[c0 + l] = static_cast<Acc>(sum[l]);
  }
}

// Every row's set columns as uint16, listed once and kept across the Lloyd iterations, when the
// columns fit (cols <= 65536) and the lists take at most 4x the bits' memory (density <= 25 %);
// else empty, and each search lists a row's columns again.
struct SetLists {
  std::vector<int64_t> offset;  // [rows + 1]
  std::vector<uint16_t> cols;
  bool empty() const { return offset.empty(); }
};

SetLists set_lists(const BitMatrix& m) {
  SetLists s;
  int64_t total = 0;
  for (int64_t r = 0; r < m.rows(); ++r) total += m.row_count(r);
  if (m.cols() > 65536 || total * 2 > 4 * m.rows() * m.words_per_row() * 8) return s;
  s.offset.resize(static_cast<size_t>(m.rows() + 1), 0);
  for (int64_t r = 0; r < m.rows(); ++r) s.offset[r + 1] = s.offset[r] + m.row_count(r);
  s.cols.resize(static_cast<size_t>(total));
  ParallelFailure failure;
#pragma omp parallel
  {
    std::vector<uint32_t> set;  // [cols + 16]
    failure.run([&] { set.resize(static_cast<size_t>(m.cols() + 16)); });
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m.rows(); ++r) {
      if (failure.failed()) continue;
      const int64_t n = coact::row_set_columns(m.row(r), m.words_per_row(), set.data());
      std::copy_n(set.data(), n, s.cols.data() + s.offset[r]);
    }
  }
  failure.rethrow_if_any([&] { return fmt::format("listing the set columns of a [{}, {}] bit matrix", m.rows(), m.cols()); });
  return s;
}

// Per-thread scratch of row_dots.
struct DotScratch {
  std::vector<uint32_t> set;  // [cols + 16] the row's set columns
  std::vector<int64_t> sums;  // [kp]
  std::vector<float> fsums;   // [kp]
  DotScratch() = default;
  DotScratch(int64_t cols, int64_t kp)
      : set(static_cast<size_t>(cols + 16)), sums(static_cast<size_t>(kp)), fsums(static_cast<size_t>(kp)) {}
};

template <typename Index>
[[gnu::always_inline]] inline void table_dots(const DotTable& t, const Index* set, int64_t n, DotScratch& s,
                                              double* out) {
  if (!t.counts.empty()) {
    sum_rows(t.counts.data(), t.kp, set, n, s.sums.data());
    for (int64_t c = 0; c < t.kp; ++c) out[c] = static_cast<double>(s.sums[c]) * t.inv_size[c];
  } else {
    sum_rows(t.values.data(), t.kp, set, n, s.fsums.data());
    for (int64_t c = 0; c < t.kp; ++c) out[c] = s.fsums[c];
  }
}

// out[c] = x . centroid c for row x, c < k.
SPARSA_MULTIVERSION void row_dots(const BitMatrix& m, int64_t row, const SetLists& lists, const DotTable& t,
                                  DotScratch& s, double* out) {
  if (!t.and_counts.empty()) {
    for (int64_t c = 0; c < t.k; ++c) out[c] = t.and_counts[row * t.k + c];
  } else if (!lists.empty()) {
    table_dots(t, lists.cols.data() + lists.offset[row], lists.offset[row + 1] - lists.offset[row], s, out);
  } else {
    table_dots(t, s.set.data(), coact::row_set_columns(m.row(row), m.words_per_row(), s.set.data()), s, out);
  }
}

// Hamerly's bounds (Hamerly 2010) in Euclidean distance: upper[i] >= distance from row i to its own
// centroid, lower[i] <= distance to every other centroid. A row with upper <= max(lower, half the
// gap from its centroid to the nearest other centroid) provably keeps its label and is skipped.
struct Bounds {
  std::vector<double> upper, lower;  // [rows]
};

// Finds, for the listed rows, the nearest centroid (ties: lowest index) and resets their bounds to
// the nearest and second-nearest distances, widened by a float rounding margin.
void search(const BitMatrix& m, const SetLists& lists, const std::vector<float>& centroids, const DotTable& table, int64_t k,
            const std::vector<int64_t>& rows, std::vector<int32_t>& labels, Bounds& bounds) {
  if (rows.empty()) return;
  const int64_t cols = m.cols();
  std::vector<double> cnorm(static_cast<size_t>(k), 0.0);
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < cols; ++j) cnorm[c] += double(centroids[c * cols + j]) * centroids[c * cols + j];
  const double cnorm_max = *std::max_element(cnorm.begin(), cnorm.end());
  ParallelFailure failure;
#pragma omp parallel
  {
    DotScratch scratch;
    std::vector<double> dots;  // [kp]
    failure.run([&] {
      scratch = DotScratch(cols, table.kp);
      dots.resize(static_cast<size_t>(table.kp));
    });
#pragma omp for schedule(dynamic, 64)
    for (size_t t = 0; t < rows.size(); ++t) {
      if (failure.failed()) continue;
      const int64_t i = rows[t];
      row_dots(m, i, lists, table, scratch, dots.data());
      int32_t best = 0;
      double first = std::numeric_limits<double>::infinity(), second = first;
      for (int64_t c = 0; c < k; ++c) {
        const double d = cnorm[c] - 2.0 * dots[c];
        if (d < first) second = first, first = d, best = static_cast<int32_t>(c);
        else if (d < second) second = d;
      }
      const double bits = static_cast<double>(m.row_count(i)), margin = 1e-5 * (bits + cnorm_max);
      labels[i] = best;
      bounds.upper[i] = std::sqrt(std::max(0.0, first + bits + margin));
      bounds.lower[i] = std::sqrt(std::max(0.0, second + bits - margin));
    }
  }
  failure.rethrow_if_any([&] { return fmt::format("searching the nearest of {} centroids of {} columns", k, cols); });
}

// Half the distance from each centroid to its nearest other centroid (+inf when k = 1). [k]
// Squared distances summed in four interleaved double lanes (a fixed order).
SPARSA_MULTIVERSION std::vector<double> half_gaps(const std::vector<float>& centroids, int64_t k, int64_t cols) {
  using Doubles = double __attribute__((vector_size(4 * sizeof(double))));
  std::vector<double> gap(static_cast<size_t>(k), std::numeric_limits<double>::infinity());
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = a + 1; b < k; ++b) {
      const float* ca = centroids.data() + a * cols;
      const float* cb = centroids.data() + b * cols;
      Doubles acc = {};
      int64_t j = 0;
      for (; j + 4 <= cols; j += 4) {
        const Doubles d = {double(ca[j]) - cb[j], double(ca[j + 1]) - cb[j + 1], double(ca[j + 2]) - cb[j + 2],
                           double(ca[j + 3]) - cb[j + 3]};
        acc += d * d;
      }
      double d2 = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      for (; j < cols; ++j) d2 += (double(ca[j]) - cb[j]) * (double(ca[j]) - cb[j]);
      gap[a] = std::min(gap[a], std::sqrt(d2) / 2);
      gap[b] = std::min(gap[b], std::sqrt(d2) / 2);
    }
  return gap;
}

// The labels after one assignment step: searches only the rows whose bounds allow a change.
std::vector<int32_t> reassign(const BitMatrix& m, const SetLists& lists, const std::vector<float>& centroids,
                              const DotTable& table, int64_t k,
                              std::vector<int32_t> labels, Bounds& bounds) {
  const std::vector<double> gap = half_gaps(centroids, k, m.cols());
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < m.rows(); ++i)
    if (labels[i] < 0 || bounds.upper[i] > std::max(gap[labels[i]], bounds.lower[i])) rows.push_back(i);
  search(m, lists, centroids, table, k, rows, labels, bounds);
  return labels;
}

// After the centroids moved by delta[c]: every upper bound grows by its centroid's move, every
// lower bound shrinks by the largest move of another centroid.
void move_bounds(Bounds& bounds, const std::vector<int32_t>& labels, const std::vector<double>& delta) {
  int64_t top = 0;
  for (size_t c = 1; c < delta.size(); ++c)
    if (delta[c] > delta[top]) top = static_cast<int64_t>(c);
  double runner_up = 0;
  for (size_t c = 0; c < delta.size(); ++c)
    if (static_cast<int64_t>(c) != top) runner_up = std::max(runner_up, delta[c]);
  for (size_t i = 0; i < labels.size(); ++i) {
    bounds.upper[i] += delta[labels[i]];
    bounds.lower[i] -= labels[i] == top ? runner_up : delta[top];
  }
}

// counts[j] += delta for every set bit j of the words [w0, w1) of a row (counts: [cols]). Branch-free
// over 32-bit halves, so that it vectorises (variable shifts).
SPARSA_MULTIVERSION void add_bits(int32_t* counts, int64_t cols, const uint64_t* words, int64_t w0, int64_t w1,
                                  int32_t delta) {
  for (int64_t w = w0; w < w1; ++w) {
    if (words[w] == 0) continue;
    for (int half = 0; half < 2; ++half) {
      const int64_t base = w * 64 + half * 32;
      const auto bits = static_cast<uint32_t>(words[w] >> (32 * half));
      if (base + 32 <= cols) {
        int32_t* c = counts + base;
        for (int b = 0; b < 32; ++b) c[b] += delta * static_cast<int32_t>((bits >> b) & 1u);
      } else {
        for (int64_t b = 0; base + b < cols; ++b) counts[base + b] += delta * static_cast<int32_t>((bits >> b) & 1u);
      }
    }
  }
}

// Per-cluster column counts and sizes, kept in step with the labels.
struct ClusterCounts {
  int64_t k = 0, cols = 0;
  std::vector<int32_t> count;  // [k, cols] rows of the cluster with the column set
  std::vector<int64_t> size;   // [k]

  ClusterCounts(int64_t k_, int64_t cols_)
      : k(k_), cols(cols_), count(static_cast<size_t>(k_ * cols_), 0), size(static_cast<size_t>(k_), 0) {}

  // Moves rows[i] from cluster from[i] (-1: none) to cluster to[i].
  void move(const BitMatrix& m, const std::vector<int64_t>& rows, const std::vector<int32_t>& from,
            const std::vector<int32_t>& to) {
    for (size_t i = 0; i < rows.size(); ++i) {
      if (from[i] >= 0) --size[from[i]];
      ++size[to[i]];
    }
    const int64_t nw = m.words_per_row();
#pragma omp parallel
    {  // each thread its own range of columns, whole words
      const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t w0 = nw * t / threads, w1 = nw * (t + 1) / threads;
      for (size_t i = 0; i < rows.size(); ++i) {
        if (from[i] >= 0) add_bits(count.data() + from[i] * cols, cols, m.row(rows[i]), w0, w1, -1);
        add_bits(count.data() + to[i] * cols, cols, m.row(rows[i]), w0, w1, 1);
      }
    }
  }

  std::vector<float> means() const {  // [k, cols]
    std::vector<float> c(count.size(), 0.0f);
    for (int64_t l = 0; l < k; ++l)
      if (size[l] > 0)
        for (int64_t j = 0; j < cols; ++j)
          c[l * cols + j] = static_cast<float>(static_cast<double>(count[l * cols + j]) / static_cast<double>(size[l]));
    return c;
  }

  // sum_i ||x_i - c_{label_i}||^2 in double, exact up to rounding of the centroid values.
  double objective(const std::vector<double>& members_bits, const std::vector<float>& centroids) const {
    double total = 0;
    for (int64_t l = 0; l < k; ++l) {
      double dot = 0, norm = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double c = centroids[l * cols + j];
        dot += count[l * cols + j] * c;
        norm += c * c;
      }
      total += members_bits[l] - 2.0 * dot + static_cast<double>(size[l]) * norm;
    }
    return total;
  }
};

// Relabels rows so that `next` holds; returns how many rows changed.
int64_t apply_labels(const BitMatrix& m, ClusterCounts& counts, std::vector<int32_t>& labels,
                     const std::vector<int32_t>& next) {
  std::vector<int64_t> rows;
  std::vector<int32_t> from, to;
  for (int64_t i = 0; i < m.rows(); ++i)
    if (labels[i] != next[i]) rows.push_back(i), from.push_back(labels[i]), to.push_back(next[i]);
  counts.move(m, rows, from, to);
  labels = next;
  return static_cast<int64_t>(rows.size());
}

// Gives each empty cluster the row with the largest upper bound on the distance to its centroid,
// taken from a cluster of 2 or more (lowest index on ties); that row's bounds are then unknown.
void fill_empty_clusters(const BitMatrix& m, ClusterCounts& counts, std::vector<int32_t>& labels, Bounds& bounds) {
  for (int64_t c = 0; c < counts.k; ++c) {
    if (counts.size[c] > 0) continue;
    int64_t far = -1;
    for (int64_t i = 0; i < m.rows(); ++i)
      if (counts.size[labels[i]] > 1 && std::isfinite(bounds.upper[i]) && (far < 0 || bounds.upper[i] > bounds.upper[far]))
        far = i;
    SPARSA_ASSERT(far >= 0);  // k <= rows guarantees a cluster with two rows while one is empty
    counts.move(m, {far}, {labels[far]}, {static_cast<int32_t>(c)});
    labels[far] = static_cast<int32_t>(c);
    bounds.upper[far] = std::numeric_limits<double>::infinity();
    bounds.lower[far] = 0;
  }
}

void check_kmeans_args(const BitMatrix& m, int64_t k, const char* what) {
  coact::check_matrix(m, what);
  if (k < 1 || k > m.rows()) bad_input("{}: k = {} must be between 1 and the number of features ({})", what, k, m.rows());
}

}  // namespace

std::vector<float> kmeans_plus_plus(const BitMatrix& m, int k, uint64_t seed, int64_t first_center) {
  check_kmeans_args(m, k, "k-means++");
  const int64_t n = m.rows(), cols = m.cols();
  coact::Rng rng(seed);
  int64_t first = first_center;
  if (first_center >= 0) coact::check_feature(m, first_center, "k-means++: first centre");
  else first = rng.below(n);
  std::vector<int64_t> chosen{first};
  std::vector<int32_t> closest = hamming_from(m, first);  // squared distance to the nearest centre
  const int trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
  std::vector<int64_t> cumulative(static_cast<size_t>(n));
  while (static_cast<int64_t>(chosen.size()) < k) {
    std::partial_sum(closest.begin(), closest.end(), cumulative.begin(),
                     [](int64_t a, int64_t b) { return a + b; });
    const int64_t potential = cumulative.back();
    std::vector<int64_t> candidates(static_cast<size_t>(trials));
    for (int64_t& cand : candidates) {
      if (potential == 0) {  // every row coincides with a centre: any row will do
        cand = rng.below(n);
        continue;
      }
      const int64_t target = std::min(potential - 1, static_cast<int64_t>(rng.uniform() * static_cast<double>(potential)));
      cand = std::upper_bound(cumulative.begin(), cumulative.end(), target) - cumulative.begin();
    }
    const std::vector<int32_t> d = hamming_to(m, candidates);  // [trials, rows]
    int64_t best = 0, best_pot = std::numeric_limits<int64_t>::max();
    for (int t = 0; t < trials; ++t) {
      int64_t pot = 0;
      for (int64_t i = 0; i < n; ++i) pot += std::min(d[t * n + i], closest[i]);
      if (pot < best_pot) best_pot = pot, best = t;
    }
    const int32_t* best_d = d.data() + best * n;
    for (int64_t i = 0; i < n; ++i) closest[i] = std::min(closest[i], best_d[i]);
    chosen.push_back(candidates[best]);
  }
  std::vector<float> centroids(static_cast<size_t>(k * cols), 0.0f);  // [k, cols]
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < cols; ++j) centroids[c * cols + j] = m.get(chosen[c], j) ? 1.0f : 0.0f;
  return centroids;
}

KMeansResult kmeans_from(const BitMatrix& m, std::span<const float> initial_centroids, const KMeansOptions& options) {
  coact::check_matrix(m, "k-means");
  const int64_t n = m.rows(), cols = m.cols();
  if (initial_centroids.empty() || initial_centroids.size() % cols != 0)
    bad_input("k-means: {} initial centroid values is not a whole number of {}-column rows", initial_centroids.size(), cols);
  const int64_t k = static_cast<int64_t>(initial_centroids.size()) / cols;
  check_kmeans_args(m, k, "k-means");
  if (options.max_iter < 1) bad_input("k-means: max_iter = {} must be at least 1", options.max_iter);
  if (!(options.tol >= 0)) bad_input("k-means: tol = {} must be >= 0", options.tol);

  std::vector<float> centroids(initial_centroids.begin(), initial_centroids.end());
  const SetLists lists = set_lists(m);
  ClusterCounts counts(k, cols);
  std::vector<int32_t> labels(static_cast<size_t>(n), -1);
  Bounds bounds{std::vector<double>(static_cast<size_t>(n), std::numeric_limits<double>::infinity()),
                std::vector<double>(static_cast<size_t>(n), 0.0)};
  double tol_abs = 0;
  int iter = 0;
  bool strict = false;
  for (; iter < options.max_iter; ++iter) {
    const DotTable table = iter == 0 ? dot_table(m, centroids, nullptr, nullptr, k)
                                     : dot_table(m, centroids, &counts.count, &counts.size, k);
    if (apply_labels(m, counts, labels, reassign(m, lists, centroids, table, k, labels, bounds)) == 0) {
      strict = true;
      ++iter;
      break;
    }
    if (iter == 0) {  // scikit-learn's tolerance: tol * mean column variance
      double var = 0;
      for (int64_t j = 0; j < cols; ++j) {
        int64_t set = 0;
        for (int64_t c = 0; c < k; ++c) set += counts.count[c * cols + j];
        const double p = static_cast<double>(set) / static_cast<double>(n);
        var += p * (1 - p);
      }
      tol_abs = options.tol * var / static_cast<double>(cols);
    }
    fill_empty_clusters(m, counts, labels, bounds);
    std::vector<float> next = counts.means();
    std::vector<double> delta(static_cast<size_t>(k), 0.0);
    double shift = 0;
    for (int64_t c = 0; c < k; ++c) {
      for (int64_t j = 0; j < cols; ++j) delta[c] += std::pow(double(next[c * cols + j]) - centroids[c * cols + j], 2);
      shift += delta[c];
      delta[c] = std::sqrt(delta[c]);
    }
    centroids = std::move(next);
    move_bounds(bounds, labels, delta);
    if (shift <= tol_abs) {
      ++iter;
      break;
    }
  }
  if (!strict) {  // the centroids are the means of the counts here
    const DotTable table = dot_table(m, centroids, &counts.count, &counts.size, k);
    apply_labels(m, counts, labels, reassign(m, lists, centroids, table, k, labels, bounds));
  }

  std::vector<double> member_bits(static_cast<size_t>(k), 0.0);  // sum of |x_i| per cluster
  for (int64_t i = 0; i < n; ++i) member_bits[labels[i]] += static_cast<double>(m.row_count(i));
  KMeansResult r;
  r.objective = counts.objective(member_bits, centroids);
  r.labels = std::move(labels);
  r.centroids = std::move(centroids);
  r.iterations = iter;
  return r;
}

KMeansResult kmeans(const BitMatrix& m, const KMeansOptions& options) {
  check_kmeans_args(m, options.k, "k-means");
  if (options.n_init < 1) bad_input("k-means: n_init = {} must be at least 1", options.n_init);
  KMeansResult best;
  for (int r = 0; r < options.n_init; ++r) {
    const uint64_t seed = options.seed + static_cast<uint64_t>(r);
    KMeansResult run = kmeans_from(m, kmeans_plus_plus(m, options.k, seed, options.first_center), options);
    run.seed = seed;
    if (r == 0 || run.objective < best.objective) best = std::move(run);
  }
  return best;
}

}  // namespace sparsa
