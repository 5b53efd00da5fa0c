// Co-activation analysis (sparsa/coactivation.h) against independent computations: brute force
// over unpacked bools, hand-computed tiny cases, and synthetic data with known structure.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <random>

#include "sparsa/coactivation.h"
#include "sparsa/error.h"

namespace {

using sparsa::BitMatrix;
using Bools = std::vector<std::vector<bool>>;  // [rows][cols]

// Random rows with per-row densities in [0.02, 0.6].
Bools random_bools(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 g(seed);
  Bools b(rows, std::vector<bool>(cols));
  for (auto& r : b) {
    const double density = 0.02 + 0.58 * (g() % 1000) / 1000.0;
    for (int64_t c = 0; c < cols; ++c) r[c] = (g() % 10000) < density * 10000;
  }
  return b;
}

// `groups` prototypes, `per_group` noisy copies each (each bit flipped with probability `flip`),
// features of the groups interleaved so that the natural order mixes them.
Bools grouped_bools(int groups, int per_group, int64_t cols, double flip, uint64_t seed, std::vector<int32_t>* truth) {
  std::mt19937_64 g(seed);
  Bools proto(groups, std::vector<bool>(cols));
  for (auto& p : proto)
    for (int64_t c = 0; c < cols; ++c) p[c] = g() % 3 == 0;
  Bools b;
  truth->clear();
  for (int i = 0; i < per_group; ++i)
    for (int k = 0; k < groups; ++k) {
      std::vector<bool> r = proto[k];
      for (int64_t c = 0; c < cols; ++c)
        if ((g() % 10000) < flip * 10000) r[c] = !r[c];
      b.push_back(r);
      truth->push_back(k);
    }
  return b;
}

BitMatrix pack(const Bools& b) {
  BitMatrix m(static_cast<int64_t>(b.size()), b.empty() ? 0 : static_cast<int64_t>(b[0].size()));
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t c = 0; c < m.cols(); ++c) m.set(r, c, b[r][c]);
  return m;
}

int brute_hamming(const Bools& b, size_t i, size_t j) {
  int d = 0;
  for (size_t c = 0; c < b[i].size(); ++c) d += b[i][c] != b[j][c];
  return d;
}

