// The GPU decoder's small kernels (src/gpu/decode_kernels.h): embedding row, residual + RMSNorm,
// RoPE + KV-cache append, greedy argmax, and the random weights of the synthetic models. The
// attention kernel is in decode_attention.cu; the linears are the sparse GEMV.
#include <algorithm>
#include <cstdint>

#include "cuda/cuda_check.h"
#include "gpu/decode_kernels.h"
#include "gpu/half.cuh"
#include "gpu/reduce.cuh"

namespace sparsa::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kNormThreads = 1024;  // one block per norm: d_model is a few thousand at most
constexpr int64_t kMaxBlocks = 65535;

template <typename T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with T the element type of e.
template <typename F>
void with_elem(DecodeElem e, F&& f) {
  switch (e) {
    case DecodeElem::kF32: f(Tag<float>{}); break;
    case DecodeElem::kBf16: f(Tag<__nv_bfloat16>{}); break;
    case DecodeElem::kF16: f(Tag<__half>{}); break;
  }
}

unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : b > kMaxBlocks ? kMaxBlocks : b);
}

template <typename T>
__global__ void embed_kernel(const T* __restrict__ table, const int32_t* __restrict__ tokens,
                             const int32_t* __restrict__ pos, float* __restrict__ x, int64_t d) {
  const T* row = table + static_cast<int64_t>(tokens[*pos]) * d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < d;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = as_float(row[i]);
}

// Each thread owns the elements i ≡ threadIdx.x (mod kNormThreads): it writes x[i] and reads it
// back itself, so no other synchronisation than the reduction's is needed.
__global__ void __launch_bounds__(kNormThreads)
residual_rmsnorm_kernel(float* __restrict__ x, const float* __restrict__ delta, const float* __restrict__ w,
                        float* __restrict__ y, int64_t d, float eps) {
  __shared__ float scratch[kNormThreads / 32];
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += kNormThreads) {
    float v = x[i];
    if (delta != nullptr) x[i] = v = v + delta[i];
    ss += v * v;
  }
  ss = block_reduce<kNormThreads, false>(ss, scratch);
  const float scale = 1.0f / sqrtf(ss / static_cast<float>(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += kNormThreads) y[i] = x[i] * scale * w[i];
}

// Work items: (n_heads + n_kv_heads) × half rotation pairs (q heads, then k heads), then kv_dim
// copies of v.
template <typename T>
__global__ void rope_append_kernel(float* __restrict__ qkv, T* __restrict__ k_cache, T* __restrict__ v_cache,
                                   const int32_t* __restrict__ pos_ptr, int64_t n_heads, int64_t n_kv_heads,
                                   int64_t head_dim, const __grid_constant__ cuda::RopeFreqs freqs) {
  const int64_t pos = *pos_ptr, half = head_dim / 2, kv_dim = n_kv_heads * head_dim;
  const int64_t pairs = (n_heads + n_kv_heads) * half, total = pairs + kv_dim;
  const int64_t row = pos * kv_dim;
  for (int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; w < total;
       w += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (w < pairs) {
      const int64_t head = w / half, i = w % half;
      float* v = qkv + head * head_dim;  // k heads follow the q heads
      float s, c;
      sincosf(static_cast<float>(pos) * freqs.inv_freq[i], &s, &c);
      const float a = v[i], b = v[i + half];
      const float ra = a * c - b * s, rb = b * c + a * s;
      if (head < n_heads) {
        v[i] = ra;
        v[i + half] = rb;
      } else {
        T* k = k_cache + row + (head - n_heads) * head_dim;
        k[i] = from_float<T>(ra);
        k[i + half] = from_float<T>(rb);
      }
    } else {
      const int64_t e = w - pairs;
      v_cache[row + e] = from_float<T>(qkv[n_heads * head_dim + kv_dim + e]);
    }
  }
}

