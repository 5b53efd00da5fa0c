// sparsa/coactivation.h — how the features of a binary matrix co-activate.
//
// Input: a BitMatrix whose rows are features and whose columns are observations (tokens of an
// activation bitset, or input positions of a pruning mask viewed feature by feature). Every
// function reads the matrix only (concurrent calls on one matrix are fine), allocates what it
// returns, and throws sparsa::Error(kBadInput) with a one-line message for bad arguments (an
// empty matrix, k larger than the number of features, an out-of-range feature, B < 1, …).
// Results never depend on the number of OpenMP threads or on the CPU's vector width: distances
// are exact integers, and every floating-point sum is taken in a fixed order.
//
// Randomness: std::mt19937_64 seeded with the given seed (its output sequence is fixed by the
// C++ standard); uniform numbers in [0, 1) are (next() >> 11) * 2^-53 and normals come from
// Box-Muller on those, never from <random>'s distributions (which differ between standard
// libraries). So a seed gives the same result on every machine.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparsa/bitmatrix.h"

namespace sparsa {

// ---- Hamming distances (src/analysis/hamming.cpp) --------------------------------------------

// The Hamming kernels' instruction sets, chosen once at run time from CPUID: the popcount kernel
// (AVX-512 VPOPCNTDQ, or AVX2 nibble lookup) and the bit-sliced one (AVX-512 F/VL/BW, or AVX2).
// kAuto: each kernel the widest this CPU runs. kAvx2: the AVX2 versions even on an AVX-512 CPU,
// as a CPU without AVX-512 runs them (tests and benches compare the two). kAvx512: the AVX-512
// versions; kBadInput when the CPU lacks any of AVX-512 F, VL, BW, VPOPCNTDQ. Every choice gives
// identical integers. Process-wide: not to be called while another thread computes distances.
enum class KernelIsa { kAuto, kAvx2, kAvx512 };
void force_kernel_isa(KernelIsa isa);
// The kernels in use now, named for benches: popcount "AVX-512 VPOPCNTDQ", "AVX2" or "portable";
// bit-sliced "AVX-512", "AVX2" or "none" (static strings).
struct HammingKernels {
  const char* popcount;
  const char* bitsliced;
};
HammingKernels active_hamming_kernels();

// Number of columns in which features a and b differ, for b = every row. [rows]
std::vector<int32_t> hamming_from(const BitMatrix& m, int64_t reference);

// The co-activation gradient: every feature ordered by Hamming distance from `reference`,
// ties broken by feature index (so the reference comes first unless an identical feature has a
// smaller index). [rows]
std::vector<int64_t> coactivation_order(const BitMatrix& m, int64_t reference);

// The k features nearest to `reference` (itself excluded), nearest first, ties by index.
// [min(k, rows - 1)]; k must be >= 1.
std::vector<int64_t> hamming_nearest(const BitMatrix& m, int64_t reference, int64_t k = 128);

// Distances from each listed feature to every row, in cache-sized tiles, OpenMP across tiles.
// [features.size(), rows] row-major.
std::vector<int32_t> hamming_to(const BitMatrix& m, std::span<const int64_t> features);

// How hamming_all_pairs counts. kPopcount: pairs of rows ANDed and popcounted word by word (the
// popcount kernel above), in cache-sized tiles; work per pair ~ columns. kBitSliced: for each
// row, its set columns of 512 other features summed at once into bit-sliced counters
// (carry-save adders; AVX-512 or AVX2, else kBadInput); work per pair ~ the row's set bits,
// so it wins on sparse rows. kAuto: kBitSliced when the CPU has it and at most
// kBitSlicedMaxDensity of the bits are set, else kPopcount. Every method gives identical integers.
enum class AllPairsMethod { kAuto, kPopcount, kBitSliced };
inline constexpr double kBitSlicedMaxDensity = 0.25;
bool bitsliced_hamming_available();  // this CPU runs kBitSliced

// All pairwise Hamming distances, symmetric with a zero diagonal. [rows, rows] row-major.
// Over the upper triangle, OpenMP across tiles; the lower one is mirrored.
std::vector<int32_t> hamming_all_pairs(const BitMatrix& m, AllPairsMethod method = AllPairsMethod::kAuto);
// The same into a caller-owned [rows, rows] buffer, which need not be initialised (every element
// is written). A buffer of 8 MiB or more is first faulted in by the worker threads with
// madvise(MADV_POPULATE_WRITE) (Linux 5.14+; elsewhere its pages fault in on first write), which
// saves a page-fault trap per 4 KiB. kBadInput unless out.size() == rows * rows.
void hamming_all_pairs_into(const BitMatrix& m, std::span<int32_t> out, AllPairsMethod method = AllPairsMethod::kAuto);

// ---- k-means on binary vectors (src/analysis/kmeans.cpp) -------------------------------------
//
// Minimises the objective sum_i ||x_i - c_{label_i}||^2 over 0/1 rows x_i and float centroids c
// (= scikit-learn KMeans' inertia_). Lloyd's algorithm as scikit-learn runs it: assign every row
// to its nearest centroid (ties: lowest cluster index); stop when no label changes; otherwise
// move each centroid to the mean of its rows and stop when the total squared centroid shift is
// <= tol * (mean over columns of the column variance), or after max_iter iterations. A cluster
// left empty takes the row with the largest bound on its distance to its own centroid (lowest
// index on ties). Hamerly's distance bounds skip rows that provably keep their label, so the labels
// are Lloyd's (up to float rounding in near-ties), only faster. The dot products of the assignment
// step are exact integers for 0/1 centroids (AND popcounts) and for means (column counts / size).

struct KMeansOptions {
  int k = 8;                    // number of clusters, 1 <= k <= rows
  int n_init = 4;               // k-means++ seedings tried; the lowest objective wins
  uint64_t seed = 0;            // seeding i uses mt19937_64(seed + i)
  int max_iter = 300;           // Lloyd iterations per seeding
  double tol = 1e-4;            // relative centroid-shift tolerance (scikit-learn's tol)
  int64_t first_center = -1;    // >= 0: this feature is the first centre of every seeding
};

struct KMeansResult {
  std::vector<int32_t> labels;   // [rows], in [0, k)
  std::vector<float> centroids;  // [k, cols] the final centres (the means the last labels were assigned to)
  double objective = 0;          // sum of squared Euclidean distances to the centroids
  int iterations = 0;            // Lloyd iterations of the winning seeding
  uint64_t seed = 0;             // the seed of the winning seeding
};

// Greedy k-means++ (as scikit-learn): the first centre is uniform (or options.first_center);
// each later centre is the best, by resulting potential, of 2 + floor(ln k) candidates drawn with
// probability proportional to the squared distance to the nearest chosen centre. Returns the
// chosen rows as 0/1 float centroids. [k, cols]
std::vector<float> kmeans_plus_plus(const BitMatrix& m, int k, uint64_t seed, int64_t first_center = -1);

// Lloyd's algorithm from the given centroids ([k, cols]); ignores n_init, seed, first_center.
KMeansResult kmeans_from(const BitMatrix& m, std::span<const float> initial_centroids,
                         const KMeansOptions& options);

// Best of options.n_init seedings.
KMeansResult kmeans(const BitMatrix& m, const KMeansOptions& options);

// ---- cluster quality and agreement (src/analysis/cluster_metrics.cpp) ------------------------

// Distances are Hamming distances as a fraction of the columns, between pairs of distinct rows.
struct ClusterQuality {
  std::vector<int64_t> sizes;  // [k] rows per cluster
  double within = 0;      // mean over unordered pairs in the same cluster (NaN: no such pair)
  double between = 0;     // mean over unordered pairs in different clusters (NaN: no such pair)
  double separation = 0;  // between / within (+inf when within == 0, NaN when either is NaN)
};
// labels: [rows] in [0, k). Exact (integer pair sums from per-cluster column counts).
ClusterQuality cluster_quality(const BitMatrix& m, std::span<const int32_t> labels, int k);

// Hubert & Arabie's adjusted Rand index of two labelings of the same items (labels >= 0):
// 1 for identical partitions, about 0 for independent ones; 1 when both put everything in one
// cluster (or each item alone).
double adjusted_rand_index(std::span<const int32_t> a, std::span<const int32_t> b);

struct Summary {
  double mean = 0, stddev = 0, min = 0, max = 0;  // stddev: population (divides by count)
};
Summary summarize(std::span<const double> values);

struct KMeansRuns {
  std::vector<KMeansResult> runs;
  std::vector<ClusterQuality> quality;  // [runs]
  Summary objective, within, between, separation;
  Summary agreement;  // adjusted Rand index over all pairs of runs (all 1 when there is one run)
};
// Repeated k-means: run r uses seed options.seed + 1000 * r and, when `reference_features` is
// not empty, first_center = reference_features[r] (then runs = reference_features.size()).
KMeansRuns kmeans_repeated(const BitMatrix& m, const KMeansOptions& options, int runs,
                           std::span<const int64_t> reference_features = {});

// Features sorted by (label, index): the layout a co-activation-aware kernel would use. [rows]
std::vector<int64_t> cluster_order(std::span<const int32_t> labels);

// ---- permutation null model and neighbourhoods (src/analysis/null_model.cpp) ----------------

// Each row's set bits moved to columns drawn uniformly without replacement (a partial
// Fisher-Yates shuffle), independently per row, with row r's mt19937_64 seeded from a mix of
// (seed, r): every feature keeps its exact number of set bits (its density), while which features
// are active together becomes chance. OpenMP across rows; the result does not depend on the thread
// count. [rows, cols]
BitMatrix shuffle_rows(const BitMatrix& m, uint64_t seed);

// One statistic on the data against its values on shuffled copies (shuffle_rows).
struct NullComparison {
  double observed = 0;
  std::vector<double> null;  // [shuffles] in shuffle order
  Summary summary;           // of `null`: mean, population stddev, min, max (the reported interval)
  // One-sided permutation p-value, (1 + #{null >= observed}) / (1 + shuffles): its floor is
  // 1 / (1 + shuffles), so 19 shuffles are needed before it can fall below 0.05.
  double p_value = 1;
  double z = 0;  // (observed - null mean) / null stddev; +-inf when the stddev is 0 and they differ, 0 when equal
};

struct ClusterNullOptions {
  std::vector<int> ks{4, 8, 16};  // each in [2, rows]
  KMeansOptions kmeans;           // n_init, seed, max_iter, tol (k is taken from ks)
  int runs = 2;                   // kmeans_repeated runs per matrix and k (>= 1; 1: agreement is 1)
  int shuffles = 5;               // R, >= 1
  uint64_t seed = 0;              // shuffle r is shuffle_rows(m, seed + r), shared by every k
};
struct ClusterNull {
  int k = 0;
  // Separation ratio (cluster_quality) of the run with the lowest objective among `runs` runs.
  NullComparison separation;
  // Mean adjusted Rand index between the runs (their seeds differ by 1000, as kmeans_repeated).
  NullComparison agreement;
};
// The same k-means (same k, n_init, seeds) on m and on each of `shuffles` shuffled copies. [ks]
std::vector<ClusterNull> cluster_null_model(const BitMatrix& m, const ClusterNullOptions& options);

// The seed's "multi-execution" procedure: the `size` features nearest to `reference` by Hamming
// distance, the reference itself first (it is at distance 0), then hamming_nearest(m, reference,
// size - 1) (nearest first, ties by index). [min(size, rows)]
std::vector<int64_t> neighbourhood(const BitMatrix& m, int64_t reference, int64_t size = 128);

// `count` distinct reference features drawn uniformly (a partial Fisher-Yates shuffle with
// mt19937_64(seed)) among the features whose density d (set bits / cols) has 0 < d < 1 and
// min_density <= d <= 1 - min_density; fewer when fewer are eligible, none when none is.
// min_density in [0, 0.5]. [<= count]
std::vector<int64_t> reference_features(const BitMatrix& m, int count, uint64_t seed, double min_density = 0.01);

// The listed rows as a new matrix, in the listed order. [rows.size(), cols]
BitMatrix select_rows(const BitMatrix& m, std::span<const int64_t> rows);

struct NeighbourhoodOptions {
  std::vector<int> ks{4, 8, 16};  // each in [2, size]
  int64_t size = 128;             // features per neighbourhood
  KMeansOptions kmeans;           // n_init, seed, max_iter, tol (k is taken from ks)
};
struct NeighbourhoodClustering {
  int64_t reference = 0;
  int k = 0;
  std::vector<int64_t> members;  // neighbourhood(m, reference, size) [n]
  std::vector<int32_t> labels;   // k-means labels of members [n]
  ClusterQuality quality;        // of the members' rows
  double objective = 0;
};
// For each reference and each k: k-means (options.kmeans, best of n_init) on the reference's
// neighbourhood. [references.size() * ks.size()], reference-major.
std::vector<NeighbourhoodClustering> neighbourhood_clusterings(const BitMatrix& m,
                                                               std::span<const int64_t> references,
                                                               const NeighbourhoodOptions& options);

// ---- MMM block coherence (src/analysis/coherence.cpp) ----------------------------------------

// Cuts `order` (a permutation of the rows) into consecutive blocks of B features (the last block
// may be shorter) and returns the fraction of (column, block) cells in which every feature of the
// block is zero: the share of block work a sparse kernel could skip.
double block_coherence(const BitMatrix& m, std::span<const int64_t> order, int64_t block_size);
std::vector<int64_t> natural_order(int64_t rows);  // 0, 1, …, rows - 1

// ---- t-SNE (src/analysis/tsne.cpp) -----------------------------------------------------------

enum class FeatureDistance {
  kHamming,  // differing columns / cols (= squared Euclidean distance of the 0/1 rows / cols)
  kJaccard,  // 1 - |a and b| / |a or b|; 0 when both rows are empty
};

// The optimisation's phases: kTsneExaggerationSteps steps of early exaggeration, then the
// steps that converge. Fewer than kTsneMinIterations steps in all leave the embedding
// unconverged or collapsed (the study refuses them).
inline constexpr int kTsneExaggerationSteps = 250;
inline constexpr int kTsneMinIterations = kTsneExaggerationSteps + 250;

struct TsneOptions {
  double perplexity = 30;     // clamped to (rows - 1) / 3
  int iterations = 1000;      // gradient steps; the first 250 use early exaggeration 12
  uint64_t seed = 0;          // initial positions: N(0, 1e-4) from mt19937_64(seed)
  FeatureDistance distance = FeatureDistance::kJaccard;
  double theta = 0.5;         // Barnes-Hut opening angle
  int64_t exact_below = 1500; // rows < this: exact O(n^2) t-SNE; else Barnes-Hut over 3*perplexity neighbours
  double learning_rate = 0;   // 0: scikit-learn's "auto", max(rows / 48, 50)
};
// A 2-D embedding of the features (van der Maaten's t-SNE with momentum and gains). Deterministic
// for a seed, whatever the thread count. Needs rows >= 2. [rows, 2]
std::vector<double> tsne_2d(const BitMatrix& m, const TsneOptions& options);

// Whether a 2-D embedding xy [n, 2] is degenerate, not worth a figure: fewer than 2 points, a
// non-finite coordinate, points that never spread out (the larger principal standard deviation
// below 1e-3: the initial noise is 1e-4), points on a line (the smaller principal standard
// deviation below 1e-3 of the larger), or a collapsed bulk (half the points within 1e-3 of the
// largest distance from the coordinate-wise median, as when a few outliers fly off).
bool tsne_collapsed(const std::vector<double>& xy);

}  // namespace sparsa
