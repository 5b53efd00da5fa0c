// src/cuda/sparse_gemv_blocks.cuh — the limits of the block-skipping GEMV kernel and its
// launcher (private to src/cuda). Plain C++ with no CUDA headers: the candidate filter (always
// compiled) and the kernel (sparse_gemv_blocks.cu) read the same limits.
#pragma once

#include "cuda/sparse_gemv.cuh"

#include <cstdint>

namespace sparsa::cuda::gemv {

inline constexpr int kMaxBlockRows = kWarpSize;  // a block never straddles a warp's 32-row scan step

// Rows one block of the cluster scans, and one warp of it: multiples of 32, so that the blocks
// of rows are aligned to the warps' scan steps.
inline int64_t round_up_32(int64_t n) { return (n + 31) / 32 * 32; }
inline int64_t block_chunk_rows(const LaunchShape& s, int split) { return round_up_32((s.in + split - 1) / split); }
inline int64_t block_segment_rows(const LaunchShape& s, int warps, int split) {
  return round_up_32((block_chunk_rows(s, split) + warps - 1) / warps);
}
// Partials [warps][batch tile][columns] + per warp masked x [segment][batch tile] fp32 and a list
// of active blocks (uint16, at most one per row).
inline int64_t block_shared_bytes(const LaunchShape& s, int vecs, int warps, int split) {
  const int64_t partials = int64_t{warps} * batch_tile(s.batch) * tile_columns(s, vecs) * 4;
  const int64_t lists = int64_t{warps} * block_segment_rows(s, warps, split) * (2 + 4 * batch_tile(s.batch));
  return partials + (lists + 15) / 16 * 16;
}

// Enqueues the kernel; arguments were validated by the plan. Defined in sparse_gemv_blocks.cu.
void launch_sparse_gemv_blocks(const LaunchShape& s, int block_rows, int vecs, int unroll, int warps, int split,
                               const void* wt, const float* x, float* y, float threshold, void* stream);

}  // namespace sparsa::cuda::gemv