void expect_bad_input(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const sparsa::Error& e) {
    EXPECT_EQ(e.kind(), sparsa::ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// The instruction sets this CPU runs: AVX2 everywhere (the tests' machines are x86-64-v3), and
// AVX-512 where it has F, VL, BW and VPOPCNTDQ.
std::vector<sparsa::KernelIsa> kernels() {
  std::vector<sparsa::KernelIsa> k{sparsa::KernelIsa::kAvx2};
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vpopcntdq"))
    k.push_back(sparsa::KernelIsa::kAvx512);
  return k;
}

// Runs with one instruction set forced, and back to the CPU's best after.
struct ForcedIsa {
  explicit ForcedIsa(sparsa::KernelIsa isa) { sparsa::force_kernel_isa(isa); }
  ~ForcedIsa() { sparsa::force_kernel_isa(sparsa::KernelIsa::kAuto); }
};

TEST(Hamming, MatchesBruteForceForOddSizesOnEveryKernel) {
  for (int64_t cols : {1, 63, 64, 65, 127, 600}) {
    const Bools b = random_bools(37, cols, 100 + cols);
    const BitMatrix m = pack(b);
    for (auto kernel : kernels()) {
      ForcedIsa forced(kernel);
      EXPECT_STREQ(sparsa::active_hamming_kernels().popcount, kernel == sparsa::KernelIsa::kAvx2 ? "AVX2" : "AVX-512 VPOPCNTDQ");
      EXPECT_STREQ(sparsa::active_hamming_kernels().bitsliced, kernel == sparsa::KernelIsa::kAvx2 ? "AVX2" : "AVX-512");
      const std::vector<int32_t> all = sparsa::hamming_all_pairs(m);
      const std::vector<int64_t> listed{30, 5, 5, 36, 0};
      const std::vector<int32_t> some = sparsa::hamming_to(m, listed);
      for (size_t i = 0; i < b.size(); ++i)
        for (size_t j = 0; j < b.size(); ++j) {
          const int want = brute_hamming(b, i, j);
          ASSERT_EQ(all[i * b.size() + j], want) << "cols " << cols << " pair " << i << "," << j;
          for (size_t t = 0; t < listed.size(); ++t)
            if (listed[t] == static_cast<int64_t>(i)) ASSERT_EQ(some[t * b.size() + j], want);
        }
      const std::vector<int32_t> from = sparsa::hamming_from(m, 11);
      for (size_t j = 0; j < b.size(); ++j) EXPECT_EQ(from[j], brute_hamming(b, 11, j));
    }
  }
}

TEST(Hamming, AllPairsAcrossTilesMatchesBruteForce) {
  const Bools b = random_bools(150, 200, 7);  // more rows than one 64-row tile, a partial last tile
  const std::vector<int32_t> all = sparsa::hamming_all_pairs(pack(b));
  for (size_t i = 0; i < b.size(); ++i)
    for (size_t j = 0; j < b.size(); ++j) ASSERT_EQ(all[i * b.size() + j], brute_hamming(b, i, j));
}

// The bit-sliced kernel: one partial chunk of 512 features, rows whose set bits are not
// a multiple of the 16-column round (and empty and full rows), densities from 0 to 1, and counts
// large enough to carry through several planes of the high counter.
void bitsliced_matches_brute_force() {
  struct Case {
    int64_t rows, cols;
    double density;
  };
  // 70000 columns: 32-bit column indices, and counts past 2^16.
  for (const Case c : {Case{300, 700, 0.05}, Case{300, 130, 0.5}, Case{70, 4100, 0.9}, Case{257, 64, 0.0},
                       Case{20, 70000, 0.95}}) {
    std::mt19937_64 g(static_cast<uint64_t>(c.rows * 31 + c.cols));
    std::bernoulli_distribution on(c.density);
    Bools b(static_cast<size_t>(c.rows), std::vector<bool>(static_cast<size_t>(c.cols)));
    for (auto& row : b)
      for (size_t t = 0; t < row.size(); ++t) row[t] = on(g);
    b[1].assign(b[1].size(), true);    // a full row
    b[2].assign(b[2].size(), false);   // an empty one
    const BitMatrix m = pack(b);
    // Into poisoned buffers: every element must be written.
    std::vector<int32_t> sliced(b.size() * b.size(), -7), popcount(b.size() * b.size(), -7);
    sparsa::hamming_all_pairs_into(m, sliced, sparsa::AllPairsMethod::kBitSliced);
    sparsa::hamming_all_pairs_into(m, popcount, sparsa::AllPairsMethod::kPopcount);
    for (size_t i = 0; i < b.size(); ++i)
      for (size_t j = 0; j < b.size(); ++j) {
        ASSERT_EQ(sliced[i * b.size() + j], brute_hamming(b, i, j)) << c.rows << "x" << c.cols << " pair " << i << "," << j;
        ASSERT_EQ(popcount[i * b.size() + j], sliced[i * b.size() + j]);
      }
  }
}

// Several 512-feature chunks: the lower triangle is mirrored from the upper one in 16 x 16 blocks
// (a partial last chunk, so partial row groups and partial column blocks), and the 9 MB result is
// large enough to be prefaulted.
void bitsliced_mirrors_across_chunks() {
  const Bools b = random_bools(1500, 67, 41);
  const BitMatrix m = pack(b);
  const size_t n = b.size();
  std::vector<uint64_t> words(n, 0);  // the bools again as words (cols < 64 + 3), for a fast brute force
  std::vector<uint64_t> tail(n, 0);
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < 67; ++c) (c < 64 ? words[i] : tail[i]) |= uint64_t{b[i][c]} << (c % 64);
  std::unique_ptr<int32_t[]> d(new int32_t[n * n]);  // uninitialised, as the API allows
  sparsa::hamming_all_pairs_into(m, {d.get(), n * n}, sparsa::AllPairsMethod::kBitSliced);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      ASSERT_EQ(d[i * n + j], std::popcount(words[i] ^ words[j]) + std::popcount(tail[i] ^ tail[j])) << i << "," << j;
  for (size_t i : {0, 511, 512, 1024, 1499}) ASSERT_EQ(d[i * n + 1499 - i], brute_hamming(b, i, 1499 - i));
}

TEST(Hamming, BitSlicedMatchesBruteForceOnEveryInstructionSet) {
  for (auto kernel : kernels()) {
    ForcedIsa forced(kernel);
    ASSERT_TRUE(sparsa::bitsliced_hamming_available());
    bitsliced_matches_brute_force();
  }
}

TEST(Hamming, BitSlicedMirrorsAcrossChunksOfAFreshBufferOnEveryInstructionSet) {
  for (auto kernel : kernels()) {
    ForcedIsa forced(kernel);
    bitsliced_mirrors_across_chunks();
  }
}

TEST(Hamming, ForcingAnInstructionSetTheCpuLacksIsRefused) {
  if (kernels().size() == 2) GTEST_SKIP() << "this CPU runs every version";
  expect_bad_input([] { sparsa::force_kernel_isa(sparsa::KernelIsa::kAvx512); }, "AVX-512");
  EXPECT_STRNE(sparsa::active_hamming_kernels().popcount, "AVX-512 VPOPCNTDQ");
}

TEST(Hamming, GradientOrderAndNearestBreakTiesByIndex) {
  Bools b = random_bools(60, 70, 3);
  b[40] = b[9];  // an exact twin of the reference with a larger index, and duplicates elsewhere
  b[2] = b[9];
  b[50] = b[17];
  const BitMatrix m = pack(b);
  std::vector<std::pair<int, int64_t>> key;
  for (size_t j = 0; j < b.size(); ++j) key.emplace_back(brute_hamming(b, 9, j), static_cast<int64_t>(j));
  std::sort(key.begin(), key.end());
  const std::vector<int64_t> order = sparsa::coactivation_order(m, 9);
  ASSERT_EQ(order.size(), key.size());
  for (size_t t = 0; t < key.size(); ++t) EXPECT_EQ(order[t], key[t].second);
  EXPECT_EQ(order[0], 2);  // the twin with the smaller index comes before the reference

  const std::vector<int64_t> near = sparsa::hamming_nearest(m, 9, 5);
  std::vector<int64_t> want;
  for (const auto& [d, j] : key)
    if (j != 9 && want.size() < 5) want.push_back(j);
  EXPECT_EQ(near, want);
  EXPECT_EQ(sparsa::hamming_nearest(m, 9).size(), 59u);  // default 128, capped at rows - 1
}

TEST(ClusterMetrics, AdjustedRandIndexHandComputed) {
  // a = {0,0,1,1}, b = {0,0,1,2}: index 1, sums 2 and 1, expected 2/6, max 3/2 -> (2/3)/(7/6) = 4/7.
  EXPECT_NEAR(sparsa::adjusted_rand_index(std::vector<int32_t>{0, 0, 1, 1}, std::vector<int32_t>{0, 0, 1, 2}),
              4.0 / 7.0, 1e-12);
  EXPECT_DOUBLE_EQ(sparsa::adjusted_rand_index(std::vector<int32_t>{0, 0, 1, 1, 2}, std::vector<int32_t>{5, 5, 3, 3, 0}), 1.0);
  EXPECT_DOUBLE_EQ(sparsa::adjusted_rand_index(std::vector<int32_t>{0, 0, 0, 0}, std::vector<int32_t>{0, 1, 2, 3}), 0.0);
  // a = {0,0,0,1,1,1}, b = {0,0,1,1,2,2}: index 2, sums 6 and 3, expected 18/15, max 4.5
  // -> (2 - 1.2) / (4.5 - 1.2) = 0.8 / 3.3.
  EXPECT_NEAR(sparsa::adjusted_rand_index(std::vector<int32_t>{0, 0, 0, 1, 1, 1}, std::vector<int32_t>{0, 0, 1, 1, 2, 2}),
              0.8 / 3.3, 1e-12);
  expect_bad_input([] { sparsa::adjusted_rand_index(std::vector<int32_t>{0, 1}, std::vector<int32_t>{0}); }, "labelings");
}

TEST(ClusterMetrics, QualityMatchesBruteForcePairs) {
  const Bools b = random_bools(41, 97, 11);
  std::vector<int32_t> labels(b.size());
  for (size_t i = 0; i < b.size(); ++i) labels[i] = static_cast<int32_t>((i * 7) % 5);
  const sparsa::ClusterQuality q = sparsa::cluster_quality(pack(b), labels, 6);  // cluster 5 stays empty
  double within = 0, between = 0;
  int64_t nw = 0, nb = 0;
  std::vector<int64_t> sizes(6, 0);
  for (size_t i = 0; i < b.size(); ++i) {
    ++sizes[labels[i]];
    for (size_t j = i + 1; j < b.size(); ++j) {
      const double d = brute_hamming(b, i, j) / 97.0;
      if (labels[i] == labels[j]) within += d, ++nw;
      else between += d, ++nb;
    }
  }
  EXPECT_EQ(q.sizes, sizes);
  EXPECT_NEAR(q.within, within / nw, 1e-12);
  EXPECT_NEAR(q.between, between / nb, 1e-12);
  EXPECT_NEAR(q.separation, (between / nb) / (within / nw), 1e-12);
}

TEST(Coherence, HandBuiltMatrix) {
  // 4 features x 4 tokens: f0 = f2 = token 0 only, f1 = f3 = token 1 only.
  BitMatrix m(4, 4);
  m.set(0, 0), m.set(2, 0), m.set(1, 1), m.set(3, 1);
  const std::vector<int64_t> natural = sparsa::natural_order(4);
  EXPECT_DOUBLE_EQ(sparsa::block_coherence(m, natural, 2), 4.0 / 8.0);  // each block active at 2 tokens
  EXPECT_DOUBLE_EQ(sparsa::block_coherence(m, std::vector<int64_t>{0, 2, 1, 3}, 2), 6.0 / 8.0);
  EXPECT_DOUBLE_EQ(sparsa::block_coherence(m, natural, 3), 5.0 / 8.0);  // {0,1,2}: 2 zero, {3}: 3 zero
  EXPECT_DOUBLE_EQ(sparsa::block_coherence(m, natural, 1), 12.0 / 16.0);
  EXPECT_DOUBLE_EQ(sparsa::block_coherence(m, natural, 4), 2.0 / 4.0);
}

TEST(Coherence, MatchesBruteForceOnRandomOrders) {
  const Bools b = random_bools(30, 65, 5);
  std::vector<int64_t> order(30);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(9));
  for (int64_t B : {1, 4, 7, 30, 31}) {
    int64_t zero = 0, cells = 0;
    for (int64_t s = 0; s < 30; s += B)
      for (int64_t c = 0; c < 65; ++c) {
        bool any = false;
        for (int64_t i = s; i < std::min<int64_t>(30, s + B); ++i) any = any || b[order[i]][c];
        zero += !any, ++cells;
      }
    EXPECT_DOUBLE_EQ(sparsa::block_coherence(pack(b), order, B), double(zero) / cells) << "B " << B;
  }
}

