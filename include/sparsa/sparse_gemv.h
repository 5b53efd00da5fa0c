// sparsa/sparse_gemv.h — activation-sparse GEMV: y = W·(x ⊙ [|x| > t]) for decode.
//
// Layout. The weight is stored transposed, Wᵀ = wt[in, out] row-major, so input feature j owns the
// contiguous row wt[j, :]. An input whose |x| is at most the threshold contributes nothing, and the
// kernel skips its whole row: at activation sparsity s it reads (1 - s) of the weight bytes.
//
// Semantics (the CPU reference and the GPU kernel compute the same function):
//   y[b, o] = Σ_j  [|x[b, j]| > threshold] · x[b, j] · wt[j, o]
//   wt: [in, out] of weight_type (F32, F16 or BF16); x: [batch, in] fp32; y: [batch, out] fp32.
// For batch > 1 the GPU reads the rows active in ANY batch row (the union) once; each batch row
// still uses only its own active inputs. Accumulation is fp32 on the GPU, fp64 in the reference.
// Every element of y is written (inactive everything gives 0).
//
// Fused launches. M = 2 or 3 products that share one x (q/k/v, gate/up) run as one launch, each
// with its own weight, output width, threshold and y (GemvFusedShape, GemvPart):
//   y_m[b, o] = Σ_j  [|x[b, j]| > t_m] · x[b, j] · wt_m[j, o]        m = 0 ... M - 1
// The grid covers the column tiles of all M matrices; each cluster finds its matrix from its tile.
// A fused launch gives bit for bit what M single launches give with the same warps and split
// (a column's fp32 sum runs in an order fixed by the active rows, warps and split alone).
//
// Tuning. A GemvConfig is one tile configuration of the GPU kernel. GemvTuneTable maps a
// GemvKey / GemvFusedKey (dtype, batch, in, the outs, sparsity bin) to the fastest config measured
// for it and persists as JSON, so that the next process starts tuned. Lookups of untuned keys fall
// back to default_gemv_config(). Tables are plain values: not thread-safe, copy freely.
#pragma once

#include "sparsa/tensor.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sparsa {

struct GemvShape {
  DType weight_type = DType::BF16;  // F32, F16 or BF16
  int64_t batch = 1;                // 1 ... kGemvMaxBatch on the GPU (any >= 1 on the CPU)
  int64_t in = 0;                   // rows of wt, length of each x row
  int64_t out = 0;                  // columns of wt, length of each y row
};

inline constexpr int64_t kGemvMaxBatch = 8;
inline constexpr size_t kGemvMaxParts = 3;  // products in one fused launch

// A fused launch: 1 ... kGemvMaxParts products that share x, hence the weight type, batch and in.
struct GemvFusedShape {
  DType weight_type = DType::BF16;
  int64_t batch = 1;
  int64_t in = 0;
  std::vector<int64_t> outs;  // output width of each part, in the order of the parts

  static GemvFusedShape single(const GemvShape& s) { return {s.weight_type, s.batch, s.in, {s.out}}; }
  GemvShape part(size_t m) const { return {weight_type, batch, in, outs.at(m)}; }
};

// One product of a fused launch. The pointers are borrowed (host pointers for the reference,
// device pointers for the GPU); wt is [in, outs[m]] of the shape's weight type, y [batch, outs[m]].
// No y may alias x, a weight or another part's y.
struct GemvPart {
  const void* wt = nullptr;
  float* y = nullptr;
  float threshold = 0.0f;
};

// CPU reference. Host pointers; shapes as above. Throws Error(kBadInput) for an unsupported
// weight type or negative sizes.
void sparse_gemv(const GemvShape& shape, const void* wt, const float* x, float* y, float threshold);

// The threshold that leaves round(sparsity × n) of the n values inactive: the k-th smallest |v|
// (k = that count), or -1 (every value active) when k is 0. sparsity is clamped to [0, 1].
float sparsity_threshold(std::vector<float> values, float sparsity);

// CPU reference of a fused launch: sparse_gemv() of every part over the shared x [batch, in].
// Throws Error(kBadInput) when parts.size() differs from shape.outs.size(), for no parts or more
// than kGemvMaxParts, and where sparse_gemv() does.
void sparse_gemv_fused(const GemvFusedShape& shape, std::span<const GemvPart> parts, const float* x);

