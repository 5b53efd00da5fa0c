// The silu_mul kernels behind cuda/silu_mul.cuh; the CPU reference is sparsa::silu_mul.
// Elementwise over the flat buffers with a grid-stride loop: float4 loads and stores over the
// largest multiple of 4 elements when all three buffers are 16-byte aligned, scalar for the rest.
#include "cuda/cuda_check.h"
#include "cuda/launch_util.cuh"
#include "cuda/silu_mul.cuh"

#include <algorithm>
#include <cstdint>

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65536;  // the grid-stride loop covers the rest

// Same expression as the CPU reference: g / (1 + exp(-g)) * u (accurate expf, IEEE division).
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// gate, up, out: [n]. out may alias gate (each element is read before it is written).
__global__ void silu_mul_scalar_kernel(const float* gate, const float* __restrict__ up, float* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = silu_times(gate[i], up[i]);
}

// gate, up, out: [n4] float4, 16-byte aligned. out may alias gate.
__global__ void silu_mul_vec4_kernel(const float4* gate, const float4* __restrict__ up, float4* out, int64_t n4) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += stride) {
    const float4 g = gate[i];
    const float4 u = up[i];
    out[i] = make_float4(silu_times(g.x, u.x), silu_times(g.y, u.y), silu_times(g.z, u.z),
                         silu_times(g.w, u.w));
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

unsigned blocks_for(int64_t n) { return grid_stride_blocks(n, kThreads, kMaxBlocks); }

}  // namespace

void launch_silu_mul(const float* gate, const float* up, float* out, int64_t n, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  int64_t done = 0;  // elements handled by the vectorised kernel
  if (aligned16(gate) && aligned16(up) && aligned16(out) && n >= 4) {
    const int64_t n4 = n / 4;
    silu_mul_vec4_kernel<<<blocks_for(n4), kThreads, 0, s>>>(reinterpret_cast<const float4*>(gate),
                                                      reinterpret_cast<const float4*>(up),
                                                      reinterpret_cast<float4*>(out), n4);
    SPARSA_CUDA_CHECK_LAUNCH();
    done = n4 * 4;
  }
  if (done < n) {
    silu_mul_scalar_kernel<<<blocks_for(n - done), kThreads, 0, s>>>(gate + done, up + done, out + done, n - done);
    SPARSA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace sparsa::cuda