TEST(Coherence, ClusterOrderBeatsInterleavedOrder) {
  std::vector<int32_t> truth;
  const BitMatrix m = pack(grouped_bools(4, 16, 256, 0.0, 21, &truth));
  const std::vector<int64_t> order = sparsa::cluster_order(truth);
  for (size_t t = 1; t < order.size(); ++t)
    EXPECT_TRUE(truth[order[t - 1]] < truth[order[t]] || (truth[order[t - 1]] == truth[order[t]] && order[t - 1] < order[t]));
  EXPECT_GT(sparsa::block_coherence(m, order, 16), sparsa::block_coherence(m, sparsa::natural_order(64), 16));
}

// Lloyd's algorithm over bools in double precision, from the given centroids, stopping like the
// library (labels unchanged, or squared shift <= tol * mean column variance). Returns the objective.
double brute_lloyd(const Bools& b, std::vector<double> c, int k, int max_iter, double tol) {
  const size_t n = b.size(), cols = b[0].size();
  std::vector<int> labels(n, -1);
  double var = 0;
  for (size_t j = 0; j < cols; ++j) {
    double p = 0;
    for (size_t i = 0; i < n; ++i) p += b[i][j];
    p /= n;
    var += p * (1 - p);
  }
  auto dist = [&](size_t i, int l) {
    double d = 0;
    for (size_t j = 0; j < cols; ++j) d += (b[i][j] - c[l * cols + j]) * (b[i][j] - c[l * cols + j]);
    return d;
  };
  for (int it = 0; it < max_iter; ++it) {
    bool changed = false;
    for (size_t i = 0; i < n; ++i) {
      int best = 0;
      for (int l = 1; l < k; ++l)
        if (dist(i, l) < dist(i, best)) best = l;
      changed = changed || best != labels[i];
      labels[i] = best;
    }
    if (!changed) break;
    std::vector<double> next(c.size(), 0.0), size(k, 0.0);
    for (size_t i = 0; i < n; ++i) {
      size[labels[i]] += 1;
      for (size_t j = 0; j < cols; ++j) next[labels[i] * cols + j] += b[i][j];
    }
    double shift = 0;
    for (int l = 0; l < k; ++l)
      for (size_t j = 0; j < cols; ++j) {
        next[l * cols + j] = size[l] > 0 ? next[l * cols + j] / size[l] : c[l * cols + j];
        shift += (next[l * cols + j] - c[l * cols + j]) * (next[l * cols + j] - c[l * cols + j]);
      }
    c = next;
    if (shift <= tol * var / cols) {
      for (size_t i = 0; i < n; ++i) {
        int best = 0;
        for (int l = 1; l < k; ++l)
          if (dist(i, l) < dist(i, best)) best = l;
        labels[i] = best;
      }
      break;
    }
  }
  double obj = 0;
  for (size_t i = 0; i < n; ++i) obj += dist(i, labels[i]);
  return obj;
}

