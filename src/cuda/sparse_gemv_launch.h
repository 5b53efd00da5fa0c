// src/cuda/sparse_gemv_launch.h — the limits of the sparse GEMV kernel and its launcher (private
// to src/cuda). Plain C++ with no CUDA headers: the tuner's candidate filter (always compiled)
// and the kernel (sparse_gemv.cu) read the same limits.
#pragma once

#include "sparsa/sparse_gemv.h"

#include <cstdint>

namespace sparsa::cuda::gemv {

inline constexpr int kWarpSize = 32;
inline constexpr int64_t kMaxChunk = 8192;            // inputs one block scans (uint16 offsets)
inline constexpr int64_t kMaxSharedBytes = 227 * 1024;  // dynamic shared memory per block (sm_90)
inline constexpr int kMaxRegisterWords = 128;         // loads in flight + accumulators per lane
inline constexpr int kMaxSplit = 16;                   // blocks per cluster (non-portable above 8)

// Weight element types the kernel is built for.
enum class WeightType { F32, F16, BF16 };

// The batch the kernel is instantiated for: the smallest of 1, 2, 4, 8 that holds `batch`.
inline int batch_tile(int64_t batch) { return batch <= 1 ? 1 : batch <= 2 ? 2 : batch <= 4 ? 4 : 8; }

// Elements per load: a 16-byte vector when every weight row starts 16-byte aligned, else one.
inline int elements_per_load(int element_bytes, int64_t out) {
  const int vec = 16 / element_bytes;
  return out % vec == 0 ? vec : 1;
}

struct LaunchShape {
  WeightType type;
  int element_bytes;
  int64_t batch, in, out;
  int epl;  // elements per load (elements_per_load)
};

inline LaunchShape launch_shape(const GemvShape& s) {
  const int bytes = static_cast<int>(dtype_size(s.weight_type));
  const WeightType type = s.weight_type == DType::F32   ? WeightType::F32
                          : s.weight_type == DType::F16 ? WeightType::F16
                                                        : WeightType::BF16;
  return {type, bytes, s.batch, s.in, s.out, elements_per_load(bytes, s.out)};
}

// Columns of y owned by one cluster, inputs scanned by one block, and a block's shared memory.
inline int64_t tile_columns(const LaunchShape& s, int vecs) { return int64_t{kWarpSize} * vecs * s.epl; }
inline int64_t chunk_rows(const LaunchShape& s, int split) { return (s.in + split - 1) / split; }
inline int64_t shared_bytes(const LaunchShape& s, int vecs, int warps, int split) {
  const int64_t partials = int64_t{warps} * batch_tile(s.batch) * tile_columns(s, vecs) * 4;
  // Per warp a list of active inputs: uint16 offset + fp32 x per batch row.
  const int64_t lists = (chunk_rows(s, split) + warps) * (2 + 4 * batch_tile(s.batch));
  return partials + (lists + 15) / 16 * 16;
}
inline int register_words(const LaunchShape& s, int vecs, int unroll) {
  return unroll * vecs * 4 + batch_tile(s.batch) * vecs * s.epl;
}

// Enqueues the kernel. Arguments are valid here (the plan checked them); `stream` is a
// cudaStream_t. Defined in sparse_gemv.cu.
void launch_sparse_gemv(const LaunchShape& s, int vecs, int unroll, int warps, int split, const void* wt,
                        const float* x, float* y, float threshold, void* stream);

// Fills n elements of a device buffer of `type` with values uniform in [-1, 1) from `seed`,
// never exactly zero (for the tuner's and the benchmark's data). Defined in sparse_gemv.cu.
void fill_random(WeightType type, void* data, int64_t n, uint32_t seed, void* stream);

}  // namespace sparsa::cuda::gemv
