// The 2:4 weight- and activation-sparse GEMV kernel behind sparsa::SparseGemv2to4Cuda; the CPU
// reference is sparsa::sparse_gemv_2to4 (sparse_gemv_2to4_ref.cpp). Layout: sparsa/sparse_gemv_2to4.h.
//
// Grid: one thread-block cluster of `split` blocks per tile of kCols output columns; block `rank`
// owns a contiguous chunk of the groups (split-K), each warp a contiguous segment of that chunk:
//   1. the warp scans x one float4 (= one group) per lane and batch row, ballots the groups with
//      any active input, and keeps their offsets and masked float4s in its shared-memory list;
//   2. it walks the list `U` groups at a time: per group and vec two 16-byte value loads (the
//      group's two value rows) and one 4-byte index load in flight, then per column
//      acc += v0 · xm[idx0] + v1 · xm[idx1] in fp32;
//   3. warp partials are summed in warp order, block partials in cluster-rank order through
//      distributed shared memory (gemv_cluster.cuh: no atomics, deterministic).
// Columns that are not a multiple of 8 take the same kernel with one column per lane and load.
#include "cuda/gemv_cluster.cuh"
#include "cuda/sparse_gemv_2to4.cuh"

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace sparsa::cuda::gemv24 {
namespace {

namespace cg = cooperative_groups;

constexpr int kScanUnroll = 4;  // x float4 loads per lane and batch row in flight while scanning
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxThreads = 8 * kWarpSize;

// One value load of EPL columns (a uint4 of 8 halves, or one half) and its fp32 unpacking.
template <WeightType T, int EPL>
struct Values {
  using Raw = std::conditional_t<(EPL > 1), uint4, unsigned short>;

  __device__ static Raw load(const Raw* p) { return __ldcs(p); }
  __device__ static Raw zero() {
    if constexpr (EPL > 1) return make_uint4(0, 0, 0, 0);
    else return 0;
  }
  __device__ static float half_to_float(uint32_t bits) {
    if constexpr (T == WeightType::F16) return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
    else return __uint_as_float(bits << 16);
  }
  __device__ static void unpack(const Raw& r, float (&f)[EPL]) {
    if constexpr (EPL == 1) {
      f[0] = half_to_float(r);
    } else {
      const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        f[2 * i] = half_to_float(w[i] & 0xffffu);
        f[2 * i + 1] = half_to_float(w[i] >> 16);
      }
    }
  }
};

__device__ __forceinline__ float masked(float v, float threshold) { return fabsf(v) > threshold ? v : 0.0f; }

__device__ __forceinline__ float pick(const float4& v, uint32_t i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// values: [groups × 2, out] as rows of out / EPL loads; indices: [groups, words]; x: [batch, in]
// (16-byte aligned, in % 4 == 0); y: [batch, out]. Clusters of `split` blocks along x.
template <WeightType T, int EPL, int B, int V, int U>
__global__ void __launch_bounds__(kMaxThreads)
sparse_gemv_2to4_kernel(const void* __restrict__ values_raw, const uint32_t* __restrict__ indices,
                        const float* __restrict__ x, float* __restrict__ y, int batch, int64_t in, int64_t out,
                        float threshold) {
  using Vals = Values<T, EPL>;
  using Raw = typename Vals::Raw;
  constexpr int kCols = kWarpSize * V * EPL;

  const cg::cluster_group cluster = cg::this_cluster();
  const auto [split, rank, warps, warp, lane, tile] = gemv::cluster_position(cluster);
  const int64_t col0 = tile * kCols;
  const int64_t groups = in / kGemv2to4Group;

  extern __shared__ float4 shared_raw[];
  float* partial = reinterpret_cast<float*>(shared_raw);  // [warps][B][kCols]

  // This block's chunk of groups [c0, c1) and this warp's segment [s0, s1) of it.
  const int64_t chunk = (groups + split - 1) / split;
  const int64_t c0 = min(groups, rank * chunk), c1 = min(groups, c0 + chunk);
  const int64_t seg = (chunk + warps - 1) / warps;
  const int64_t s0 = min(c1, c0 + warp * seg), s1 = min(c1, s0 + seg);
  float4* lists_base = reinterpret_cast<float4*>(partial + warps * B * kCols);
  float4* xs = lists_base + warp * seg * B;                                              // [seg][B]
  uint16_t* list = reinterpret_cast<uint16_t*>(lists_base + warps * seg * B) + warp * seg;  // [seg]

  // 1. Active groups of the segment, ascending, with their masked x (zeros for inactive rows).
  int n = 0;
  const unsigned lanes_below = (1u << lane) - 1u;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const int64_t x4_row = in / 4;
  for (int64_t base = s0; base < s1; base += kWarpSize * kScanUnroll) {
    float4 xv[kScanUnroll][B];
    bool active[kScanUnroll];
#pragma unroll
    for (int k = 0; k < kScanUnroll; ++k) {
      const int64_t g = base + k * kWarpSize + lane;
      bool a = false;
#pragma unroll
      for (int b = 0; b < B; ++b) {
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (b < batch && g < s1) {
          v = __ldg(x4 + b * x4_row + g);
          v = make_float4(masked(v.x, threshold), masked(v.y, threshold), masked(v.z, threshold),
                          masked(v.w, threshold));
        }
        xv[k][b] = v;
        a |= v.x != 0.0f || v.y != 0.0f || v.z != 0.0f || v.w != 0.0f;
      }
      active[k] = a;
    }
#pragma unroll
    for (int k = 0; k < kScanUnroll; ++k) {
      const unsigned m = __ballot_sync(kFullMask, active[k]);
      if (active[k]) {
        const int at = n + __popc(m & lanes_below);
        list[at] = static_cast<uint16_t>(base + k * kWarpSize + lane - c0);
#pragma unroll
        for (int b = 0; b < B; ++b) xs[at * B + b] = xv[k][b];
      }
      n += __popc(m);
    }
  }
  __syncwarp();

  // 2. The two value rows and the index row of each active group, U groups × V vecs in flight.
  float acc[B][V][EPL] = {};
  const Raw* vals = static_cast<const Raw*>(values_raw);
  const int64_t row_loads = out / EPL;  // Raw loads per value row
  const int64_t words = (out + kVectorColumns - 1) / kVectorColumns;
  const int64_t first_load = col0 / EPL + lane;
  for (int i = 0; i < n; i += U) {
    int64_t g[U];
    Raw w0[U][V], w1[U][V];
    uint32_t nib[U][V];
#pragma unroll
    for (int u = 0; u < U; ++u) g[u] = i + u < n ? c0 + list[i + u] : -1;
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t at = first_load + v * kWarpSize;
        const bool ok = g[u] >= 0 && at < row_loads;
        w0[u][v] = ok ? Vals::load(vals + 2 * g[u] * row_loads + at) : Vals::zero();
        w1[u][v] = ok ? Vals::load(vals + (2 * g[u] + 1) * row_loads + at) : Vals::zero();
        if constexpr (EPL > 1) nib[u][v] = ok ? __ldcs(indices + g[u] * words + at) : 0u;
        else nib[u][v] = ok ? __ldcs(indices + g[u] * words + at / kVectorColumns) >> (at % kVectorColumns * 4) : 0u;
      }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float4 xg[B];
#pragma unroll
      for (int b = 0; b < B; ++b) xg[b] = g[u] >= 0 ? xs[(i + u) * B + b] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        float f0[EPL], f1[EPL];
        Vals::unpack(w0[u][v], f0);
        Vals::unpack(w1[u][v], f1);
#pragma unroll
        for (int e = 0; e < EPL; ++e) {
          const uint32_t idx0 = (nib[u][v] >> (4 * e)) & 3u, idx1 = (nib[u][v] >> (4 * e + 2)) & 3u;
#pragma unroll
          for (int b = 0; b < B; ++b)
            acc[b][v][e] = fmaf(f1[e], pick(xg[b], idx1), fmaf(f0[e], pick(xg[b], idx0), acc[b][v][e]));
        }
      }
    }
  }

  // 3. Warp partials -> block partial (warp order) -> y (cluster rank order).
  gemv::reduce_tile_to_y<B, V, EPL>(cluster, partial, acc, y, batch, out, col0);
}

