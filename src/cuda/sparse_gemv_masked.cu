// The unstructured-mask weight- and activation-sparse GEMV kernel behind
// sparsa::SparseGemvMaskedCuda; the CPU reference is sparsa::sparse_gemv_masked
// (sparse_gemv_masked_ref.cpp). Layout: sparsa/sparse_gemv_masked.h.
//
// Grid: one thread-block cluster of `split` blocks per 256-column tile (split-K over the inputs,
// each warp a segment of its block's chunk), lane l owning columns 8l … 8l + 7 of the tile:
//   1. the warp lists its segment's active rows (gemv_rows.cuh: scan_active_blocks, single rows);
//   2. per listed row (U in flight): the lane's mask byte and the segment offset; a warp prefix
//      sum of the bytes' popcounts gives each lane where its kept values start in the segment;
//      the warp reads the segment with one coalesced 16-byte load per lane (≤ 512 bytes), stages
//      it in shared memory, and each lane takes its kept values from there;
//   3. partials are reduced through the cluster (gemv_cluster.cuh: deterministic).
#include "cuda/gemv_cluster.cuh"
#include "cuda/gemv_rows.cuh"
#include "cuda/sparse_gemv_masked.cuh"

#include <cooperative_groups.h>

#include <cstdint>

namespace sparsa::cuda::gemv {
namespace {

namespace cg = cooperative_groups;

constexpr int kMaxThreads = 8 * kWarpSize;
constexpr int kTile = static_cast<int>(kGemvMaskTile);
constexpr int kMaskBytes = kTile / 8;

// Exclusive prefix sum over the warp's lanes of v; *total = the sum over all lanes.
__device__ __forceinline__ int exclusive_warp_sum(int v, int& total) {
  const int lane = threadIdx.x % kWarpSize;
  int s = v;
#pragma unroll
  for (int d = 1; d < kWarpSize; d *= 2) {
    const int t = __shfl_up_sync(kFullMask, s, d);
    if (lane >= d) s += t;
  }
  total = __shfl_sync(kFullMask, s, kWarpSize - 1);
  return s - v;
}

// values: padded segments as uint4; masks: [in, tiles × 32]; offsets: [in, tiles]; x: [batch, in];
// y: [batch, out]. Clusters of `split` blocks along x; blockIdx.x / split is the column tile.
template <WeightType T, int B, int U>
__global__ void __launch_bounds__(kMaxThreads)
sparse_gemv_masked_kernel(const uint4* __restrict__ values, const uint8_t* __restrict__ masks,
                          const uint32_t* __restrict__ offsets, const float* __restrict__ x, float* __restrict__ y,
                          int batch, int64_t in, int64_t out, float threshold) {
  using L = RowLoad<T, 1>;
  const cg::cluster_group cluster = cg::this_cluster();
  const auto [split, rank, warps, warp, lane, tile] = gemv::cluster_position(cluster);
  const int64_t tiles = (out + kTile - 1) / kTile;

  extern __shared__ float4 shared_raw[];
  float* partial = reinterpret_cast<float*>(shared_raw);                       // [warps][B][256]
  uint4* stages = reinterpret_cast<uint4*>(partial + warps * B * kTile);       // [warps][U][32]
  uint4* stage = stages + warp * U * kWarpSize;
  const RowSegment r = row_segment(in, split, rank, warps, warp);
  float* xs_base = reinterpret_cast<float*>(stages + warps * U * kWarpSize);
  float* xs = xs_base + warp * r.seg * B;                                                    // [seg][B]
  uint16_t* list = reinterpret_cast<uint16_t*>(xs_base + warps * r.seg * B) + warp * r.seg;  // [seg]

  // 1. Active rows of the segment.
  const int n = scan_active_blocks<B>(x, batch, in, threshold, r, 0, xs, list);

  // 2. Mask byte, offset, then the segment's kept values of each listed row, U rows in flight.
  float acc[B][1][8] = {};
  for (int i = 0; i < n; i += U) {
    int64_t rows[U];
    uint32_t bits[U], base[U];
#pragma unroll
    for (int u = 0; u < U; ++u) rows[u] = i + u < n ? r.c0 + list[i + u] : -1;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t cell = rows[u] * tiles + tile;
      bits[u] = rows[u] >= 0 ? __ldcs(masks + cell * kMaskBytes + lane) : 0u;
      base[u] = rows[u] >= 0 ? __ldcs(offsets + cell) : 0u;
    }
    int start[U];
    uint4 w[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int total;
      start[u] = exclusive_warp_sum(__popc(bits[u]), total);
      w[u] = lane * 8 < total ? __ldcs(values + base[u] + lane) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) stage[u * kWarpSize + lane] = w[u];
    __syncwarp();
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float xv[B];
#pragma unroll
      for (int b = 0; b < B; ++b) xv[b] = rows[u] >= 0 ? xs[(i + u) * B + b] : 0.0f;
      const unsigned short* kept = reinterpret_cast<const unsigned short*>(stage + u * kWarpSize) + start[u];
      int p = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        if (!((bits[u] >> e) & 1u)) continue;
        float f[1];
        L::unpack(kept[p++], f);
#pragma unroll
        for (int b = 0; b < B; ++b) acc[b][0][e] = fmaf(xv[b], f[0], acc[b][0][e]);
      }
    }
    __syncwarp();  // every lane has read the stage before the next rows overwrite it
  }

  // 3. Warp partials -> block partial (warp order) -> y (cluster rank order).
  reduce_tile_to_y<B, 1, 8>(cluster, partial, acc, y, batch, out, tile * kTile);
}

template <WeightType T>
void dispatch(int64_t batch, int64_t in, int64_t out, int unroll, int warps, int split, const void* values,
              const uint8_t* masks, const uint32_t* offsets, const float* x, float* y, float threshold,
              cudaStream_t stream) {
  const int64_t tiles = (out + kTile - 1) / kTile;
  with_batch_tile(batch, [&]<int B>() {
    auto launch = [&]<int U>() {
      launch_clusters<sparse_gemv_masked_kernel<T, B, U>>(
          ClusterGrid{tiles, split, warps, masked_shared_bytes(batch, in, U, warps, split)}, stream,
          static_cast<const uint4*>(values), masks, offsets, x, y, static_cast<int>(batch), in, out, threshold);
    };
    if (unroll == 2) launch.template operator()<2>();
    else if (unroll == 4) launch.template operator()<4>();
    else check(cudaErrorInvalidConfiguration, __FILE__, __LINE__);
  });
}

}  // namespace

void launch_sparse_gemv_masked(bool bf16, int64_t batch, int64_t in, int64_t out, int unroll, int warps, int split,
                               const void* values, const uint8_t* masks, const uint32_t* offsets, const float* x,
                               float* y, float threshold, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  if (bf16) dispatch<WeightType::BF16>(batch, in, out, unroll, warps, split, values, masks, offsets, x, y, threshold, st);
  else dispatch<WeightType::F16>(batch, in, out, unroll, warps, split, values, masks, offsets, x, y, threshold, st);
}

}  // namespace sparsa::cuda::gemv
