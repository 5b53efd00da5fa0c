// The activation-sparse GEMV kernel behind sparsa::SparseGemvCuda; the CPU reference is
// sparsa::sparse_gemv (sparse_gemv_ref.cpp).
//
// y[b, :] = Σ_{j : |x[b, j]| > t} x[b, j] · wt[j, :], wt = Wᵀ [in, out], fp32 accumulation; for a
// fused launch the same for each of up to kGemvMaxParts parts (wt_m, y_m, out_m, t_m) sharing x.
//
// Grid: one thread-block cluster of `split` blocks per tile of kCols output columns, the tiles of
// part 0 first, then those of part 1, ...; a cluster finds its part from its tile. Block `rank`
// of a cluster owns a contiguous chunk of the inputs (split-K); inside it each warp owns a
// contiguous segment of that chunk and
//   1. scans x over its segment (8 coalesced loads per lane in flight, then ballots) and writes
//      the offsets of the active inputs (active in any batch row) and their masked x values to
//      its own shared-memory list, in ascending order;
//   2. walks its list `U` rows at a time: U × V 16-byte loads of weight rows in flight (cache-
//      streaming, each warp-wide load 512 contiguous bytes), then fp32 FMAs into registers;
//   3. stores its partial tile to shared memory.
// The block sums its warps' partials in warp order; the cluster then sums the blocks' partials in
// rank order through distributed shared memory, each block writing its share of y. No atomics,
// so results are deterministic; and a column's sum runs in an order that depends only on the
// active rows, `warps` and `split` (not on the tile width, the load width, unroll or the other
// parts), so a fused launch gives bit for bit what single launches of the same (warps, split)
// give. Rows that are not 16-byte aligned (out not a multiple of the vector width) take the same
// kernel with one element per load. Programmatic dependent launch is a tuned option
// (GemvConfig::pdl): measured slower where the matrix is streamed densely and up to 0.8 µs faster
// at s >= 0.7 (bench/RESULTS.md).
#include "cuda/cuda_check.h"
#include "cuda/gemv_cluster.cuh"
#include "cuda/gemv_rows.cuh"
#include "cuda/sparse_gemv.cuh"

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

