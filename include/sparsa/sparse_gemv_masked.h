// sparsa/sparse_gemv_masked.h — GEMV that skips pruned weights as well as inactive inputs, for
// weights pruned without structure: y = W·(x ⊙ [|x| > t]) with Wᵀ stored as a bitmask and the
// packed kept values per row. The 2:4 counterpart is sparsa/sparse_gemv_2to4.h; the dense-weight
// kernel and the shared types (GemvShape, GemvConfig) are sparsa/sparse_gemv.h.
//
// Layout. Each row j of Wᵀ [in, out] is cut into tiles of 256 columns (tiles = ⌈out / 256⌉; the
// last tile's columns past out are never kept). Per (row, tile):
//   masks   [in, tiles × 32] bytes: bit c % 8 of byte c / 8 of the tile's 32 bytes = column
//           tile × 256 + c is kept;
//   values  F16/BF16: the tile's kept values in column order, as one segment padded with zeros to
//           a multiple of 8 values (16 bytes); segments in (row, tile) order;
//   offsets [in, tiles] uint32: where each segment starts, in units of 8 values.
// Skipping an inactive input skips its mask, offsets and values: the bytes read are about
// (1 − s) × (density + 1/16 + padding) of dense, so here the two sparsities can multiply.
// The function is sparse_gemv()'s on the dense Wᵀ with the pruned weights set to 0.
//
// Thread safety: everything here is a plain value or a pure function; plans are immutable.
#pragma once

#include "sparsa/sparse_gemv.h"

#include <cstdint>
#include <vector>

namespace sparsa {

inline constexpr int64_t kGemvMaskTile = 256;  // columns per mask tile: 32 lanes × 8

inline int64_t gemv_mask_tiles(int64_t out) { return (out + kGemvMaskTile - 1) / kGemvMaskTile; }

struct GemvMaskedWeights {
  DType weight_type = DType::BF16;  // F16 or BF16
  int64_t in = 0, out = 0;          // of the dense Wᵀ [in, out]
  std::vector<uint8_t> masks;       // [in, tiles × 32]
  std::vector<uint32_t> offsets;    // [in, tiles], in 16-byte units
  std::vector<uint8_t> values;      // the padded segments, elements of weight_type
  // Bytes the GPU reads when every row is active (masks + offsets + values).
  int64_t bytes() const { return static_cast<int64_t>(masks.size() + 4 * offsets.size() + values.size()); }
};

// Packs a dense Wᵀ [in, out] of `type` (F16 or BF16): mask == nullptr keeps the non-zeros of wt;
// otherwise mask [in, out] (non-zero = kept) chooses (a kept weight may be zero). Throws
// Error(kBadInput) for another type or in, out < 1.
GemvMaskedWeights pack_gemv_masked(DType type, int64_t in, int64_t out, const void* wt, const uint8_t* mask = nullptr);

// CPU reference (fp64 accumulation, rows ascending); host pointers in the layout above; x
// [batch, in], y [batch, out] fp32; every element of y is written. Throws Error(kBadInput) for
// an unsupported type or shape.
void sparse_gemv_masked(const GemvShape& shape, const void* values, const uint8_t* masks, const uint32_t* offsets,
                        const float* x, float* y, float threshold);

// The GPU kernel. A GemvConfig means: vecs = 1 (one 256-column tile per cluster), unroll = rows in
// flight (2 or 4), warps (4 or 8), split (1 … 16, split-K over a cluster as above).
std::vector<GemvConfig> gemv_masked_candidates(const GemvShape& shape);
GemvConfig default_gemv_masked_config(const GemvShape& shape);

class SparseGemvMaskedCuda {
 public:
  // Throws Error(kBadInput) for an unsupported type (F16, BF16), batch outside 1..kGemvMaxBatch,
  // in or out < 1, or a config that is not among gemv_masked_candidates(shape).
  SparseGemvMaskedCuda(const GemvShape& shape, const GemvConfig& config);
  explicit SparseGemvMaskedCuda(const GemvShape& shape);  // default_gemv_masked_config

  // Device pointers: values (16-byte aligned), masks, offsets as packed; x [batch, in], y
  // [batch, out]; y aliases nothing. Enqueues on `stream` and returns. Throws "built without
  // CUDA" in CPU-only builds.
  void run(const void* values, const uint8_t* masks, const uint32_t* offsets, const float* x, float* y,
           float threshold, void* stream = nullptr) const;

  const GemvShape& shape() const { return shape_; }
  const GemvConfig& config() const { return config_; }

 private:
  GemvShape shape_;
  GemvConfig config_;
};

}  // namespace sparsa
