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
#include "cuda/sparse_gemv_launch.h"

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace sparsa::cuda::gemv {
namespace {

namespace cg = cooperative_groups;

constexpr int kScanUnroll = 8;  // x loads per lane in flight while scanning
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxThreads = 8 * kWarpSize;

// What one load of EPL elements of type T reads, and how it becomes fp32.
template <WeightType T, int EPL>
struct Load {
  static constexpr bool kVector = EPL > 1;
  using Raw = std::conditional_t<kVector, uint4, std::conditional_t<T == WeightType::F32, float, uint16_t>>;

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

__device__ __forceinline__ float masked(float v, float threshold) { return fabsf(v) > threshold ? v : 0.0f; }

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
  using L = Load<T, EPL>;
  using Raw = typename L::Raw;
  constexpr int kCols = kWarpSize * V * EPL;  // output columns of this cluster's tile

  const cg::cluster_group cluster = cg::this_cluster();
  const int split = static_cast<int>(cluster.num_blocks());
  const int rank = static_cast<int>(cluster.block_rank());
  const int warps = blockDim.x / kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;

  // This cluster's part: the number of parts whose tiles end at or before its tile.
  const int64_t tile = blockIdx.x / split;
  int part = 0;
#pragma unroll
  for (int m = 1; m < kMaxParts; ++m) part += m < parts.count && tile >= parts.tile_end[m - 1];
  const int64_t first_tile = part == 0 ? 0 : parts.tile_end[part - 1];
  const int64_t out = parts.out[part];
  const float threshold = parts.threshold[part];
  const int64_t col0 = (tile - first_tile) * kCols;

  extern __shared__ float4 shared_raw[];
  float* partial = reinterpret_cast<float*>(shared_raw);  // [warps][B][kCols]

  // This block's chunk of inputs [c0, c1) and this warp's segment [s0, s1) of it.
  const int64_t chunk = (in + split - 1) / split;
  const int64_t c0 = min(in, rank * chunk), c1 = min(in, c0 + chunk);
  const int64_t seg = (chunk + warps - 1) / warps;
  const int64_t s0 = min(c1, c0 + warp * seg), s1 = min(c1, s0 + seg);
  float* xs = partial + warps * B * kCols + warp * seg * B;                                   // [seg][B]
  uint16_t* list = reinterpret_cast<uint16_t*>(partial + warps * B * kCols + warps * seg * B) + warp * seg;  // [seg]

  // Launched with programmatic dependent launch, the previous kernel may still run: wait for it
  // (and its writes) before reading x. Without it this returns at once.
  asm volatile("griddepcontrol.wait;" ::: "memory");

  // 1. Active inputs of the segment, ascending, with their masked x (0 for inactive batch rows).
  int n = 0;
  const unsigned lanes_below = (1u << lane) - 1u;
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

  // 2. Weight rows of the active inputs, U rows × V loads in flight per lane.
  float acc[B][V][EPL] = {};
  const Raw* wt = static_cast<const Raw*>(parts.wt[part]);
  const int64_t row_loads = out / EPL;  // Raw loads per weight row
  const int64_t first_load = col0 / EPL + lane;
  for (int i = 0; i < n; i += U) {
    int64_t rows[U];
    Raw w[U][V];
#pragma unroll
    for (int u = 0; u < U; ++u) rows[u] = i + u < n ? c0 + list[i + u] : -1;
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

  // The next kernel may be scheduled once every block is here (a no-op unless it was launched
  // with programmatic dependent launch); it waits for this one's completion before reading.
  asm volatile("griddepcontrol.launch_dependents;");

  // 3. Warp partials -> block partial (warp order) -> y (cluster rank order).
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
    parts.y[part][b * out + col] = s;
  }
  cluster.sync();  // keep this block's shared memory alive until every reader is done
}

template <WeightType T, int EPL, int B, int V, int U>
void launch_instance(const LaunchShape& s, const GemvConfig& c, const GemvPart* p, const float* x,
                     cudaStream_t stream) {
  auto kernel = sparse_gemv_kernel<T, EPL, B, V, U>;
  static const bool attributes_set = [&] {
    SPARSA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kMaxSharedBytes)));
    SPARSA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    return true;
  }();
  (void)attributes_set;

  KernelParts parts{};
  parts.count = s.parts;
  int64_t tiles = 0;
  for (int m = 0; m < s.parts; ++m) {
    tiles += part_tiles(s, c.vecs, m);
    parts.wt[m] = p[m].wt, parts.y[m] = p[m].y, parts.out[m] = s.out[m], parts.threshold[m] = p[m].threshold;
    parts.tile_end[m] = tiles;
  }
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(tiles * c.split));
  config.blockDim = dim3(static_cast<unsigned>(c.warps * kWarpSize));
  config.dynamicSmemBytes = static_cast<size_t>(shared_bytes(s, V, c.warps, c.split));
  config.stream = stream;
  cudaLaunchAttribute attributes[2]{};
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = static_cast<unsigned>(c.split);
  attributes[0].val.clusterDim.y = 1;
  attributes[0].val.clusterDim.z = 1;
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attributes;
  config.numAttrs = c.pdl ? 2 : 1;
  SPARSA_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, parts, x, static_cast<int>(s.batch), s.in));
}

