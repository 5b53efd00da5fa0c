// The public GPU ops of sparsa/cuda.h: argument checks, then the launchers in the .cu files.
// Compiled by the C++ compiler, so rope's inverse frequencies come out bit-identical to the CPU
// reference in src/model/ops.cpp (same expression, same libm).
#ifdef SPARSA_WITH_CUDA

#include "cuda/launch.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"

#include <cmath>
#include <cstdint>

namespace sparsa {

static_assert(cuda::kRopeMaxHalf * 2 == kRopeMaxHeadDim);

// Same expression as sparsa::rope.
cuda::RopeFreqs cuda::rope_freqs(int64_t head_dim, float theta) {
  SPARSA_ASSERT(head_dim / 2 <= kRopeMaxHalf);
  RopeFreqs f{};
  for (int64_t i = 0; i < head_dim / 2; ++i)
    f.inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  return f;
}

void rmsnorm_cuda(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim,
                  float eps) {
  SPARSA_ASSERT(n_tokens >= 0 && n_tokens <= INT32_MAX && dim >= 0);
  if (n_tokens == 0 || dim == 0) return;
  cuda::launch_rmsnorm(x, weight, y, n_tokens, dim, eps);
}

void silu_mul_cuda(const float* gate, const float* up, float* out, int64_t n_tokens, int64_t dim) {
  SPARSA_ASSERT(n_tokens >= 0 && dim >= 0);
  if (n_tokens == 0 || dim == 0) return;
  cuda::launch_silu_mul(gate, up, out, n_tokens * dim);
}

void rope_cuda(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
               float theta) {
  SPARSA_ASSERT(n_tokens >= 0 && n_tokens <= INT32_MAX && n_heads >= 0 && head_dim >= 0);
  if (head_dim > kRopeMaxHeadDim)
    runtime_failure("rope_cuda: head_dim {} exceeds the supported maximum {}", head_dim, kRopeMaxHeadDim);
  if (n_tokens == 0 || n_heads == 0 || head_dim < 2) return;
  cuda::launch_rope(x, positions, n_tokens, n_heads, head_dim, cuda::rope_freqs(head_dim, theta));
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
