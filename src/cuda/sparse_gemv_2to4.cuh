// src/cuda/sparse_gemv_2to4.cuh — the limits of the 2:4 sparse GEMV kernel and its launcher
// (private to src/cuda). Plain C++ with no CUDA headers: the candidate filter (always compiled)
// and the kernel (sparse_gemv_2to4.cu) read the same limits.
#pragma once

#include "cuda/sparse_gemv.cuh"
#include "sparsa/sparse_gemv_2to4.h"

#include <cstdint>

namespace sparsa::cuda::gemv24 {

using gemv::batch_tile;
using gemv::kMaxRegisterWords;
using gemv::kMaxSharedBytes;
using gemv::kMaxSplit;
using gemv::kWarpSize;
using gemv::WeightType;

inline constexpr int kVectorColumns = 8;          // columns per 16-byte value load and per index word
inline constexpr int64_t kMaxChunkGroups = 65535;  // groups one block scans (uint16 offsets)

struct LaunchShape {
  WeightType type;
  int64_t batch, in, out;
  int epl;  // columns per lane and load: 8 (16-byte loads) when out % 8 == 0, else 1
};

inline LaunchShape launch_shape(const GemvShape& s) {
  return {s.weight_type == DType::F16 ? WeightType::F16 : WeightType::BF16, s.batch, s.in, s.out,
          s.out % kVectorColumns == 0 ? kVectorColumns : 1};
}

inline int64_t groups(const LaunchShape& s) { return s.in / kGemv2to4Group; }
inline int64_t tile_columns(const LaunchShape& s, int vecs) { return int64_t{kWarpSize} * vecs * s.epl; }
inline int64_t chunk_groups(const LaunchShape& s, int split) { return (groups(s) + split - 1) / split; }
// Per warp a list of active groups: uint16 offset + the group's 4 masked x per batch row.
inline int64_t shared_bytes(const LaunchShape& s, int vecs, int warps, int split) {
  return gemv::list_shared_bytes(s.batch, tile_columns(s, vecs), warps, chunk_groups(s, split),
                                 static_cast<int>(kGemv2to4Group));
}
// Loads in flight (2 value loads of 4 words + 1 index word per vec and group) + accumulators.
inline int register_words(const LaunchShape& s, int vecs, int unroll) {
  return unroll * vecs * 9 + batch_tile(s.batch) * vecs * s.epl;
}

// Enqueues the kernel; arguments were validated by the plan. Defined in sparse_gemv_2to4.cu.
void launch_sparse_gemv_2to4(const LaunchShape& s, int vecs, int unroll, int warps, int split, const void* values,
                             const uint32_t* indices, const float* x, float* y, float threshold, void* stream);

}  // namespace sparsa::cuda::gemv24