double brute_objective(const Bools& b, const sparsa::KMeansResult& r) {
  const size_t cols = b[0].size();
  double obj = 0;
  for (size_t i = 0; i < b.size(); ++i)
    for (size_t j = 0; j < cols; ++j) {
      const double d = b[i][j] - double(r.centroids[r.labels[i] * cols + j]);
      obj += d * d;
    }
  return obj;
}

TEST(KMeans, RecoversWellSeparatedClusters) {
  std::vector<int32_t> truth;
  const Bools b = grouped_bools(4, 30, 200, 0.03, 5, &truth);
  sparsa::KMeansOptions o;
  o.k = 4;
  o.seed = 17;
  const sparsa::KMeansResult r = sparsa::kmeans(pack(b), o);
  EXPECT_DOUBLE_EQ(sparsa::adjusted_rand_index(r.labels, truth), 1.0);
  EXPECT_NEAR(r.objective, brute_objective(b, r), 1e-6 * r.objective);
  const sparsa::ClusterQuality q = sparsa::cluster_quality(pack(b), r.labels, 4);
  EXPECT_EQ(q.sizes, (std::vector<int64_t>{30, 30, 30, 30}));
  EXPECT_GT(q.separation, 5.0);  // ~0.44 between vs ~0.06 within
}

TEST(KMeans, SeedingPicksDistinctRowsAndIsReproducible) {
  const Bools b = random_bools(50, 90, 13);
  const BitMatrix m = pack(b);
  const std::vector<float> c = sparsa::kmeans_plus_plus(m, 8, 99, 4);
  EXPECT_EQ(c, sparsa::kmeans_plus_plus(m, 8, 99, 4));
  std::vector<size_t> rows;
  for (int l = 0; l < 8; ++l) {
    size_t match = b.size();
    for (size_t i = 0; i < b.size() && match == b.size(); ++i) {
      bool same = true;
      for (size_t j = 0; j < 90; ++j) same = same && (c[l * 90 + j] == (b[i][j] ? 1.0f : 0.0f));
      if (same) match = i;
    }
    ASSERT_LT(match, b.size()) << "centroid " << l << " is not a row";
    rows.push_back(match);
  }
  EXPECT_EQ(rows[0], 4u);  // first_center
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(std::unique(rows.begin(), rows.end()), rows.end());
}