// Picks the instantiation for (batch tile, vecs, unroll); configs over the register budget were
// filtered out by the tuner's candidate list and are not instantiated.
template <WeightType T, int EPL>
void dispatch_tile(const LaunchShape& s, const GemvConfig& c, const GemvPart* parts, const float* x,
                   cudaStream_t stream) {
  auto with_batch = [&]<int B>() {
    auto with_vu = [&]<int V, int U>() {
      if constexpr (U * V * 4 + B * V * EPL <= kMaxRegisterWords) {
        if (c.vecs == V && c.unroll == U) {
          launch_instance<T, EPL, B, V, U>(s, c, parts, x, stream);
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
  switch (batch_tile(s.batch)) {
    case 1: with_batch.template operator()<1>(); break;
    case 2: with_batch.template operator()<2>(); break;
    case 4: with_batch.template operator()<4>(); break;
    default: with_batch.template operator()<8>(); break;
  }
}

template <WeightType T>
void dispatch_type(const LaunchShape& s, const GemvConfig& c, const GemvPart* parts, const float* x,
                   cudaStream_t stream) {
  constexpr int kVec = T == WeightType::F32 ? 4 : 8;
  if (s.epl == kVec) dispatch_tile<T, kVec>(s, c, parts, x, stream);
  else dispatch_tile<T, 1>(s, c, parts, x, stream);
}

// splitmix-style hash of (seed, i) -> uniform in [-1, 1), never 0.
__device__ float hashed_uniform(uint32_t seed, int64_t i) {
  uint64_t z = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;  // 24 random bits
  return u == 0.0f ? 0.5f : u;
}

template <WeightType T>
__global__ void fill_random_kernel(void* data, int64_t n, uint32_t seed) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = hashed_uniform(seed, i);
    if constexpr (T == WeightType::F32) static_cast<float*>(data)[i] = v;
    else if constexpr (T == WeightType::F16) static_cast<__half*>(data)[i] = __float2half_rn(v);
    else static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(v);
  }
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

void fill_random(WeightType type, void* data, int64_t n, uint32_t seed, void* stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
  const auto st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case WeightType::F32: fill_random_kernel<WeightType::F32><<<blocks, kThreads, 0, st>>>(data, n, seed); break;
    case WeightType::F16: fill_random_kernel<WeightType::F16><<<blocks, kThreads, 0, st>>>(data, n, seed); break;
    case WeightType::BF16: fill_random_kernel<WeightType::BF16><<<blocks, kThreads, 0, st>>>(data, n, seed); break;
  }
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda::gemv
