// src/cuda/sparse_gemv_masked.cuh — the limits of the unstructured-mask sparse GEMV kernel and
// its launcher (private to src/cuda). Plain C++ with no CUDA headers: the candidate filter
// (always compiled) and the kernel (sparse_gemv_masked.cu) read the same limits.
#pragma once

#include "cuda/sparse_gemv.cuh"
#include "sparsa/sparse_gemv_masked.h"

#include <cstdint>

namespace sparsa::cuda::gemv {

inline constexpr int64_t kMaskedMaxChunk = 65536;  // rows one block scans (uint16 offsets)

// Rows one block of the cluster scans and one warp of it (multiples of 32, as row_segment()).
inline int64_t masked_chunk_rows(int64_t in, int split) { return ((in + split - 1) / split + 31) / 32 * 32; }
inline int64_t masked_segment_rows(int64_t in, int warps, int split) {
  return ((masked_chunk_rows(in, split) + warps - 1) / warps + 31) / 32 * 32;
}
// Partials [warps][batch tile][256] fp32, a 512-byte value stage per warp and row in flight,
// per warp masked x [segment][batch tile] fp32 and a uint16 list of active rows.
inline int64_t masked_shared_bytes(int64_t batch, int64_t in, int unroll, int warps, int split) {
  const int64_t partials = int64_t{warps} * batch_tile(batch) * kGemvMaskTile * 4;
  const int64_t stage = int64_t{warps} * unroll * kGemvMaskTile * 2;
  const int64_t lists = int64_t{warps} * masked_segment_rows(in, warps, split) * (2 + 4 * batch_tile(batch));
  return partials + stage + (lists + 15) / 16 * 16;
}
// Per row in flight: a uint4 of values, the mask byte, the offset, the prefix; + accumulators.
inline int masked_register_words(int64_t batch, int unroll) { return unroll * 7 + batch_tile(batch) * 8; }

// Enqueues the kernel; arguments were validated by the plan. Defined in sparse_gemv_masked.cu.
void launch_sparse_gemv_masked(bool bf16, int64_t batch, int64_t in, int64_t out, int unroll, int warps, int split,
                               const void* values, const uint8_t* masks, const uint32_t* offsets, const float* x,
                               float* y, float threshold, void* stream);

}  // namespace sparsa::cuda::gemv