namespace sparsa::cuda::gemv {
namespace {

namespace cg = cooperative_groups;

constexpr int kMaxThreads = 8 * kWarpSize;

// The parts of one launch, as a kernel parameter: part m owns the column tiles
// [tile_end[m - 1], tile_end[m]) (tile_end[-1] = 0) and computes
// y[m] = wt[m]·(x ⊙ [|x| > threshold[m]]).
struct KernelParts {
  const void* wt[kMaxParts];  // [in, out[m]] as rows of out[m] / EPL Raw loads
  float* y[kMaxParts];        // [batch, out[m]]
  int64_t out[kMaxParts];
  int64_t tile_end[kMaxParts];
  float threshold[kMaxParts];
  int count;
};

// x: [batch, in]. Launched as clusters of `split` blocks along x; blockIdx.x / split is the column
// tile over all parts.
template <WeightType T, int EPL, int B, int V, int U>
__global__ void __launch_bounds__(kMaxThreads)
sparse_gemv_kernel(const __grid_constant__ KernelParts parts, const float* __restrict__ x, int batch, int64_t in) {
  constexpr int kCols = kWarpSize * V * EPL;  // output columns of this cluster's tile

  const cg::cluster_group cluster = cg::this_cluster();
  const auto [split, rank, warps, warp, lane, tile] = cluster_position(cluster);

  // This cluster's part: the number of parts whose tiles end at or before its tile.
  int part = 0;
#pragma unroll
  for (int m = 1; m < kMaxParts; ++m) part += m < parts.count && tile >= parts.tile_end[m - 1];
  const int64_t first_tile = part == 0 ? 0 : parts.tile_end[part - 1];
  const int64_t out = parts.out[part];
  const float threshold = parts.threshold[part];
  const int64_t col0 = (tile - first_tile) * kCols;

  extern __shared__ float4 shared_raw[];
  float* partial = reinterpret_cast<float*>(shared_raw);  // [warps][B][kCols]

  // This block's chunk of inputs and this warp's segment of it (not rounded: the summation order
  // of this kernel depends on these boundaries).
  const RowSegment r = row_segment<1>(in, split, rank, warps, warp);
  float* xs = partial + warps * B * kCols + warp * r.seg * B;                                             // [seg][B]
  uint16_t* list = reinterpret_cast<uint16_t*>(partial + warps * B * kCols + warps * r.seg * B) + warp * r.seg;  // [seg]

  // Launched with programmatic dependent launch, the previous kernel may still run: wait for it
  // (and its writes) before reading x. Without it this returns at once.
  asm volatile("griddepcontrol.wait;" ::: "memory");

  // 1. Active inputs of the segment, ascending, with their masked x (0 for inactive batch rows).
  const int n = scan_active_blocks<B, true>(x, batch, in, threshold, r, 0, xs, list);

  // 2. Weight rows of the active inputs, U rows × V loads in flight per lane.
  float acc[B][V][EPL] = {};
  const auto row_of = [&](int i) -> int64_t { return r.c0 + list[i]; };
  accumulate_rows<T, EPL, B, V, U>(parts.wt[part], out, col0 / EPL + lane, n, row_of, xs, acc);

  // The next kernel may be scheduled once every block is here (a no-op unless it was launched
  // with programmatic dependent launch); it waits for this one's completion before reading.
  asm volatile("griddepcontrol.launch_dependents;");

  // 3. Warp partials -> block partial (warp order) -> y (cluster rank order).
  reduce_tile_to_y<B, V, EPL>(cluster, partial, acc, parts.y[part], batch, out, col0);
}

template <WeightType T, int EPL, int B, int V, int U>
void launch_instance(const LaunchShape& s, const GemvConfig& c, const GemvPart* p, const float* x,
                     cudaStream_t stream) {
  KernelParts parts{};
  parts.count = s.parts;
  int64_t tiles = 0;
  for (int m = 0; m < s.parts; ++m) {
    tiles += part_tiles(s, c.vecs, m);
    parts.wt[m] = p[m].wt, parts.y[m] = p[m].y, parts.out[m] = s.out[m], parts.threshold[m] = p[m].threshold;
    parts.tile_end[m] = tiles;
  }
  const ClusterGrid grid{tiles, c.split, c.warps, shared_bytes(s, V, c.warps, c.split), c.pdl};
  launch_clusters<sparse_gemv_kernel<T, EPL, B, V, U>>(grid, stream, parts, x, static_cast<int>(s.batch), s.in);
}

template <WeightType T, int EPL>
void dispatch_tile(const LaunchShape& s, const GemvConfig& c, const GemvPart* parts, const float* x,
                   cudaStream_t stream) {
  with_row_instance<EPL>(s.batch, c.vecs, c.unroll, [&]<int B, int V, int U>() {
    launch_instance<T, EPL, B, V, U>(s, c, parts, x, stream);
  });
}

template <WeightType T>
void dispatch_type(const LaunchShape& s, const GemvConfig& c, const GemvPart* parts, const float* x,
                   cudaStream_t stream) {
  constexpr int kVec = T == WeightType::F32 ? 4 : 8;
  if (s.epl == kVec) dispatch_tile<T, kVec>(s, c, parts, x, stream);
  else dispatch_tile<T, 1>(s, c, parts, x, stream);
}

}  // namespace

void launch_sparse_gemv(const LaunchShape& s, const GemvConfig& c, const GemvPart* parts, const float* x,
                        void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  switch (s.type) {
    case WeightType::F32: dispatch_type<WeightType::F32>(s, c, parts, x, st); break;
    case WeightType::F16: dispatch_type<WeightType::F16>(s, c, parts, x, st); break;
    case WeightType::BF16: dispatch_type<WeightType::BF16>(s, c, parts, x, st); break;
  }
}

}  // namespace sparsa::cuda::gemv
