// sparsa/mask_compare.h — pruning-mask sets and how two (or several) of them differ.
//
// A mask set is every "<HF module>.mask" tensor of a pruned folder's masks.safetensors or of a
// mask file in the golden format: U8 [rows, ceil(cols / 8)], numpy packbits along the input
// columns, most significant bit first, 1 = pruned. Names are parsed generically, with no role
// table, so LLaMA ("model.layers.3.mlp.down_proj") and OPT ("model.decoder.layers.3.fc1") both
// work: layer = the integer after the last "layers." segment, component = what follows it.
//
// The true column count of a mask comes, in this order, from: the matrix's weight in the same
// source (a pruned folder's checkpoint, or a ".weight" entry of the mask file itself, as the
// SparseGPT goldens carry); the weight of the same name in a `shapes_from` checkpoint; else
// cols = 8 × packed columns (every HF model we prune has multiples of 8). A weight whose row
// count or packed width disagrees with the mask is an error (exit 2).
//
// Weights, when the source has them, give the cosine similarity of the pruned weight values;
// each side's pruned positions are zeroed before the cosine is taken (the stored weights are
// normally zero there already).
//
// Definitions (kept = not pruned; per matrix, and per feature: a row = an output feature, a
// column = an input feature, the same formulas restricted to that row / column):
//   jaccard = |kept_a ∩ kept_b| / |kept_a ∪ kept_b|   (1 when both keep nothing)
//   hamming = |positions where a and b differ| / |positions|
//   sparsity_x = |pruned_x| / |positions|
//   cosine  = <w_a, w_b> / (|w_a| |w_b|) over the pruned weights (NaN when a norm is 0 or a
//             side has no weights); summaries skip NaN values.
// Over several matrices (a layer, a component, a whole model) there are two "mean Jaccard"s,
// both reported, always labelled:
//   pooled              = Σ |kept_a ∩ kept_b| / Σ |kept_a ∪ kept_b| over the matrices' entries
//                         (large matrices weigh more; GroupOverlap::counts.jaccard());
//   mean over matrices  = the average of the per-matrix Jaccard values (every matrix weighs the
//                         same; GroupOverlap::jaccard.mean).
// `sparsa compare` and REPORT.md give both, under these names, and agree on them.
//
// Memory: masks and weights are read one matrix at a time (the files stay memory-mapped).
// Thread safety: a MaskSet is immutable after open(); the functions here are thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparsa/bitmatrix.h"
#include "sparsa/tensor.h"

namespace sparsa {

class TensorStore;

// "model.layers.3.mlp.down_proj" -> {3, "mlp.down_proj"}; "model.decoder.layers.0.fc1" ->
// {0, "fc1"}; a name without a "layers.{i}." segment -> {-1, the whole name}.
struct ModuleName {
  int64_t layer = -1;
  std::string component;
};
ModuleName parse_module_name(std::string_view hf_module);

struct MaskInfo {
  std::string name;       // HF module name (the mask key without ".mask")
  int64_t layer = -1;     // from parse_module_name
  std::string component;  // "self_attn.q_proj", "mlp.down_proj", "fc1", ...
  int64_t rows = 0, cols = 0;
  bool has_weight = false;
};

class MaskSet {
 public:
  // `path`: a pruned folder (DIR/masks.safetensors + the checkpoint in DIR) or a mask
  // .safetensors file. `shapes_from`: an optional HF checkpoint (folder or file) whose weights
  // give the true column counts. Throws Error(kBadInput) naming the file / tensor on a missing
  // file, a file with no ".mask" tensor, a mask that is not U8 rank 2, or a shape conflict.
  static MaskSet open(const std::filesystem::path& path, const std::filesystem::path& shapes_from = {});
  MaskSet(MaskSet&&) noexcept;
  MaskSet& operator=(MaskSet&&) noexcept;
  ~MaskSet();

  const std::string& source() const { return source_; }
  const std::vector<MaskInfo>& matrices() const { return matrices_; }  // sorted by (layer, name)
  const MaskInfo* find(const std::string& name) const;                 // nullptr when absent
  // [rows, cols], bit = pruned.
  BitMatrix load_pruned(const MaskInfo& m) const;
  // [rows, cols] fp32 with the pruned positions zeroed; nullopt when the set has no weight for m.
  std::optional<Tensor> load_weight(const MaskInfo& m) const;

