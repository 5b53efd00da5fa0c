// The rope kernels behind cuda/rope.cuh (HF "rotate_half" layout); the CPU reference is
// sparsa::rope. The host computes inv_freq exactly as the CPU does and passes it by value, so the
// fp32 angles pos * inv_freq[i] are bit-identical to the CPU's even at large positions; only
// sin/cos (a few ulp) and fused multiply-adds differ. Both kernels rotate through rotate_pair.
#include "cuda/cuda_check.h"
#include "cuda/half.cuh"
#include "cuda/launch_util.cuh"
#include "cuda/rope.cuh"

#include <algorithm>
#include <cstdint>

namespace sparsa::cuda {
namespace {

constexpr int64_t kThreads = 256;

// sin and cos of the angle of pair i at position pos.
struct Angle {
  float s, c;
};
__device__ __forceinline__ Angle rope_angle(int64_t pos, const RopeFreqs& freqs, int64_t i) {
  Angle a;
  sincosf(static_cast<float>(pos) * freqs.inv_freq[i], &a.s, &a.c);
  return a;
}

// The pair (v[i], v[i + half]) rotated by the angle: (a c - b s, b c + a s).
__device__ __forceinline__ float2 rotate_pair(const float* v, int64_t i, int64_t half, Angle a) {
  const float x = v[i], y = v[i + half];
  return make_float2(x * a.c - y * a.s, y * a.c + x * a.s);
}

// x: [n_tokens, n_heads, head_dim], positions: [n_tokens]; grid = n_tokens,
// block = (head_dim / 2, heads per pass). One block per token; threadIdx.x = pair index i.
__global__ void __launch_bounds__(kThreads)
rope_kernel(float* x, const int32_t* __restrict__ positions, int64_t n_heads, int64_t head_dim,
            const __grid_constant__ RopeFreqs freqs) {
  const int64_t t = blockIdx.x;
  const int64_t half = head_dim / 2;
  const int64_t i = threadIdx.x;
  const Angle a = rope_angle(positions[t], freqs, i);
  for (int64_t h = threadIdx.y; h < n_heads; h += blockDim.y) {
    float* v = x + (t * n_heads + h) * head_dim;
    const float2 r = rotate_pair(v, i, half, a);
    v[i] = r.x;
    v[i + half] = r.y;
  }
}

// Work items: (n_heads + n_kv_heads) × half rotation pairs (q heads, then k heads), then kv_dim
// copies of v.
template <typename T>
__global__ void rope_append_kernel(float* __restrict__ qkv, T* __restrict__ k_cache, T* __restrict__ v_cache,
                                   const int32_t* __restrict__ pos_ptr, int64_t n_heads, int64_t n_kv_heads,
                                   int64_t head_dim, const __grid_constant__ RopeFreqs freqs) {
  const int64_t pos = *pos_ptr, half = head_dim / 2, kv_dim = n_kv_heads * head_dim;
  const int64_t pairs = (n_heads + n_kv_heads) * half, total = pairs + kv_dim;
  const int64_t row = pos * kv_dim;
  for (int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; w < total;
       w += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (w < pairs) {
      const int64_t head = w / half, i = w % half;
      float* v = qkv + head * head_dim;  // k heads follow the q heads
      const float2 r = rotate_pair(v, i, half, rope_angle(pos, freqs, i));
      if (head < n_heads) {
        v[i] = r.x;
        v[i + half] = r.y;
      } else {
        T* k = k_cache + row + (head - n_heads) * head_dim;
        k[i] = from_float<T>(r.x);
        k[i + half] = from_float<T>(r.y);
      }
    } else {
      const int64_t e = w - pairs;
      v_cache[row + e] = from_float<T>(qkv[n_heads * head_dim + kv_dim + e]);
    }
  }
}

}  // namespace

void launch_rope(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                 const RopeFreqs& freqs) {
  const int64_t half = head_dim / 2;
  const dim3 block(static_cast<unsigned>(half), static_cast<unsigned>(std::min(kThreads / half, n_heads)));
  rope_kernel<<<static_cast<unsigned>(n_tokens), block>>>(x, positions, n_heads, head_dim, freqs);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_rope_append(float* qkv, void* k_cache, void* v_cache, Elem e, const int32_t* pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, const RopeFreqs& freqs, void* stream) {
  const int64_t work = (n_heads + n_kv_heads) * (head_dim / 2) + n_kv_heads * head_dim;
  with_elem(e, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rope_append_kernel<<<grid_stride_blocks(work, kThreads, 65535), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        qkv, static_cast<T*>(k_cache), static_cast<T*>(v_cache), pos, n_heads, n_kv_heads, head_dim, freqs);
  });
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
