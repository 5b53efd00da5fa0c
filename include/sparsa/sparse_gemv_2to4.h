// sparsa/sparse_gemv_2to4.h — GEMV that skips pruned weights as well as inactive inputs:
// y = W·(x ⊙ [|x| > t]) with W pruned 2:4 along its input dimension (how `sparsa prune --nm 2:4`
// prunes: for each output row, 2 of every 4 consecutive inputs are kept). The unstructured
// counterpart (a bitmask per row of Wᵀ) is sparsa/sparse_gemv_masked.h.
//
// Layout. As in sparsa/sparse_gemv.h the weight is stored transposed, Wᵀ [in, out], and `in` must
// be a multiple of 4. Input rows 4g … 4g+3 form group g (groups = in / 4). For every group g and
// column o, 2 of the 4 values Wᵀ[4g + k, o] are kept; the packed form stores
//   values  [groups × 2, out] of F16 or BF16: row 2g + r holds the r-th kept value of group g;
//   indices [groups, words(out)] uint32, words(out) = ⌈out / 8⌉: the 4 bits at (o % 8) × 4 of
//           word o / 8 are idx0 | idx1 << 2, the offsets (0 … 3, idx0 < idx1) of the kept values
//           inside the group. Unused nibbles of the last word are 0.
// A value row of 8 columns is one 16-byte load and their indices one 4-byte load, so per group
// and column 2 × 2 + 0.5 bytes are read against 4 × 2 dense: 0.5625 of the dense bytes.
//
// Semantics (the CPU reference and the GPU kernel compute the same function):
//   y[b, o] = Σ_g Σ_{r=0,1} values[2g + r, o] · xm[b, 4g + idx_r(g, o)],  xm = x ⊙ [|x| > t]
// which equals sparse_gemv() on the dense Wᵀ with the pruned weights set to 0.
// Activation skipping works on whole groups: the GPU reads group g iff any of its 4 inputs is
// active (in any batch row). At activation sparsity s with inputs independent, that is a fraction
// 1 − s⁴ of the groups (s = 0.5: 94 %), not 1 − s: the two sparsities do NOT multiply here; the
// packed bytes read are (1 − s⁴) × 0.5625 of dense. Co-active inputs (tiled patterns) do better.
//
// Thread safety: everything here is a plain value or a pure function; plans are immutable.
#pragma once

#include "sparsa/sparse_gemv.h"

#include <cstdint>
#include <vector>

namespace sparsa {

inline constexpr int64_t kGemv2to4Group = 4;  // inputs per group; 2 of them kept per column

// Words per index row: ⌈out / 8⌉ (8 columns of 4 bits per uint32).
inline int64_t gemv_2to4_index_words(int64_t out) { return (out + 7) / 8; }

// A 2:4-packed weight in host memory (layout above). Owns its buffers; copy freely.
struct Gemv2to4Weights {
  DType weight_type = DType::BF16;  // F16 or BF16
  int64_t in = 0, out = 0;          // of the dense Wᵀ [in, out]
  std::vector<uint8_t> values;      // [in / 2, out] elements of weight_type
  std::vector<uint32_t> indices;    // [in / 4, gemv_2to4_index_words(out)]
};

// Packs a dense Wᵀ [in, out] of `type` (F16 or BF16).
//   mask == nullptr: the zeros of wt are the pruned weights; every (group, column) must have at
//     most 2 non-zeros.
//   mask != nullptr: mask [in, out] (same layout as wt; non-zero = kept) chooses the kept weights;
//     every (group, column) must keep at most 2.
// Fewer than 2 kept in a (group, column) is padded with zero values. Throws Error(kBadInput) for
// another type, in not a positive multiple of 4, out < 1, or a group over 2 (the message names the
// group's first input row and the column).
Gemv2to4Weights pack_gemv_2to4(DType type, int64_t in, int64_t out, const void* wt,
                               const uint8_t* mask = nullptr);

// CPU reference: y = the function above, fp64 accumulation over groups in ascending order.
// shape.weight_type F16/BF16, shape.in a multiple of 4; values/indices in the packed layout;
// x [batch, in], y [batch, out] fp32, host pointers. Every element of y is written. Throws
// Error(kBadInput) for an unsupported type or shape.
void sparse_gemv_2to4(const GemvShape& shape, const void* values, const uint32_t* indices, const float* x,
                      float* y, float threshold);

// ---- the GPU kernel ----
//
// A GemvConfig means here: vecs = 16-byte value loads per lane and value row (1 or 2; 8 columns
// each), unroll = groups each warp loads before it uses the first (2 or 4: 4 or 8 value rows in
// flight), warps = warps per block (4 or 8), split = blocks of a thread-block cluster splitting the
// groups (split-K, partials summed through distributed shared memory: no atomics, deterministic).
// Columns that are not a multiple of 8 take a scalar kernel (vecs 1 only).

// Every config the kernel supports for the shape (register, shared-memory and group limits).
// Empty for shapes it cannot run.
std::vector<GemvConfig> gemv_2to4_candidates(const GemvShape& shape);

// A reasonable untuned config (one of the candidates); the candidates must not be empty.
GemvConfig default_gemv_2to4_config(const GemvShape& shape);

// A launch plan: config + validated shape; holds no device memory; run() may be captured into a
// CUDA graph. No tuning table: benchmarks time gemv_2to4_candidates() themselves.
class SparseGemv2to4Cuda {
 public:
  // Throws Error(kBadInput) for an unsupported type, batch outside 1..kGemvMaxBatch, in not a
  // positive multiple of 4, out < 1, or a config that is not among gemv_2to4_candidates(shape).
  SparseGemv2to4Cuda(const GemvShape& shape, const GemvConfig& config);
  explicit SparseGemv2to4Cuda(const GemvShape& shape);  // default_gemv_2to4_config

  // Device pointers: values [in / 2, out], indices [in / 4, words(out)], x [batch, in] (16-byte
  // aligned), y [batch, out]; y aliases nothing. values must be 16-byte aligned when out % 8 == 0.
  // Enqueues on `stream` (cudaStream_t; nullptr = legacy default) and returns. Throws "built
  // without CUDA" in CPU-only builds.
  void run(const void* values, const uint32_t* indices, const float* x, float* y, float threshold,
           void* stream = nullptr) const;

  const GemvShape& shape() const { return shape_; }
  const GemvConfig& config() const { return config_; }

 private:
  GemvShape shape_;
  GemvConfig config_;
};

}  // namespace sparsa