// The bools with each set bit kept with probability `keep`.
Bools thinned(Bools b, double keep, uint64_t seed) {
  std::mt19937_64 g(seed);
  for (auto& row : b)
    for (size_t c = 0; c < row.size(); ++c) row[c] = row[c] && (g() % 1000) < keep * 1000;
  return b;
}

// Overlapping clusters (Lloyd takes several steps), at ~35 % density and thinned to ~10 % (then the
// rows' set columns are listed once for all iterations).
TEST(KMeans, ObjectiveNeverWorseThanBruteForceLloydFromTheSameSeeding) {
  std::vector<int32_t> truth;
  const Bools dense = grouped_bools(6, 12, 130, 0.2, 8, &truth);
  for (const Bools& b : {dense, thinned(dense, 0.3, 4)}) {
    const BitMatrix m = pack(b);
    for (int k : {4, 8, 16}) {
      for (uint64_t seed : {1u, 2u, 3u}) {
        sparsa::KMeansOptions o;
        o.k = k;
        const std::vector<float> init = sparsa::kmeans_plus_plus(m, k, seed);
        const sparsa::KMeansResult r = sparsa::kmeans_from(m, init, o);
        const double want = brute_lloyd(b, std::vector<double>(init.begin(), init.end()), k, o.max_iter, o.tol);
        EXPECT_LE(r.objective, want * (1 + 1e-9)) << "k " << k << " seed " << seed;
        EXPECT_NEAR(r.objective, brute_objective(b, r), 1e-6 * r.objective);
      }
    }
  }
}

// Centroids that are not 0/1 rows: the first assignment multiplies by float centroids, the later
// ones by integer column counts; both must follow brute-force Lloyd.
TEST(KMeans, FromFractionalCentroidsFollowsBruteForceLloyd) {
  std::vector<int32_t> truth;
  const Bools b = grouped_bools(5, 14, 150, 0.15, 12, &truth);
  const BitMatrix m = pack(b);
  std::mt19937_64 g(5);
  for (int k : {2, 3, 5}) {  // few enough that no cluster falls empty (brute_lloyd keeps an empty one in place)
    std::vector<float> init(static_cast<size_t>(k) * 150);
    for (float& v : init) v = static_cast<float>(g() % 1000) / 1000.0f;
    sparsa::KMeansOptions o;
    const sparsa::KMeansResult r = sparsa::kmeans_from(m, init, o);
    const double want = brute_lloyd(b, std::vector<double>(init.begin(), init.end()), k, o.max_iter, o.tol);
    EXPECT_NEAR(r.objective, want, 1e-6 * want) << "k " << k;
    EXPECT_NEAR(r.objective, brute_objective(b, r), 1e-6 * r.objective);
  }
}

TEST(KMeans, RepeatedRunsAggregateAndAgree) {
  std::vector<int32_t> truth;
  const BitMatrix m = pack(grouped_bools(4, 20, 150, 0.02, 31, &truth));
  sparsa::KMeansOptions o;
  o.k = 4;
  o.n_init = 2;
  const std::vector<int64_t> refs{0, 5, 10};
  const sparsa::KMeansRuns runs = sparsa::kmeans_repeated(m, o, 0, refs);
  ASSERT_EQ(runs.runs.size(), 3u);
  EXPECT_DOUBLE_EQ(runs.agreement.min, 1.0);  // every run finds the four groups
  std::vector<double> sep;
  for (const auto& q : runs.quality) sep.push_back(q.separation);
  EXPECT_DOUBLE_EQ(runs.separation.mean, (sep[0] + sep[1] + sep[2]) / 3);
  EXPECT_DOUBLE_EQ(runs.separation.max, *std::max_element(sep.begin(), sep.end()));
}

