// The block-skipping GEMV kernel behind sparsa::SparseGemvBlockCuda; its CPU reference is
// sparsa::sparse_gemv (the same function). Layout and grid as the per-row kernel
// (sparse_gemv.cu): clusters of `split` blocks per column tile, split-K over the inputs, each warp
// a segment of its block's chunk:
//   1. the warp lists the rows of its segment's active blocks with their masked x
//      (gemv_rows.cuh: scan_active_blocks);
//   2. every listed row is read (gemv_rows.cuh: U rows × V 16-byte loads in flight);
//   3. partials are reduced through the cluster (gemv_cluster.cuh: deterministic).
#include "cuda/gemv_cluster.cuh"
#include "cuda/gemv_rows.cuh"
#include "cuda/sparse_gemv_blocks.cuh"

#include <cooperative_groups.h>

#include <cstdint>

namespace sparsa::cuda::gemv {
namespace {

namespace cg = cooperative_groups;

constexpr int kMaxThreads = 8 * kWarpSize;

// wt: [in, out]; x: [batch, in]; y: [batch, out]; block_rows = 1 << block_shift (2 … 32).
template <WeightType T, int EPL, int B, int V, int U>
__global__ void __launch_bounds__(kMaxThreads)
sparse_gemv_blocks_kernel(const void* __restrict__ wt, const float* __restrict__ x, float* __restrict__ y, int batch,
                          int64_t in, int64_t out, float threshold, int block_shift) {
  constexpr int kCols = kWarpSize * V * EPL;
  const cg::cluster_group cluster = cg::this_cluster();
  const auto [split, rank, warps, warp, lane, tile] = gemv::cluster_position(cluster);
  const int64_t col0 = tile * kCols;
  const int block_rows = 1 << block_shift;

  extern __shared__ float4 shared_raw[];
  float* partial = reinterpret_cast<float*>(shared_raw);  // [warps][B][kCols]

  // This block's chunk and this warp's segment of it; the rows of the segment's active blocks.
  const RowSegment r = row_segment(in, split, rank, warps, warp);
  float* xs = partial + warps * B * kCols + warp * r.seg * B;                                             // [seg][B]
  uint16_t* list = reinterpret_cast<uint16_t*>(partial + warps * B * kCols + warps * r.seg * B) + warp * r.seg;  // blocks
  const int n = scan_active_blocks<B>(x, batch, in, threshold, r, block_shift, xs, list);

  // 2. Every row of the listed blocks (rows past the end of the matrix are skipped).
  float acc[B][V][EPL] = {};
  const auto row_of = [&](int i) -> int64_t {
    const int64_t row = r.c0 + (static_cast<int64_t>(list[i >> block_shift]) << block_shift) + (i & (block_rows - 1));
    return row < r.c1 ? row : -1;
  };
  accumulate_rows<T, EPL, B, V, U>(wt, out, col0 / EPL + lane, n, row_of, xs, acc);

  // 3. Warp partials -> block partial (warp order) -> y (cluster rank order).
  reduce_tile_to_y<B, V, EPL>(cluster, partial, acc, y, batch, out, col0);
}

template <WeightType T, int EPL>
void dispatch_tile(const LaunchShape& s, int block_shift, int vecs, int unroll, int warps, int split, const void* wt,
                   const float* x, float* y, float threshold, cudaStream_t stream) {
  const int64_t tiles = (s.out[0] + tile_columns(s, vecs) - 1) / tile_columns(s, vecs);
  with_row_instance<EPL>(s.batch, vecs, unroll, [&]<int B, int V, int U>() {
    launch_clusters<sparse_gemv_blocks_kernel<T, EPL, B, V, U>>(
        ClusterGrid{tiles, split, warps, block_shared_bytes(s, V, warps, split)}, stream, wt, x, y,
        static_cast<int>(s.batch), s.in, s.out[0], threshold, block_shift);
  });
}

template <WeightType T>
void dispatch_type(const LaunchShape& s, int block_shift, int vecs, int unroll, int warps, int split, const void* wt,
                   const float* x, float* y, float threshold, cudaStream_t stream) {
  constexpr int kVec = T == WeightType::F32 ? 4 : 8;
  if (s.epl == kVec) dispatch_tile<T, kVec>(s, block_shift, vecs, unroll, warps, split, wt, x, y, threshold, stream);
  else dispatch_tile<T, 1>(s, block_shift, vecs, unroll, warps, split, wt, x, y, threshold, stream);
}

}  // namespace

void launch_sparse_gemv_blocks(const LaunchShape& s, int block_rows, int vecs, int unroll, int warps, int split,
                               const void* wt, const float* x, float* y, float threshold, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  const int shift = __builtin_ctz(static_cast<unsigned>(block_rows));
  switch (s.type) {
    case WeightType::F32: dispatch_type<WeightType::F32>(s, shift, vecs, unroll, warps, split, wt, x, y, threshold, st); break;
    case WeightType::F16: dispatch_type<WeightType::F16>(s, shift, vecs, unroll, warps, split, wt, x, y, threshold, st); break;
    case WeightType::BF16: dispatch_type<WeightType::BF16>(s, shift, vecs, unroll, warps, split, wt, x, y, threshold, st); break;
  }
}

}  // namespace sparsa::cuda::gemv