// ---- tile configurations and the tuning table ----

// One launch configuration. A block owns a tile of columns and a slice of the active rows:
//   columns per block = 32 lanes × vecs × (elements per 16-byte load), or 32 × vecs when the
//   weight rows are not 16-byte aligned (scalar loads);
//   unroll = rows each warp loads before it uses the first (loads in flight);
//   warps = warps per block, each scanning and reading its own share of the block's inputs;
//   split = blocks of one thread-block cluster that split the inputs (split-K) and reduce their
//   fp32 partials through distributed shared memory: no atomics, deterministic;
//   pdl = programmatic dependent launch: the launch may start while the previous kernel on its
//   stream finishes (its blocks wait for that kernel's completion before they read x), and lets
//   the next one start once every block has read its weights. The result is the same either way.
struct GemvConfig {
  int vecs = 1;      // 1 or 2
  int unroll = 4;    // 4 or 8
  int warps = 8;     // 4 or 8
  int split = 8;     // 1, 2, 4, 8 or 16
  bool pdl = false;  // false or true
  bool operator==(const GemvConfig&) const = default;
};

// Sparsity bins are 5 % wide: bin = round(sparsity × 20), 0 ... 20.
int gemv_sparsity_bin(float sparsity);

struct GemvKey {
  GemvShape shape;
  int sparsity_bin = 0;
  std::string str() const;  // "bf16 b1 in4096 out14336 s50" — also the key in the JSON file
};

// The key of a fused launch. The bin is that of one expected sparsity for the whole launch (for
// parts with different thresholds: the mean of their sparsities weighted by out). A one-part key
// is the GemvKey of that part: the same string, the same table entry.
struct GemvFusedKey {
  GemvFusedShape shape;
  int sparsity_bin = 0;
  std::string str() const;  // "bf16 b1 in4096 out4096+1024+1024 s50"
};

// The candidates the tuner times for a shape: every config the kernel supports for it
// (shared memory, registers and input-slice limits applied). A fused shape whose parts are not
// all 16-byte aligned rows (out a multiple of 16 bytes / element) takes the scalar tile for all;
// one with no parts or more than kGemvMaxParts has no candidates.
std::vector<GemvConfig> gemv_candidates(const GemvShape& shape);
std::vector<GemvConfig> gemv_candidates(const GemvFusedShape& shape);

// A config that is reasonable for any shape without tuning (one of gemv_candidates(shape)).
GemvConfig default_gemv_config(const GemvShape& shape);
GemvConfig default_gemv_config(const GemvFusedShape& shape);

// Thread blocks one launch of `shape` with `config` runs (column tiles × split), for benchmarks
// that compare launch costs. Pure function of its arguments.
int64_t gemv_grid_blocks(const GemvShape& shape, const GemvConfig& config);

class GemvTuneTable {
 public:
  std::optional<GemvConfig> find(const GemvKey& key) const;
  std::optional<GemvConfig> find(const GemvFusedKey& key) const;
  GemvConfig lookup(const GemvKey& key) const;  // find() or default_gemv_config()
  GemvConfig lookup(const GemvFusedKey& key) const;
  void set(const GemvKey& key, const GemvConfig& config);
  void set(const GemvFusedKey& key, const GemvConfig& config);
  size_t size() const { return entries_.size(); }

  // JSON: {"version": 1, "entries": {"<key>": {"vecs":…, "unroll":…, "warps":…, "split":…,
  // "pdl":…}}}; an entry without "pdl" (tables written before it existed) has pdl false.
  // load() of a missing file gives an empty table; a malformed file throws Error(kBadInput)
  // naming it. save() writes atomically.
  static GemvTuneTable load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path) const;

 private:
  std::map<std::string, GemvConfig> entries_;
};

// ---- the GPU kernel (throws "built without CUDA" in CPU-only builds) ----

// A launch plan for one shape: the config and the validated shape. Plans are immutable and
// hold no device memory; run() may be captured into a CUDA graph.
class SparseGemvCuda {
 public:
  // Throws Error(kBadInput) for shapes the kernel does not support (batch > kGemvMaxBatch,
  // sizes < 1, no candidate config: in > 16 × 8192, or about 96 Ki at batch 8) or a config that
  // is not among gemv_candidates(shape).
  SparseGemvCuda(const GemvShape& shape, const GemvConfig& config);
  // Uses table.lookup() with the sparsity the caller expects (e.g. the one its threshold was
  // calibrated for); the expected sparsity only selects the config, never the result.
  SparseGemvCuda(const GemvShape& shape, float expected_sparsity, const GemvTuneTable& table);