double neighbour_purity(const std::vector<double>& y, const std::vector<int32_t>& truth) {
  const size_t n = truth.size();
  int same = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t best = i == 0 ? 1 : 0;
    auto d2 = [&](size_t j) { return std::pow(y[2 * i] - y[2 * j], 2) + std::pow(y[2 * i + 1] - y[2 * j + 1], 2); };
    for (size_t j = 0; j < n; ++j)
      if (j != i && d2(j) < d2(best)) best = j;
    same += truth[best] == truth[i];
  }
  return double(same) / n;
}

TEST(Tsne, ExactAndBarnesHutKeepSeparatedGroupsApart) {
  std::vector<int32_t> truth;
  const BitMatrix m = pack(grouped_bools(4, 25, 160, 0.05, 77, &truth));
  for (auto distance : {sparsa::FeatureDistance::kJaccard, sparsa::FeatureDistance::kHamming})
    for (int64_t exact_below : {1000, 0}) {
      sparsa::TsneOptions o;
      o.perplexity = 10;
      o.iterations = 400;
      o.distance = distance;
      o.exact_below = exact_below;
      const std::vector<double> y = sparsa::tsne_2d(m, o);
      ASSERT_EQ(y.size(), 200u);
      for (double v : y) ASSERT_TRUE(std::isfinite(v));
      EXPECT_GE(neighbour_purity(y, truth), 0.98) << "exact_below " << exact_below;
    }
}

// ---- permutation null model and neighbourhoods ----

TEST(NullModel, ShuffleKeepsEveryFeaturesDensityAndMovesItsBits) {
  for (int64_t cols : {1, 63, 64, 65, 1000}) {
    const Bools b = random_bools(40, cols, 500 + cols);
    const BitMatrix m = pack(b);
    const BitMatrix s = sparsa::shuffle_rows(m, 7);
    ASSERT_EQ(s.rows(), m.rows());
    ASSERT_EQ(s.cols(), m.cols());
    int64_t moved_rows = 0, movable_rows = 0;
    for (int64_t r = 0; r < m.rows(); ++r) {
      int64_t count = 0;
      for (int64_t c = 0; c < cols; ++c) count += s.get(r, c);
      EXPECT_EQ(count, m.row_count(r)) << "row " << r << " cols " << cols;
      EXPECT_EQ(s.row_count(r), m.row_count(r));
      // Padding bits of the last word stay clear (popcounts over whole words stay exact).
      if (cols % 64) EXPECT_EQ(s.row(r)[s.words_per_row() - 1] >> (cols % 64), 0u);
      if (m.row_count(r) > 0 && m.row_count(r) < cols) {
        ++movable_rows;
        bool differs = false;
        for (int64_t c = 0; c < cols; ++c) differs |= s.get(r, c) != m.get(r, c);
        moved_rows += differs;
      }
    }
    // A row with 0 < set bits < cols keeps its exact arrangement with probability 1 / C(cols, set).
    if (cols >= 64) EXPECT_EQ(moved_rows, movable_rows) << cols;
  }
  const BitMatrix m = pack(random_bools(30, 500, 3));
  EXPECT_EQ(sparsa::shuffle_rows(m, 11).words(), sparsa::shuffle_rows(m, 11).words());
  EXPECT_NE(sparsa::shuffle_rows(m, 11).words(), sparsa::shuffle_rows(m, 12).words());
  // Rows are shuffled independently: two identical rows end up different.
  BitMatrix twins(2, 500);
  for (int64_t c = 0; c < 500; c += 3) twins.set(0, c), twins.set(1, c);
  const BitMatrix st = sparsa::shuffle_rows(twins, 5);
  EXPECT_NE(std::vector<uint64_t>(st.row(0), st.row(0) + st.words_per_row()),
            std::vector<uint64_t>(st.row(1), st.row(1) + st.words_per_row()));
}

TEST(NullModel, ShuffleIsIndependentOfThreadCount) {
  const BitMatrix m = pack(random_bools(64, 777, 9));
  omp_set_num_threads(1);
  const auto one = sparsa::shuffle_rows(m, 3).words();
  omp_set_num_threads(2);
  const auto two = sparsa::shuffle_rows(m, 3).words();
  omp_set_num_threads(omp_get_num_procs());
  EXPECT_EQ(one, two);
}

sparsa::ClusterNullOptions null_options(std::vector<int> ks) {
  sparsa::ClusterNullOptions o;
  o.ks = std::move(ks);
  o.kmeans.n_init = 2;
  o.kmeans.seed = 4;
  o.shuffles = 5;
  o.seed = 21;
  return o;
}