 private:
  MaskSet();
  std::string source_;
  std::vector<MaskInfo> matrices_;
  std::unique_ptr<TensorStore> masks_;    // the mask tensors
  std::unique_ptr<TensorStore> weights_;  // the weights, when the source has any (may be masks_' file)
};

// Packed U8 [rows, ceil(cols / 8)] (numpy packbits along the columns, MSB first) <-> BitMatrix
// [rows, cols]. Padding bits are ignored on reading and written as 0.
BitMatrix bits_from_packed(const uint8_t* packed, int64_t rows, int64_t cols);
std::vector<uint8_t> packed_from_bits(const BitMatrix& bits);

// ---- metrics ----

struct OverlapCounts {       // over some set of positions
  int64_t positions = 0;
  int64_t pruned_a = 0, pruned_b = 0;
  int64_t kept_both = 0;     // kept by a and by b
  int64_t differ = 0;        // pruned by exactly one side
  double jaccard() const;    // kept ∩ / kept ∪ (1 when both keep nothing)
  double hamming() const;    // differ / positions
  double sparsity_a() const;
  double sparsity_b() const;
  OverlapCounts& operator+=(const OverlapCounts& o);
};

// One value per feature (per row or per column of a matrix).
struct FeatureMetrics {
  std::vector<double> jaccard, hamming, sparsity_a, sparsity_b;
  std::vector<double> cosine;  // empty when a side has no weights
};

struct Stat {  // over the finite values; count = how many
  double mean = 0, min = 0, max = 0;
  int64_t count = 0;
};
Stat summarize(const std::vector<double>& values);

struct MatrixComparison {
  std::string name;
  int64_t layer = -1;
  std::string component;
  int64_t rows = 0, cols = 0;
  OverlapCounts counts;
  std::optional<double> cosine;  // when both sides have weights (NaN when undefined)
  FeatureMetrics per_row;        // [rows]: output features
  FeatureMetrics per_col;        // [cols]: input features
};

// a, b: [rows, cols] bit = pruned; wa, wb: optional [rows, cols] weights (already masked).
MatrixComparison compare_masks(const BitMatrix& a, const BitMatrix& b, const Tensor* wa = nullptr,
                               const Tensor* wb = nullptr);

struct GroupOverlap {        // pooled over the matrices of a layer, a component, or everything (counts.jaccard(): "pooled")
  int64_t layer = -1;        // -1 when the group spans layers
  std::string component;     // empty when the group spans components
  int64_t matrices = 0;
  OverlapCounts counts;
  Stat jaccard, hamming;     // over the group's per-matrix values (jaccard.mean: "mean over matrices")
};

struct MaskSetComparison {
  std::string a, b;                         // sources
  std::vector<MatrixComparison> matrices;   // sorted by (layer, name)
  GroupOverlap overall;
  std::vector<GroupOverlap> by_layer, by_component, by_layer_component;
};

// Compares every matrix of a with the one of the same name in b. Throws Error(kBadInput) naming
// the matrix when the name sets differ or a shape differs.
MaskSetComparison compare_mask_sets(const MaskSet& a, const MaskSet& b);

// An ablation series: one method across several mask sets (sparsities, structures), restricted
// to one layer (layer < 0: every layer), compared pairwise.
struct SeriesComparison {
  std::vector<std::string> labels;      // one per set
  int64_t layer = -1;
  std::vector<std::string> components;  // the components compared, sorted
  std::vector<double> sparsity;         // [n] pooled sparsity of each set over the compared matrices
  // [n, n] row-major, pooled over the compared matrices (diagonal: jaccard 1, hamming 0).
  std::vector<double> jaccard, hamming;
  std::vector<double> jaccard_matrix_mean;  // [n, n] the mean over the matrices of their Jaccard
  // per component: [n, n] jaccard / hamming tables, in `components` order.
  std::vector<std::vector<double>> component_jaccard, component_hamming;
};
// sets.size() >= 2; labels.size() == sets.size(). Throws Error(kBadInput) when the sets' matrices
// (restricted to the layer) differ in names or shapes, or the layer has no matrix.
SeriesComparison compare_series(const std::vector<const MaskSet*>& sets, const std::vector<std::string>& labels,
                                int64_t layer);

}  // namespace sparsa
