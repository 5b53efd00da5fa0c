// The rope kernel behind sparsa::rope_cuda (HF "rotate_half" layout); the CPU reference is
// sparsa::rope. The host computes inv_freq exactly as the CPU does and passes it by value, so the
// fp32 angles pos * inv_freq[i] are bit-identical to the CPU's even at large positions; only
// sin/cos (a few ulp) and fused multiply-adds differ.
// One block per token; threadIdx.x = pair index i in [0, head_dim/2), threadIdx.y strides the heads.
#include "cuda/cuda_check.h"
#include "cuda/launch.h"

#include <algorithm>
#include <cstdint>

namespace sparsa::cuda {
namespace {

constexpr int64_t kThreads = 256;

// x: [n_tokens, n_heads, head_dim], positions: [n_tokens]; grid = n_tokens,
// block = (head_dim / 2, heads per pass).
__global__ void __launch_bounds__(kThreads)
rope_kernel(float* x, const int32_t* __restrict__ positions, int64_t n_heads, int64_t head_dim,
            const __grid_constant__ RopeFreqs freqs) {
  const int64_t t = blockIdx.x;
  const int64_t half = head_dim / 2;
  const int64_t i = threadIdx.x;
  const float angle = static_cast<float>(positions[t]) * freqs.inv_freq[i];
  float s, c;
  sincosf(angle, &s, &c);
  for (int64_t h = threadIdx.y; h < n_heads; h += blockDim.y) {
    float* v = x + (t * n_heads + h) * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
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

}  // namespace sparsa::cuda