TEST(NullModel, PlantedClustersStandFarAboveTheNull) {
  std::vector<int32_t> truth;
  const BitMatrix m = pack(grouped_bools(4, 25, 400, 0.1, 17, &truth));
  const auto result = sparsa::cluster_null_model(m, null_options({4, 8}));
  ASSERT_EQ(result.size(), 2u);
  for (const auto& r : result) {
    SCOPED_TRACE(r.k);
    ASSERT_EQ(r.separation.null.size(), 5u);
    EXPECT_GT(r.separation.observed, 1.5);
    EXPECT_GT(r.separation.observed, r.separation.summary.max + 0.3);
    EXPECT_GT(r.separation.z, 10);
    EXPECT_DOUBLE_EQ(r.separation.p_value, 1.0 / 6);  // above every shuffle: the floor 1 / (1 + R)
    EXPECT_LT(r.separation.summary.max, 1.1);         // shuffled, no structure is left
    EXPECT_LE(r.separation.summary.min, r.separation.summary.mean);
    EXPECT_LE(r.separation.summary.mean, r.separation.summary.max);
  }
  EXPECT_DOUBLE_EQ(result[0].agreement.observed, 1.0);  // k = 4 finds the 4 planted groups every time
  EXPECT_GT(result[0].agreement.observed, result[0].agreement.summary.max);
}

TEST(NullModel, RandomDataStaysWithinTheNull) {
  // Independent features, all of density 0.3: the data are themselves a draw from the null.
  std::mt19937_64 g(99);
  BitMatrix m(80, 600);
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t c = 0; c < m.cols(); ++c) m.set(r, c, g() % 10 < 3);
  auto o = null_options({4, 8});
  o.shuffles = 9;
  const auto result = sparsa::cluster_null_model(m, o);
  for (const auto& r : result) {
    SCOPED_TRACE(r.k);
    const double spread = r.separation.summary.max - r.separation.summary.min;
    EXPECT_GT(r.separation.observed, r.separation.summary.min - spread);
    EXPECT_LT(r.separation.observed, r.separation.summary.max + spread);
    EXPECT_LT(std::abs(r.separation.z), 3.5);
    EXPECT_GT(r.separation.p_value, 0.1);
    EXPECT_LT(r.separation.observed, 1.2);
  }
  // Deterministic for the seeds.
  const auto again = sparsa::cluster_null_model(m, o);
  EXPECT_EQ(again[1].separation.null, result[1].separation.null);
  EXPECT_EQ(again[1].agreement.observed, result[1].agreement.observed);
}

TEST(Neighbourhood, ExactNearestByHammingTiesByIndex) {
  const Bools b = random_bools(300, 40, 13);  // 40 columns: many equal distances
  const BitMatrix m = pack(b);
  for (int64_t ref : {0, 57, 299}) {
    const std::vector<int64_t> got = sparsa::neighbourhood(m, ref, 128);
    ASSERT_EQ(got.size(), 128u);
    std::vector<std::pair<int, int64_t>> want;  // (distance, index) of every other feature
    for (size_t j = 0; j < b.size(); ++j)
      if (static_cast<int64_t>(j) != ref) want.emplace_back(brute_hamming(b, ref, j), j);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got[0], ref);
    for (size_t i = 1; i < got.size(); ++i) ASSERT_EQ(got[i], want[i - 1].second) << "ref " << ref << " rank " << i;
  }
  // Identical features: the reference still comes first, its twins next by index.
  BitMatrix twins(6, 10);
  for (int64_t r = 0; r < 6; ++r) twins.set(r, r < 4 ? 0 : 9);
  EXPECT_EQ(sparsa::neighbourhood(twins, 2, 4), (std::vector<int64_t>{2, 0, 1, 3}));
  EXPECT_EQ(sparsa::neighbourhood(twins, 2, 100).size(), 6u);
}

TEST(Neighbourhood, ReferencesAreDeterministicDistinctAndNonTrivial) {
  BitMatrix m(50, 100);
  for (int64_t r = 0; r < 50; ++r)
    for (int64_t c = 0; c < (r % 5 == 0 ? 0 : r % 5 == 1 ? 100 : r); ++c) m.set(r, c);  // every 5th empty, next full
  const auto a = sparsa::reference_features(m, 8, 3), b = sparsa::reference_features(m, 8, 3);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, sparsa::reference_features(m, 8, 4));
  ASSERT_EQ(a.size(), 8u);
  for (int64_t r : a) {
    EXPECT_NE(r % 5, 0);
    EXPECT_NE(r % 5, 1);
    EXPECT_EQ(std::count(a.begin(), a.end(), r), 1);
  }
  EXPECT_EQ(sparsa::reference_features(m, 100, 3).size(), 30u);  // every eligible feature, no more
  EXPECT_TRUE(sparsa::reference_features(BitMatrix(3, 10), 2, 0).empty());
}

