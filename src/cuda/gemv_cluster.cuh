// src/cuda/gemv_cluster.cuh — the split-K plumbing shared by the sparse GEMV kernels (private to
// src/cuda, CUDA sources only): a thread-block cluster of `split` blocks owns a tile of kCols
// output columns, each block a slice of the inputs; the blocks' fp32 partial tiles are summed in
// rank order through distributed shared memory (no atomics, deterministic).
#pragma once

#include "cuda/cuda_check.h"
#include "cuda/sparse_gemv.cuh"

#include <cooperative_groups.h>

#include <cstdint>

namespace sparsa::cuda::gemv {

// Where this thread stands: its cluster's column tile, its block's rank in the cluster of
// `split`, its warp and lane.
struct ClusterPosition {
  int split, rank, warps, warp, lane;
  int64_t tile;  // column tile = cluster index along x
};
__device__ __forceinline__ ClusterPosition cluster_position(const cooperative_groups::cluster_group& cluster) {
  const int split = static_cast<int>(cluster.num_blocks());
  return {split, static_cast<int>(cluster.block_rank()), static_cast<int>(blockDim.x / kWarpSize),
          static_cast<int>(threadIdx.x / kWarpSize), static_cast<int>(threadIdx.x % kWarpSize),
          static_cast<int64_t>(blockIdx.x / split)};
}

// Stores this lane's accumulators acc[b][v][e] (column (v · 32 + lane) · EPL + e of the tile) to
// `partial` (shared, [warps][B][kCols]), sums the warps in warp order, then the cluster's blocks
// in rank order, and writes this block's share of y [batch, out] (columns col0 … col0 + kCols).
// Every thread of every block of the cluster must call it.
template <int B, int V, int EPL>
__device__ void reduce_tile_to_y(const cooperative_groups::cluster_group& cluster, float* partial,
                                 const float (&acc)[B][V][EPL], float* __restrict__ y, int batch, int64_t out,
                                 int64_t col0) {
  constexpr int kCols = kWarpSize * V * EPL;
  const auto [split, rank, warps, warp, lane, tile] = cluster_position(cluster);
  float* mine = partial + warp * B * kCols;
#pragma unroll
  for (int b = 0; b < B; ++b)
#pragma unroll
    for (int v = 0; v < V; ++v)
#pragma unroll
      for (int e = 0; e < EPL; ++e) mine[b * kCols + (v * kWarpSize + lane) * EPL + e] = acc[b][v][e];
  __syncthreads();
  for (int idx = threadIdx.x; idx < B * kCols; idx += blockDim.x) {
    float s = partial[idx];
    for (int w = 1; w < warps; ++w) s += partial[w * B * kCols + idx];
    partial[idx] = s;
  }
  cluster.sync();
  const int share = (B * kCols + split - 1) / split;
  const int end = min(B * kCols, (rank + 1) * share);
  for (int idx = rank * share + threadIdx.x; idx < end; idx += blockDim.x) {
    const int b = idx / kCols;
    const int64_t col = col0 + idx % kCols;
    if (b >= batch || col >= out) continue;
    float s = 0.0f;
    for (int r = 0; r < split; ++r) s += cluster.map_shared_rank(partial, r)[idx];
    y[b * out + col] = s;
  }
  cluster.sync();  // keep this block's shared memory alive until every reader is done
}

// The grid of a cluster launch: `tiles` clusters of `split` blocks of `warps` warps with `shared`
// bytes of dynamic shared memory each; pdl: launch with programmatic dependent launch (the kernel
// then waits for its predecessor itself, griddepcontrol.wait).
struct ClusterGrid {
  int64_t tiles;
  int split, warps;
  int64_t shared;
  bool pdl = false;
};

// Launches Kernel on `grid`; the first call per kernel allows the maximum shared memory and
// non-portable cluster sizes. Throws on a launch error.
template <auto Kernel, typename... Args>
void launch_clusters(const ClusterGrid& grid, cudaStream_t stream, Args... args) {
  static const bool attributes_set = [] {
    SPARSA_CUDA_CHECK(
        cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kMaxSharedBytes)));
    SPARSA_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    return true;
  }();
  (void)attributes_set;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(grid.tiles * grid.split));
  config.blockDim = dim3(static_cast<unsigned>(grid.warps * kWarpSize));
  config.dynamicSmemBytes = static_cast<size_t>(grid.shared);
  config.stream = stream;
  cudaLaunchAttribute attributes[2]{};
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = static_cast<unsigned>(grid.split);
  attributes[0].val.clusterDim.y = 1;
  attributes[0].val.clusterDim.z = 1;
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attributes;
  config.numAttrs = grid.pdl ? 2 : 1;
  SPARSA_CUDA_CHECK(cudaLaunchKernelEx(&config, Kernel, args...));
}

// Calls f.template operator()<B>() with B = batch_tile(batch) (1, 2, 4 or 8) as a constant.
template <typename F>
void with_batch_tile(int64_t batch, F&& f) {
  switch (batch_tile(batch)) {
    case 1: f.template operator()<1>(); break;
    case 2: f.template operator()<2>(); break;
    case 4: f.template operator()<4>(); break;
    default: f.template operator()<8>(); break;
  }
}

// A (vecs, unroll) instantiation candidate of a kernel.
template <int V, int U>
struct Candidate {};

// Calls f.template operator()<B, V, U>() with B = batch_tile(batch) and (V, U) = (vecs, unroll),
// trying the candidates in order; only candidates whose registers per lane
// (U · V · LoadWords loads in flight + B · V · EPL accumulators) fit kMaxRegisterWords are
// instantiated (the tuners never offer the others). Throws when none matches.
template <int EPL, int LoadWords, typename F, int... Vs, int... Us>
void with_instance(int64_t batch, int vecs, int unroll, F&& f, Candidate<Vs, Us>...) {
  with_batch_tile(batch, [&]<int B>() {
    auto with_vu = [&]<int V, int U>() {
      if constexpr (U * V * LoadWords + B * V * EPL <= kMaxRegisterWords) {
        if (vecs == V && unroll == U) {
          f.template operator()<B, V, U>();
          return true;
        }
      }
      return false;
    };
    if (!(with_vu.template operator()<Vs, Us>() || ...)) check(cudaErrorInvalidConfiguration, __FILE__, __LINE__);
  });
}

// with_instance for the row kernels (sparse_gemv.cu, sparse_gemv_blocks.cu: one 4-word load per
// vec and row): (vecs, unroll) = (1, 4) for single-element loads, else (1, 4), (1, 8), (2, 4), (2, 8).
template <int EPL, typename F>
void with_row_instance(int64_t batch, int vecs, int unroll, F&& f) {
  if constexpr (EPL == 1) with_instance<EPL, 4>(batch, vecs, unroll, f, Candidate<1, 4>{});
  else
    with_instance<EPL, 4>(batch, vecs, unroll, f, Candidate<1, 4>{}, Candidate<1, 8>{}, Candidate<2, 4>{},
                          Candidate<2, 8>{});
}

}  // namespace sparsa::cuda::gemv
