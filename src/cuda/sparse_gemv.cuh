// src/cuda/sparse_gemv.cuh — the limits of the sparse GEMV kernel and its launcher (private
// to src/cuda). Plain C++ with no CUDA headers: the tuner's candidate filter (always compiled)
// and the kernel (sparse_gemv.cu) read the same limits.
#pragma once

#include "sparsa/sparse_gemv.h"

#include <algorithm>
#include <cstdint>
#include <span>

namespace sparsa::cuda::gemv {

inline constexpr int kWarpSize = 32;
inline constexpr int64_t kMaxChunk = 8192;            // inputs one block scans (uint16 offsets)
inline constexpr int64_t kMaxSharedBytes = 227 * 1024;  // dynamic shared memory per block (sm_90)
inline constexpr int kMaxRegisterWords = 128;         // loads in flight + accumulators per lane
inline constexpr int kMaxSplit = 16;                   // blocks per cluster (non-portable above 8)
inline constexpr int kMaxParts = static_cast<int>(kGemvMaxParts);  // products in one launch

// Weight element types the kernel is built for.
enum class WeightType { F32, F16, BF16 };

// The batch the kernel is instantiated for: the smallest of 1, 2, 4, 8 that holds `batch`.
inline int batch_tile(int64_t batch) { return batch <= 1 ? 1 : batch <= 2 ? 2 : batch <= 4 ? 4 : 8; }

// Elements per load: a 16-byte vector when every weight row starts 16-byte aligned, else one.
inline int elements_per_load(int element_bytes, int64_t out) {
  const int vec = 16 / element_bytes;
  return out % vec == 0 ? vec : 1;
}

// The shape of one launch: 1 ... kGemvMaxParts parts that share x and so the weight type, batch
// and in. Every part takes the same elements per load (16-byte vectors only when every part's
// rows are 16-byte aligned).
struct LaunchShape {
  WeightType type;
  int element_bytes;
  int64_t batch, in;
  int epl;    // elements per load (elements_per_load of every part's out)
  int parts;  // 1 ... kGemvMaxParts
  int64_t out[kGemvMaxParts];
};

inline LaunchShape launch_shape(DType weight_type, int64_t batch, int64_t in, std::span<const int64_t> outs) {
  const int bytes = static_cast<int>(dtype_size(weight_type));
  const WeightType type = weight_type == DType::F32   ? WeightType::F32
                          : weight_type == DType::F16 ? WeightType::F16
                                                      : WeightType::BF16;
  const size_t parts = std::min(outs.size(), kGemvMaxParts);  // more is refused by the plans
  LaunchShape s{type, bytes, batch, in, 16 / bytes, static_cast<int>(parts), {}};
  for (size_t m = 0; m < parts; ++m) {
    s.out[m] = outs[m];
    s.epl = std::min(s.epl, elements_per_load(bytes, outs[m]));
  }
  return s;
}
inline LaunchShape launch_shape(const GemvShape& s) { return launch_shape(s.weight_type, s.batch, s.in, {&s.out, 1}); }
inline LaunchShape launch_shape(const GemvFusedShape& s) {
  return launch_shape(s.weight_type, s.batch, s.in, s.outs);
}

// Columns of y owned by one cluster, inputs scanned by one block, and a block's shared memory.
inline int64_t tile_columns(const LaunchShape& s, int vecs) { return int64_t{kWarpSize} * vecs * s.epl; }
inline int64_t chunk_rows(const LaunchShape& s, int split) { return (s.in + split - 1) / split; }
// A list kernel's block: fp32 partials [warps][batch tile][columns], then per warp a list of its
// active entries (of `chunk` per block, plus one per warp for rounding), each a uint16 offset and
// `x_floats` fp32 masked x per batch row; the lists rounded up to 16 bytes.
inline int64_t list_shared_bytes(int64_t batch, int64_t columns, int warps, int64_t chunk, int x_floats) {
  const int64_t partials = int64_t{warps} * batch_tile(batch) * columns * 4;
  const int64_t lists = (chunk + warps) * (2 + 4 * x_floats * batch_tile(batch));
  return partials + (lists + 15) / 16 * 16;
}
inline int64_t shared_bytes(const LaunchShape& s, int vecs, int warps, int split) {
  return list_shared_bytes(s.batch, tile_columns(s, vecs), warps, chunk_rows(s, split), 1);  // one x per input
}
inline int register_words(const LaunchShape& s, int vecs, int unroll) {
  return unroll * vecs * 4 + batch_tile(s.batch) * vecs * s.epl;
}
// Column tiles of part m, and of all parts: the grid has total_tiles × split blocks.
inline int64_t part_tiles(const LaunchShape& s, int vecs, int m) {
  return (s.out[m] + tile_columns(s, vecs) - 1) / tile_columns(s, vecs);
}
inline int64_t total_tiles(const LaunchShape& s, int vecs) {
  int64_t t = 0;
  for (int m = 0; m < s.parts; ++m) t += part_tiles(s, vecs, m);
  return t;
}

// Enqueues the kernel for parts[0 ... s.parts - 1] (device pointers, thresholds). Arguments are
// valid here (the plan checked them); `stream` is a cudaStream_t. Defined in sparse_gemv.cu.
void launch_sparse_gemv(const LaunchShape& s, const GemvConfig& config, const GemvPart* parts, const float* x,
                        void* stream);

}  // namespace sparsa::cuda::gemv
