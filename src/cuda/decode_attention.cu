// Single-query grouped attention over the KV cache for the GPU decoder (cuda/decode_attention.cuh).
//
// Grid: one thread-block cluster of kSplit blocks per query head; block `rank` owns a contiguous
// share of the keys 0..*pos (read from device memory, so a captured graph serves every position).
// A block
//   1. scores its keys, one thread per key, 16-byte loads along the head dimension
//      (score_j = q · k_j; the scale is applied inside the exponent, as the CPU does);
//   2. takes its local max m and p_j = exp((score_j - m) · scale), l = Σ p_j;
//   3. accumulates o = Σ p_j v_j: groups of threads each cover the head dimension, the groups
//      take the keys in turn, and their partials are summed in group order;
// then the cluster's rank 0 merges the blocks through distributed shared memory:
//   out = Σ_r o_r · exp((m_r - M) · scale) / Σ_r l_r · exp((m_r - M) · scale), M = max_r m_r.
// Deterministic (fixed summation orders, no atomics).
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/decode_attention.cuh"
#include "cuda/half.cuh"
#include "cuda/reduce.cuh"

namespace sparsa::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kSplit = 8;  // blocks per head: one portable cluster
constexpr int kThreads = 128;

// Loads N consecutive elements of T at p as fp32: one 16-byte load when N = 16 / sizeof(T)
// (p 16-byte aligned), else N = 1.
template <typename T, int N>
__device__ __forceinline__ void load(const T* p, float (&f)[N]) {
  if constexpr (N == 1) {
    f[0] = as_float(p[0]);
  } else {
    const uint4 r = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (std::is_same_v<T, float>) {
        f[i] = __uint_as_float(w[i]);
      } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
      } else {
        const float2 h = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
        f[2 * i] = h.x;
        f[2 * i + 1] = h.y;
      }
    }
  }
}

// Shared memory (floats): q [head_dim], o [head_dim], partials [groups × head_dim], m and l [2],
// scores [ceil(max_seq / kSplit)].
template <typename T, int N>
__global__ void __cluster_dims__(kSplit, 1, 1) __launch_bounds__(kThreads)
decode_attention_kernel(const float* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                        const int32_t* __restrict__ pos, float* __restrict__ out, int head_dim, int kv_dim, int group,
                        int row_threads, float scale, int window) {
  extern __shared__ float smem[];
  __shared__ float scratch[kThreads / 32];
  const int groups = kThreads / row_threads;
  float* qs = smem;
  float* o = qs + head_dim;
  float* partial = o + head_dim;
  float* ml = partial + groups * head_dim;
  float* scores = ml + 2;

  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int h = blockIdx.y, tid = threadIdx.x;
  const int first = window > 0 ? max(0, *pos + 1 - window) : 0;  // the sliding window's first key
  const int n_keys = *pos + 1 - first;
  const int per = (n_keys + kSplit - 1) / kSplit;
  const int k0 = first + min(n_keys, rank * per), count = first + min(n_keys, rank * per + per) - k0;
  const T* keys = k_cache + static_cast<int64_t>(k0) * kv_dim + (h / group) * head_dim;
  const T* values = v_cache + static_cast<int64_t>(k0) * kv_dim + (h / group) * head_dim;

  for (int d = tid; d < head_dim; d += kThreads) qs[d] = q[static_cast<int64_t>(h) * head_dim + d];
  __syncthreads();

  // 1. scores, one key per thread
  float m = -INFINITY;
  for (int i = tid; i < count; i += kThreads) {
    const T* k = keys + static_cast<int64_t>(i) * kv_dim;
    float s = 0.0f;
    for (int d = 0; d < head_dim; d += N) {
      float f[N];
      load<T, N>(k + d, f);
#pragma unroll
      for (int e = 0; e < N; ++e) s += qs[d + e] * f[e];
    }
    scores[i] = s;
    m = fmaxf(m, s);
  }
  m = block_reduce<kThreads, true>(m, scratch);

  // 2. unnormalised probabilities
  float l = 0.0f;
  for (int i = tid; i < count; i += kThreads) {
    const float p = expf((scores[i] - m) * scale);
    scores[i] = p;
    l += p;
  }
  l = block_reduce<kThreads, false>(l, scratch);  // also publishes scores to the block

  // 3. o = Σ p_i v_i: row_threads threads cover a value row N elements at a time; `groups` groups
  // take the keys in turn.
  const int lane = tid % row_threads, g = tid / row_threads;
  for (int c = lane * N; c < head_dim; c += row_threads * N) {
    float acc[N] = {};
    for (int i = g; i < count; i += groups) {
      float f[N];
      load<T, N>(values + static_cast<int64_t>(i) * kv_dim + c, f);
      const float p = scores[i];
#pragma unroll
      for (int e = 0; e < N; ++e) acc[e] += p * f[e];
    }
#pragma unroll
    for (int e = 0; e < N; ++e) partial[g * head_dim + c + e] = acc[e];
  }
  __syncthreads();
  for (int d = tid; d < head_dim; d += kThreads) {
    float sum = 0.0f;
    for (int j = 0; j < groups; ++j) sum += partial[j * head_dim + d];
    o[d] = sum;
  }
  if (tid == 0) ml[0] = m, ml[1] = l;
  cluster.sync();

  // 4. rank 0 merges the cluster's partial softmaxes (rank 0 always has key 0: M is finite)
  if (rank == 0) {
    float weight[kSplit];
    float M = -INFINITY, L = 0.0f;
    for (int r = 0; r < kSplit; ++r) M = fmaxf(M, cluster.map_shared_rank(ml, r)[0]);
    for (int r = 0; r < kSplit; ++r) {
      const float* remote = cluster.map_shared_rank(ml, r);
      weight[r] = expf((remote[0] - M) * scale);  // 0 for a block without keys (m = -inf)
      L += remote[1] * weight[r];
    }
    for (int d = tid; d < head_dim; d += kThreads) {
      float sum = 0.0f;
      for (int r = 0; r < kSplit; ++r) sum += cluster.map_shared_rank(o, r)[d] * weight[r];
      out[static_cast<int64_t>(h) * head_dim + d] = sum / L;
    }
  }
  cluster.sync();  // the other blocks' shared memory stays alive until rank 0 has read it
}

