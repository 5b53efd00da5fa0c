// src/cuda/gemv_rows.cuh — the inner loop of the row-skipping GEMV kernels (private to src/cuda,
// CUDA sources only): one warp accumulates selected rows of Wᵀ [in, out], each scaled by its
// masked x, into a tile of fp32 column accumulators.
#pragma once

#include "cuda/sparse_gemv_launch.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace sparsa::cuda::gemv {

// What one load of EPL elements of type T reads (a 16-byte vector when EPL > 1, else one
// element), and how it becomes fp32.
template <WeightType T, int EPL>
struct RowLoad {
  static constexpr bool kVector = EPL > 1;
  using Raw = std::conditional_t<kVector, uint4, std::conditional_t<T == WeightType::F32, float, unsigned short>>;

  __device__ static Raw zero() {
    if constexpr (kVector) return make_uint4(0, 0, 0, 0);
    else return Raw{};
  }

  __device__ static void unpack(const Raw& r, float (&f)[EPL]) {
    if constexpr (!kVector) {
      if constexpr (T == WeightType::F32) f[0] = r;
      else if constexpr (T == WeightType::F16) f[0] = __half2float(__ushort_as_half(r));
      else f[0] = __uint_as_float(static_cast<uint32_t>(r) << 16);
    } else {
      const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if constexpr (T == WeightType::F32) {
          f[i] = __uint_as_float(w[i]);
        } else if constexpr (T == WeightType::F16) {
          const float2 p = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
          f[2 * i] = p.x;
          f[2 * i + 1] = p.y;
        } else {
          f[2 * i] = __uint_as_float(w[i] << 16);
          f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
      }
    }
  }
};

// acc[b][v][e] += Σ_i xs[i][b] · wt[row_of(i), column (first_load + v · 32) · EPL + e] over
// i < n, skipping i with row_of(i) < 0. U rows × V loads (cache-streaming) in flight per lane.
// wt: [in, out] as rows of out / EPL loads; xs: [n][B] (shared memory); first_load = the tile's
// first column / EPL + lane. n must be the same for every lane of the warp.
template <WeightType T, int EPL, int B, int V, int U, typename RowOf>
__device__ __forceinline__ void accumulate_rows(const void* __restrict__ wt_raw, int64_t out, int64_t first_load,
                                                int n, RowOf row_of, const float* xs, float (&acc)[B][V][EPL]) {
  using L = RowLoad<T, EPL>;
  using Raw = typename L::Raw;
  const Raw* wt = static_cast<const Raw*>(wt_raw);
  const int64_t row_loads = out / EPL;  // Raw loads per weight row
  for (int i = 0; i < n; i += U) {
    int64_t rows[U];
    Raw w[U][V];
#pragma unroll
    for (int u = 0; u < U; ++u) rows[u] = i + u < n ? row_of(i + u) : -1;
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t at = first_load + v * kWarpSize;
        w[u][v] = rows[u] >= 0 && at < row_loads ? __ldcs(wt + rows[u] * row_loads + at) : L::zero();
      }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float xv[B];
#pragma unroll
      for (int b = 0; b < B; ++b) xv[b] = rows[u] >= 0 ? xs[(i + u) * B + b] : 0.0f;
#pragma unroll
      for (int v = 0; v < V; ++v) {
        float f[EPL];
        L::unpack(w[u][v], f);
#pragma unroll
        for (int b = 0; b < B; ++b)
#pragma unroll
          for (int e = 0; e < EPL; ++e) acc[b][v][e] = fmaf(xv[b], f[e], acc[b][v][e]);
      }
    }
  }
}

}  // namespace sparsa::cuda::gemv