  // Device pointers: wt [in, out], x [batch, in], y [batch, out]; y must not alias x or wt.
  // Enqueues on `stream` (a cudaStream_t; nullptr = the legacy default stream) and returns.
  void run(const void* wt, const float* x, float* y, float threshold, void* stream = nullptr) const;

  const GemvShape& shape() const { return shape_; }
  const GemvConfig& config() const { return config_; }

 private:
  GemvShape shape_;
  GemvConfig config_;
};

// A launch plan for a fused shape (1 ... kGemvMaxParts parts sharing x): one kernel launch
// computes every part. Immutable, holds no device memory; run() may be captured into a graph.
// With one part it is the same launch as SparseGemvCuda.
class SparseGemvFusedCuda {
 public:
  // Throws Error(kBadInput) as SparseGemvCuda does, and for no parts or more than kGemvMaxParts.
  SparseGemvFusedCuda(GemvFusedShape shape, const GemvConfig& config);
  SparseGemvFusedCuda(GemvFusedShape shape, float expected_sparsity, const GemvTuneTable& table);

  // parts[m]: device pointers wt [in, outs[m]] (16-byte aligned when the plan uses 16-byte
  // loads: every out a multiple of 16 bytes / element) and y [batch, outs[m]], and part m's
  // threshold; x [batch, in] device. Throws Error(kBadInput) when parts.size() differs from the
  // shape's. Enqueues on `stream` and returns.
  void run(std::span<const GemvPart> parts, const float* x, void* stream = nullptr) const;

  const GemvFusedShape& shape() const { return shape_; }
  const GemvConfig& config() const { return config_; }

 private:
  GemvFusedShape shape_;
  GemvConfig config_;
};

// Times every candidate for (shape, expected_sparsity) on random device data (weights rotated
// over buffers larger than the L2, x drawn so that the expected fraction is inactive), median of
// `reps` launches each, stores the fastest in `table` and returns it. Allocates and frees
// device memory; synchronous.
GemvConfig tune_sparse_gemv(const GemvShape& shape, float expected_sparsity, GemvTuneTable& table,
                            int reps = 30);
// The same for a fused shape: every part's x threshold is drawn for expected_sparsity; the
// fastest config is stored under GemvFusedKey{shape, gemv_sparsity_bin(expected_sparsity)}.
GemvConfig tune_sparse_gemv_fused(const GemvFusedShape& shape, float expected_sparsity, GemvTuneTable& table,
                                  int reps = 30);

// ---- measured speed-up against the dense GEMV (the study's speed section) ----

struct GemvSpeed {
  double sparse_us = 0;  // SparseGemvCuda at the threshold, with the config tune_sparse_gemv() picks
  double dense_us = 0;   // cuBLAS dense GEMV of the same shape and weight type (cublasGemmEx, op T,
                         // weight type in and out, fp32 compute): every weight read
  GemvConfig config;     // the sparse kernel's config
};

// Times batch-1 launches of `shape` (shape.batch must be 1; weight type F16 or BF16) on real inputs:
// x [n, in] (host, n >= 1, e.g. a layer's activations over n tokens); launch i of a graph of 16 uses
// row i % n of x and its own copy of random non-zero weights (copies rotated over more than the
// L2). Both kernels are timed the same way: CUDA events around each replay of the graph, the median
// of `reps` replays ÷ 16. cuBLAS gets the same x rows rounded to the weight type. The sparse
// kernel's config is tuned first for `expected_sparsity` (a scratch table). Allocates and frees
// device memory; synchronous. Throws Error(kBadInput) for another batch or type, x not a multiple
// of in or empty, reps < 1; Error(kRuntime) for CUDA / cuBLAS failures ("built without CUDA" in
// CPU-only builds).
GemvSpeed time_sparse_vs_dense_gemv(const GemvShape& shape, std::span<const float> x, float threshold,
                                    float expected_sparsity, int reps = 100);

}  // namespace sparsa