template <WeightType T, int EPL, int B, int V, int U>
void launch_instance(const LaunchShape& s, int warps, int split, const void* values, const uint32_t* indices,
                     const float* x, float* y, float threshold, cudaStream_t stream) {
  const int64_t tiles = (s.out + tile_columns(s, V) - 1) / tile_columns(s, V);
  gemv::launch_clusters<sparse_gemv_2to4_kernel<T, EPL, B, V, U>>(
      gemv::ClusterGrid{tiles, split, warps, shared_bytes(s, V, warps, split)}, stream, values, indices, x, y,
      static_cast<int>(s.batch), s.in, s.out, threshold);
}

// Picks the instantiation for (batch tile, vecs, unroll): 2 value loads of 4 words + 1 index word
// per vec and group in flight.
template <WeightType T, int EPL>
void dispatch_tile(const LaunchShape& s, int vecs, int unroll, int warps, int split, const void* values,
                   const uint32_t* indices, const float* x, float* y, float threshold, cudaStream_t stream) {
  const auto launch = [&]<int B, int V, int U>() {
    launch_instance<T, EPL, B, V, U>(s, warps, split, values, indices, x, y, threshold, stream);
  };
  using gemv::Candidate;
  if constexpr (EPL == 1) gemv::with_instance<EPL, 9>(s.batch, vecs, unroll, launch, Candidate<1, 2>{}, Candidate<1, 4>{});
  else
    gemv::with_instance<EPL, 9>(s.batch, vecs, unroll, launch, Candidate<1, 2>{}, Candidate<1, 4>{},
                                Candidate<2, 2>{}, Candidate<2, 4>{});
}

template <WeightType T>
void dispatch_type(const LaunchShape& s, int vecs, int unroll, int warps, int split, const void* values,
                   const uint32_t* indices, const float* x, float* y, float threshold, cudaStream_t stream) {
  if (s.epl == kVectorColumns)
    dispatch_tile<T, kVectorColumns>(s, vecs, unroll, warps, split, values, indices, x, y, threshold, stream);
  else dispatch_tile<T, 1>(s, vecs, unroll, warps, split, values, indices, x, y, threshold, stream);
}

}  // namespace

void launch_sparse_gemv_2to4(const LaunchShape& s, int vecs, int unroll, int warps, int split, const void* values,
                             const uint32_t* indices, const float* x, float* y, float threshold, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  if (s.type == WeightType::F16)
    dispatch_type<WeightType::F16>(s, vecs, unroll, warps, split, values, indices, x, y, threshold, st);
  else dispatch_type<WeightType::BF16>(s, vecs, unroll, warps, split, values, indices, x, y, threshold, st);
}

}  // namespace sparsa::cuda::gemv24
