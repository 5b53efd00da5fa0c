// The block-skipping GEMV kernel behind sparsa::SparseGemvBlockCuda; its CPU reference is
// sparsa::sparse_gemv (the same function). Layout and grid as the per-row kernel
// (sparse_gemv.cu): clusters of `split` blocks per column tile, split-K over the inputs, each warp
// a segment of its block's chunk. Chunks and segments are multiples of 32 rows, so every block of
// `block_rows` (2 … 32) rows lies inside one 32-row scan step of one warp:
//   1. per scan step, a ballot gives the active rows, a shift-and-mask per lane whether its block
//      has one, and a second ballot the rows of active blocks; their masked x (0 for inactive
//      rows) go to the warp's shared list in ascending order, with one uint16 offset per block;
//   2. every listed row is read (gemv_rows.cuh: U rows × V 16-byte loads in flight);
//   3. partials are reduced through the cluster (gemv_cluster.cuh: deterministic).
#include "cuda/gemv_cluster.cuh"
#include "cuda/gemv_rows.cuh"
#include "cuda/sparse_gemv_blocks_launch.h"

#include <cooperative_groups.h>

#include <cstdint>

namespace sparsa::cuda::gemv {
namespace {

namespace cg = cooperative_groups;

constexpr int kScanUnroll = 8;  // x loads per lane in flight while scanning
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxThreads = 8 * kWarpSize;

__device__ __forceinline__ float masked(float v, float threshold) { return fabsf(v) > threshold ? v : 0.0f; }

// wt: [in, out]; x: [batch, in]; y: [batch, out]; block_rows = 1 << block_shift (2 … 32).
template <WeightType T, int EPL, int B, int V, int U>
__global__ void __launch_bounds__(kMaxThreads)
sparse_gemv_blocks_kernel(const void* __restrict__ wt, const float* __restrict__ x, float* __restrict__ y, int batch,
                          int64_t in, int64_t out, float threshold, int block_shift) {
  constexpr int kCols = kWarpSize * V * EPL;
  const cg::cluster_group cluster = cg::this_cluster();
  const int split = static_cast<int>(cluster.num_blocks());
  const int rank = static_cast<int>(cluster.block_rank());
  const int warps = blockDim.x / kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x / split) * kCols;
  const int block_rows = 1 << block_shift;

  extern __shared__ float4 shared_raw[];
  float* partial = reinterpret_cast<float*>(shared_raw);  // [warps][B][kCols]

  // This block's chunk [c0, c1) and this warp's segment [s0, s1): both start at multiples of 32.
  const int64_t chunk = (((in + split - 1) / split) + 31) / 32 * 32;
  const int64_t c0 = min(in, rank * chunk), c1 = min(in, c0 + chunk);
  const int64_t seg = ((chunk + warps - 1) / warps + 31) / 32 * 32;
  const int64_t s0 = min(c1, c0 + warp * seg), s1 = min(c1, s0 + seg);
  float* xs = partial + warps * B * kCols + warp * seg * B;                                           // [seg][B]
  uint16_t* list = reinterpret_cast<uint16_t*>(partial + warps * B * kCols + warps * seg * B) + warp * seg;  // blocks

  // 1. Rows of the segment's active blocks, ascending, with their masked x.
  int n = 0;  // rows listed
  const unsigned lanes_below = (1u << lane) - 1u;
  const int lead = lane & ~(block_rows - 1);  // first lane of this lane's block
  const unsigned block_mask = block_rows == kWarpSize ? kFullMask : (1u << block_rows) - 1u;
  for (int64_t base = s0; base < s1; base += kWarpSize * kScanUnroll) {
    float xv[kScanUnroll][B];
    bool active[kScanUnroll];
#pragma unroll
    for (int k = 0; k < kScanUnroll; ++k) {
      const int64_t j = base + k * kWarpSize + lane;
      bool a = false;
#pragma unroll
      for (int b = 0; b < B; ++b) {
        xv[k][b] = b < batch && j < s1 ? masked(__ldg(x + b * in + j), threshold) : 0.0f;
        a |= xv[k][b] != 0.0f;
      }
      active[k] = a;
    }
#pragma unroll
    for (int k = 0; k < kScanUnroll; ++k) {
      const bool block_active = ((__ballot_sync(kFullMask, active[k]) >> lead) & block_mask) != 0;
      const unsigned m = __ballot_sync(kFullMask, block_active);
      if (block_active) {
        const int at = n + __popc(m & lanes_below);
#pragma unroll
        for (int b = 0; b < B; ++b) xs[at * B + b] = xv[k][b];
        if (lane == lead) list[at >> block_shift] = static_cast<uint16_t>((base + k * kWarpSize + lane - c0) >> block_shift);
      }
      n += __popc(m);
    }
  }
  __syncwarp();

  // 2. Every row of the listed blocks (rows past the end of the matrix are skipped).
  float acc[B][V][EPL] = {};
  const auto row_of = [&](int i) -> int64_t {
    const int64_t row = c0 + (static_cast<int64_t>(list[i >> block_shift]) << block_shift) + (i & (block_rows - 1));
    return row < c1 ? row : -1;
  };
  accumulate_rows<T, EPL, B, V, U>(wt, out, col0 / EPL + lane, n, row_of, xs, acc);

  // 3. Warp partials -> block partial (warp order) -> y (cluster rank order).
  reduce_tile_to_y<B, V, EPL>(cluster, partial, acc, y, batch, out, col0);
}

// Picks the instantiation for (batch tile, vecs, unroll); configs over the register budget are
// not candidates and not instantiated.
template <WeightType T, int EPL>
void dispatch_tile(const LaunchShape& s, int block_shift, int vecs, int unroll, int warps, int split, const void* wt,
                   const float* x, float* y, float threshold, cudaStream_t stream) {
  auto with_batch = [&]<int B>() {
    auto with_vu = [&]<int V, int U>() {
      if constexpr (U * V * 4 + B * V * EPL <= kMaxRegisterWords) {
        if (vecs == V && unroll == U) {
          const int64_t tiles = (s.out + tile_columns(s, V) - 1) / tile_columns(s, V);
          launch_clusters<sparse_gemv_blocks_kernel<T, EPL, B, V, U>>(
              tiles, split, warps, block_shared_bytes(s, V, warps, split), stream, wt, x, y, static_cast<int>(s.batch),
              s.in, s.out, threshold, block_shift);
          return true;
        }
      }
      return false;
    };
    bool done;
    if constexpr (EPL == 1) done = with_vu.template operator()<1, 4>();
    else
      done = with_vu.template operator()<1, 4>() || with_vu.template operator()<1, 8>() ||
             with_vu.template operator()<2, 4>() || with_vu.template operator()<2, 8>();
    if (!done) check(cudaErrorInvalidConfiguration, __FILE__, __LINE__);
  };
  with_batch_tile(s.batch, with_batch);
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
