// The gelu_tanh_mul kernel behind cuda/gelu_tanh_mul.cuh; the CPU reference is
// sparsa::gelu_tanh_mul. A grid-stride loop over the flat buffers (Gemma's MLP is a small share
// of a study; the SwiGLU kernel of silu_mul.cu is the vectorised one).
#include "cuda/cuda_check.h"
#include "cuda/gelu_tanh_mul.cuh"
#include "cuda/launch_util.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;

// The CPU reference's expression and constants.
__global__ void gelu_tanh_mul_kernel(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kBeta = 0.7978845608028654f;  // sqrt(2 / pi)
  constexpr float kKappa = 0.044715f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + tanhf(kBeta * (g + kKappa * g * g * g))) * up[i];
  }
}

}  // namespace

void launch_gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n) {
  gelu_tanh_mul_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads>>>(gate, up, out, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