TEST(Neighbourhood, ClusteringsOfEachReferenceAndK) {
  std::vector<int32_t> truth;
  const BitMatrix m = pack(grouped_bools(4, 50, 300, 0.05, 5, &truth));
  sparsa::NeighbourhoodOptions o;
  o.ks = {2, 4};
  o.size = 60;
  o.kmeans.n_init = 2;
  const std::vector<int64_t> refs{3, 10};
  const auto c = sparsa::neighbourhood_clusterings(m, refs, o);
  ASSERT_EQ(c.size(), 4u);
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c[i].reference, refs[i / 2]);
    EXPECT_EQ(c[i].k, o.ks[i % 2]);
    EXPECT_EQ(c[i].members, sparsa::neighbourhood(m, c[i].reference, 60));
    ASSERT_EQ(c[i].labels.size(), 60u);
    const auto q = sparsa::cluster_quality(sparsa::select_rows(m, c[i].members), c[i].labels, c[i].k);
    EXPECT_EQ(q.separation, c[i].quality.separation);
  }
  // A reference's 49 group mates come first, then 10 of another group: k = 2 splits them.
  EXPECT_GT(c[0].quality.separation, 2.0);
}

TEST(Determinism, ResultsIndependentOfThreadCount) {
  std::vector<int32_t> truth;
  const BitMatrix m = pack(grouped_bools(5, 30, 300, 0.15, 3, &truth));
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    sparsa::KMeansOptions o;
    o.k = 8;
    o.n_init = 2;
    sparsa::TsneOptions t;
    t.iterations = 300;
    t.exact_below = 0;
    t.perplexity = 8;
    return std::make_tuple(sparsa::hamming_all_pairs(m), sparsa::kmeans(m, o).labels, sparsa::kmeans(m, o).objective,
                           sparsa::tsne_2d(m, t));
  };
  const auto one = run(1), two = run(2);
  omp_set_num_threads(omp_get_num_procs());
  EXPECT_EQ(std::get<0>(one), std::get<0>(two));
  EXPECT_EQ(std::get<1>(one), std::get<1>(two));
  EXPECT_EQ(std::get<2>(one), std::get<2>(two));
  EXPECT_EQ(std::get<3>(one), std::get<3>(two));
}

TEST(BadInput, ClearErrors) {
  const BitMatrix m = pack(random_bools(5, 10, 1));
  const BitMatrix empty;
  sparsa::KMeansOptions o;
  o.k = 6;
  expect_bad_input([&] { sparsa::kmeans(m, o); }, "k = 6 must be between 1 and the number of features (5)");
  expect_bad_input([&] { sparsa::kmeans(empty, o); }, "empty");
  expect_bad_input([&] { sparsa::hamming_all_pairs(empty); }, "empty");
  std::vector<int32_t> short_buffer(10);
  expect_bad_input([&] { sparsa::hamming_all_pairs_into(pack(random_bools(4, 9, 1)), short_buffer); }, "need 16");
  expect_bad_input([&] { sparsa::hamming_from(m, 5); }, "feature 5 is out of range");
  expect_bad_input([&] { sparsa::hamming_nearest(m, 0, 0); }, "k = 0");
  expect_bad_input([&] { sparsa::block_coherence(m, sparsa::natural_order(5), 0); }, "B = 0");
  expect_bad_input([&] { sparsa::block_coherence(m, std::vector<int64_t>{0, 1, 1, 3, 4}, 2); }, "twice");
  expect_bad_input([&] { sparsa::block_coherence(m, sparsa::natural_order(4), 2); }, "lists 4 features");
  expect_bad_input([&] { sparsa::tsne_2d(empty, {}); }, "empty");
  expect_bad_input([&] { sparsa::kmeans_from(m, std::vector<float>(15), {}); }, "whole number");
  expect_bad_input([&] { sparsa::cluster_quality(m, std::vector<int32_t>{0, 1, 2, 3, 9}, 4); }, "label 9");
  expect_bad_input([&] { sparsa::shuffle_rows(empty, 0); }, "empty");
  expect_bad_input([&] { sparsa::cluster_null_model(m, null_options({6})); }, "k = 6 is not in [2, 5]");
  auto no_shuffles = null_options({2});
  no_shuffles.shuffles = 0;
  expect_bad_input([&] { sparsa::cluster_null_model(m, no_shuffles); }, "0 shuffles");
  expect_bad_input([&] { sparsa::neighbourhood(m, 5, 3); }, "feature 5 is out of range");
  expect_bad_input([&] { sparsa::neighbourhood(m, 0, 0); }, "size 0");
  expect_bad_input([&] { sparsa::reference_features(m, 0, 0); }, "count 0");
  expect_bad_input([&] { sparsa::select_rows(m, std::vector<int64_t>{7}); }, "feature 7 is out of range");
}

}  // namespace