// (value, index) with the larger value, the lower index on ties; NaN never wins.
__device__ void take_better(float& best, int32_t& at, float v, int32_t i) {
  if (v > best || (v == best && i < at)) best = v, at = i;
}

__global__ void __launch_bounds__(kNormThreads)
argmax_advance_kernel(const float* __restrict__ logits, int64_t vocab, int32_t* __restrict__ tokens,
                      int32_t* __restrict__ pos, const int32_t* __restrict__ prompt_len) {
  __shared__ float best_v[kNormThreads / 32];
  __shared__ int32_t best_i[kNormThreads / 32];
  float best = -INFINITY;
  int32_t at = INT32_MAX;
  for (int64_t i = threadIdx.x; i < vocab; i += kNormThreads) take_better(best, at, logits[i], static_cast<int32_t>(i));
  for (int o = 16; o > 0; o /= 2)
    take_better(best, at, __shfl_xor_sync(kFullMask, best, o), __shfl_xor_sync(kFullMask, at, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) best_v[warp] = best, best_i[warp] = at;
  __syncthreads();
  if (warp == 0) {
    best = best_v[lane];
    at = best_i[lane];
    for (int o = 16; o > 0; o /= 2)
      take_better(best, at, __shfl_xor_sync(kFullMask, best, o), __shfl_xor_sync(kFullMask, at, o));
    if (lane == 0) {
      const int32_t p = *pos;
      if (p + 1 >= *prompt_len) tokens[p + 1] = at == INT32_MAX ? 0 : at;  // all NaN: token 0
      *pos = p + 1;
    }
  }
}

__device__ uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Box–Muller on two 24-bit uniforms in (0, 1) from one 64-bit hash of (seed, i).
template <typename T>
__global__ void fill_normal_kernel(T* __restrict__ data, int64_t n, uint64_t seed, float stddev) {
  const uint64_t key = splitmix64(seed);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = splitmix64(key ^ static_cast<uint64_t>(i));
    const float u1 = (static_cast<float>(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
    const float u2 = (static_cast<float>(h & 0xffffffull) + 0.5f) * (1.0f / 16777216.0f);
    data[i] = from_float<T>(stddev * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2));
  }
}

}  // namespace

void launch_decode_embed(const void* table, DecodeElem e, const int32_t* tokens, const int32_t* pos, float* x,
                         int64_t d, void* stream) {
  with_elem(e, [&](auto tag) {
    using T = typename decltype(tag)::type;
    embed_kernel<<<blocks_for(d), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(table),
                                                                                      tokens, pos, x, d);
  });
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_residual_rmsnorm(float* x, const float* delta, const float* w, float* y, int64_t d, float eps,
                             void* stream) {
  residual_rmsnorm_kernel<<<1, kNormThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, delta, w, y, d, eps);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_rope_append(float* qkv, void* k_cache, void* v_cache, DecodeElem e, const int32_t* pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, const cuda::RopeFreqs& freqs, void* stream) {
  const int64_t work = (n_heads + n_kv_heads) * (head_dim / 2) + n_kv_heads * head_dim;
  with_elem(e, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rope_append_kernel<<<blocks_for(work), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        qkv, static_cast<T*>(k_cache), static_cast<T*>(v_cache), pos, n_heads, n_kv_heads, head_dim, freqs);
  });
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_argmax_advance(const float* logits, int64_t vocab, int32_t* tokens, int32_t* pos,
                           const int32_t* prompt_len, void* stream) {
  argmax_advance_kernel<<<1, kNormThreads, 0, static_cast<cudaStream_t>(stream)>>>(logits, vocab, tokens, pos,
                                                                                    prompt_len);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_fill_normal(void* data, DecodeElem e, int64_t n, uint64_t seed, float stddev, void* stream) {
  with_elem(e, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const unsigned blocks = std::min(blocks_for(n), 4096u);  // grid-stride beyond
    fill_normal_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<T*>(data), n, seed,
                                                                                    stddev);
  });
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::gpu
