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
// Tuning. A GemvConfig is one tile configuration of the GPU kernel. GemvTuneTable maps a
// GemvKey (shape, dtype, batch, sparsity bin) to the fastest config measured for it and persists
// as JSON, so that the next process starts tuned. Lookups of untuned keys fall back to
// default_gemv_config(). Tables are plain values: not thread-safe, copy freely.
#pragma once

#include "sparsa/tensor.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
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

// CPU reference. Host pointers; shapes as above. Throws Error(kBadInput) for an unsupported
// weight type or negative sizes.
void sparse_gemv(const GemvShape& shape, const void* wt, const float* x, float* y, float threshold);

// The threshold that leaves round(sparsity × n) of the n values inactive: the k-th smallest |v|
// (k = that count), or -1 (every value active) when k is 0. sparsity is clamped to [0, 1].
float sparsity_threshold(std::vector<float> values, float sparsity);

// ---- tile configurations and the tuning table ----

// One launch configuration. A block owns a tile of columns and a slice of the active rows:
//   columns per block = 32 lanes × vecs × (elements per 16-byte load), or 32 × vecs when the
//   weight rows are not 16-byte aligned (scalar loads);
//   unroll = rows each warp loads before it uses the first (loads in flight);
//   warps = warps per block, each scanning and reading its own share of the block's inputs;
//   split = blocks of one thread-block cluster that split the inputs (split-K) and reduce their
//   fp32 partials through distributed shared memory: no atomics, deterministic.
struct GemvConfig {
  int vecs = 1;    // 1 or 2
  int unroll = 4;  // 4 or 8
  int warps = 8;   // 4 or 8
  int split = 8;   // 1, 2, 4, 8 or 16
  bool operator==(const GemvConfig&) const = default;
};

// Sparsity bins are 5 % wide: bin = round(sparsity × 20), 0 ... 20.
int gemv_sparsity_bin(float sparsity);

struct GemvKey {
  GemvShape shape;
  int sparsity_bin = 0;
  std::string str() const;  // "bf16 b1 in4096 out14336 s10" — also the key in the JSON file
};

// The candidates the tuner times for a shape: every config the kernel supports for it
// (shared memory, registers and input-slice limits applied).
std::vector<GemvConfig> gemv_candidates(const GemvShape& shape);

// A config that is reasonable for any shape without tuning (one of gemv_candidates(shape)).
GemvConfig default_gemv_config(const GemvShape& shape);

class GemvTuneTable {
 public:
  std::optional<GemvConfig> find(const GemvKey& key) const;
  GemvConfig lookup(const GemvKey& key) const;  // find() or default_gemv_config()
  void set(const GemvKey& key, const GemvConfig& config);
  size_t size() const { return entries_.size(); }

  // JSON: {"version": 1, "entries": {"<key>": {"vecs":…, "unroll":…, "warps":…, "split":…}}}.
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

// Times every candidate for (shape, expected_sparsity) on random device data (weights rotated
// over buffers larger than the L2, x drawn so that the expected fraction is inactive), median of
// `reps` launches each, stores the fastest in `table` and returns it. Allocates and frees
// device memory; synchronous.
GemvConfig tune_sparse_gemv(const GemvShape& shape, float expected_sparsity, GemvTuneTable& table,
                            int reps = 30);

}  // namespace sparsa
