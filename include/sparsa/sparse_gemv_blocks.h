// sparsa/sparse_gemv_blocks.h — block-skipping activation-sparse GEMV, for co-activation-aware
// layouts (issue #8 item 6).
//
// The function is sparse_gemv()'s (sparsa/sparse_gemv.h, also its CPU reference):
//   y[b, o] = Σ_j [|x[b, j]| > threshold] · x[b, j] · wt[j, o],  wt = Wᵀ [in, out].
// Only the reading differs: the rows of wt are cut into blocks of `block_rows` consecutive rows
// (the last one may be shorter), and a block is read whole iff any of its rows is active (in any
// batch row); the per-row kernel (SparseGemvCuda) reads exactly the active rows. A block kernel
// therefore never reads fewer bytes than the per-row one; it can only win by cheaper
// bookkeeping, and only when the features are laid out so that co-active ones share blocks
// (permute the inputs by cluster_order() of sparsa/coactivation.h; a permutation changes
// nothing for the per-row kernel).
//
// Configs are GemvConfigs with the per-row kernel's meaning (vecs, unroll = rows in flight,
// warps, split). Plans are immutable values holding no device memory; run() may be captured
// into a CUDA graph.
#pragma once

#include "sparsa/sparse_gemv.h"

#include <cstdint>
#include <vector>

namespace sparsa {

// Block sizes the kernel supports: 2, 4, 8, 16 or 32 rows.
bool gemv_block_rows_supported(int block_rows);

// Fraction of the blocks of `block_rows` rows that have an active row in any batch row, over
// x [batch, in] (host); the per-row fraction for block_rows = 1. 0 when in is 0.
double gemv_blocks_read(const float* x, int64_t batch, int64_t in, float threshold, int block_rows);

// Every config the kernel supports for the shape and block size; empty when none.
std::vector<GemvConfig> gemv_block_candidates(const GemvShape& shape, int block_rows);
// A reasonable untuned config, one of the candidates (which must not be empty).
GemvConfig default_gemv_block_config(const GemvShape& shape, int block_rows);

class SparseGemvBlockCuda {
 public:
  // Throws Error(kBadInput) for an unsupported weight type (F32, F16, BF16), batch outside
  // 1..kGemvMaxBatch, in or out < 1, an unsupported block size, or a config that is not among
  // gemv_block_candidates(shape, block_rows).
  SparseGemvBlockCuda(const GemvShape& shape, int block_rows, const GemvConfig& config);
  SparseGemvBlockCuda(const GemvShape& shape, int block_rows);  // default_gemv_block_config

  // Device pointers: wt [in, out] (16-byte aligned when out is a multiple of the 16-byte vector
  // width), x [batch, in], y [batch, out]; y aliases nothing. Enqueues on `stream` (a
  // cudaStream_t; nullptr = legacy default) and returns. Throws "built without CUDA" in CPU-only
  // builds.
  void run(const void* wt, const float* x, float* y, float threshold, void* stream = nullptr) const;

  const GemvShape& shape() const { return shape_; }
  int block_rows() const { return block_rows_; }
  const GemvConfig& config() const { return config_; }

 private:
  GemvShape shape_;
  int block_rows_;
  GemvConfig config_;
};

}  // namespace sparsa
