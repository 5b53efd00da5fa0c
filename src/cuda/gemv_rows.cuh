// src/cuda/gemv_rows.cuh — the two loops of the row-skipping GEMV kernels (private to src/cuda,
// CUDA sources only): a warp lists the active rows (or blocks of rows) of its share of the
// inputs, then accumulates selected rows of Wᵀ [in, out], each scaled by its masked x, into a
// tile of fp32 column accumulators.
#pragma once

#include "cuda/sparse_gemv.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace sparsa::cuda::gemv {

inline constexpr int kScanUnroll = 8;  // x loads per lane in flight while scanning
inline constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float masked(float v, float threshold) { return fabsf(v) > threshold ? v : 0.0f; }

// Rows [c0, c1) of the inputs belong to block `rank` of a cluster of `split`, rows [s0, s1) of
// those to warp `warp` of `warps`; chunk and segment sizes are rounded up to multiples of Align
// rows (32 by default, so blocks of up to 32 rows never straddle a warp's 32-row scan step; 1 for
// the single-row kernel). seg = the segment size.
struct RowSegment {
  int64_t c0, c1, s0, s1, seg;
};
template <int Align = 32>
__device__ __forceinline__ RowSegment row_segment(int64_t in, int split, int rank, int warps, int warp) {
  const int64_t chunk = ((in + split - 1) / split + Align - 1) / Align * Align;
  const int64_t c0 = min(in, rank * chunk), c1 = min(in, c0 + chunk);
  const int64_t seg = ((chunk + warps - 1) / warps + Align - 1) / Align * Align;
  const int64_t s0 = min(c1, c0 + warp * seg), s1 = min(c1, s0 + seg);
  return {c0, c1, s0, s1, seg};
}

// Lists the rows of the blocks of 2^block_shift rows (block 0 = rows c0 … ; shift 0: single rows)
// in [s0, s1) that have a row active in any batch row, ascending, and returns how many rows it
// listed (a multiple of the block size). xs[i][b] = the masked x of listed row i (0 for inactive
// rows, and for rows past s1 in the last block); list[i >> block_shift] = that block's offset
// from c0 in blocks. Per 32-row scan step one ballot gives the active rows, a shift-and-mask per
// lane whether its block has one, a second ballot the rows of active blocks. SingleRows: block
// shift 0 known at compile time (block_shift is ignored), one ballot per step.
// xs: [seg][B], list: [seg >> block_shift] (shared memory); x: [batch, in].
template <int B, bool SingleRows = false>
__device__ int scan_active_blocks(const float* __restrict__ x, int batch, int64_t in, float threshold,
                                  const RowSegment& r, int block_shift_arg, float* xs, uint16_t* list) {
  const int block_shift = SingleRows ? 0 : block_shift_arg;
  const int lane = threadIdx.x % kWarpSize;
  const int block_rows = 1 << block_shift;
  const unsigned lanes_below = (1u << lane) - 1u;
  const int lead = lane & ~(block_rows - 1);  // first lane of this lane's block
  const unsigned block_mask = block_rows == kWarpSize ? kFullMask : (1u << block_rows) - 1u;
  int n = 0;
  for (int64_t base = r.s0; base < r.s1; base += kWarpSize * kScanUnroll) {
    float xv[kScanUnroll][B];
    bool active[kScanUnroll];
#pragma unroll
    for (int k = 0; k < kScanUnroll; ++k) {
      const int64_t j = base + k * kWarpSize + lane;
      bool a = false;
#pragma unroll
      for (int b = 0; b < B; ++b) {
        xv[k][b] = b < batch && j < r.s1 ? masked(__ldg(x + b * in + j), threshold) : 0.0f;
        a |= xv[k][b] != 0.0f;
      }
      active[k] = a;
    }
#pragma unroll
    for (int k = 0; k < kScanUnroll; ++k) {
      bool block_active = active[k];
      if constexpr (!SingleRows) block_active = ((__ballot_sync(kFullMask, active[k]) >> lead) & block_mask) != 0;
      const unsigned m = __ballot_sync(kFullMask, block_active);
      if (block_active) {
        const int at = n + __popc(m & lanes_below);
#pragma unroll
        for (int b = 0; b < B; ++b) xs[at * B + b] = xv[k][b];
        if (lane == lead) list[at >> block_shift] = static_cast<uint16_t>((base + k * kWarpSize + lane - r.c0) >> block_shift);
      }
      n += __popc(m);
    }
  }
  __syncwarp();
  return n;
}

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