int next_pow2(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

template <typename T, int N>
void launch(const float* q, const void* k_cache, const void* v_cache, const int32_t* pos, float* out,
            int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t max_seq, int64_t window,
            cudaStream_t stream) {
  const int row_threads = std::min(kThreads, next_pow2(static_cast<int>((head_dim + N - 1) / N)));
  const int groups = kThreads / row_threads;
  const int64_t floats = 2 * head_dim + groups * head_dim + 2 + (max_seq + kSplit - 1) / kSplit;
  const size_t smem = static_cast<size_t>(floats) * sizeof(float);
  // At most (2 · 512 + 1024 + 2 + 65536 / 8) floats ≈ 37 KB (head_dim <= kRopeMaxHeadDim, max_seq <=
  // kDecodeMaxSeq): within the 48 KB a launch gets without opting in.
  const dim3 grid(kSplit, static_cast<unsigned>(n_heads));
  decode_attention_kernel<T, N><<<grid, kThreads, smem, stream>>>(q, static_cast<const T*>(k_cache), static_cast<const T*>(v_cache), pos, out,
                                           static_cast<int>(head_dim), static_cast<int>(n_kv_heads * head_dim),
                                           static_cast<int>(n_heads / n_kv_heads), row_threads,
                                           1.0f / sqrtf(static_cast<float>(head_dim)),
                                           static_cast<int>(std::min(window, max_seq)));
  SPARSA_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_typed(const float* q, const void* k_cache, const void* v_cache, const int32_t* pos, float* out,
                  int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t max_seq, int64_t window,
                  cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  if (head_dim % kVec == 0)  // every row 16-byte aligned (cudaMalloc'd caches)
    launch<T, kVec>(q, k_cache, v_cache, pos, out, n_heads, n_kv_heads, head_dim, max_seq, window, stream);
  else
    launch<T, 1>(q, k_cache, v_cache, pos, out, n_heads, n_kv_heads, head_dim, max_seq, window, stream);
}

}  // namespace

void launch_decode_attention(const float* q, const void* k_cache, const void* v_cache, Elem e,
                             const int32_t* pos, float* out, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                             int64_t max_seq, int64_t window, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (e) {
    case Elem::kF32:
      launch_typed<float>(q, k_cache, v_cache, pos, out, n_heads, n_kv_heads, head_dim, max_seq, window, s);
      break;
    case Elem::kBf16:
      launch_typed<__nv_bfloat16>(q, k_cache, v_cache, pos, out, n_heads, n_kv_heads, head_dim, max_seq, window, s);
      break;
    case Elem::kF16:
      launch_typed<__half>(q, k_cache, v_cache, pos, out, n_heads, n_kv_heads, head_dim, max_seq, window, s);
      break;
  }
}

}  // namespace sparsa::cuda
