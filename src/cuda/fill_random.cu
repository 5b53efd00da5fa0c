// The random-fill kernels behind cuda/fill_random.cuh: grid-stride loops over a counter-based
// splitmix64 hash of (seed, index).
#include "cuda/cuda_check.h"
#include "cuda/fill_random.cuh"
#include "cuda/half.cuh"
#include "cuda/launch_util.cuh"

#include <algorithm>

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride beyond

__device__ uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [-1, 1) from 24 bits of the hash of (seed, i); 0 becomes 0.5.
__device__ float hashed_uniform(uint32_t seed, int64_t i) {
  const uint64_t z = splitmix64_mix((static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull + seed);
  const float u = static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
  return u == 0.0f ? 0.5f : u;
}

template <typename T>
__global__ void fill_uniform_kernel(T* __restrict__ data, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    data[i] = from_float<T>(hashed_uniform(seed, i));
}

// Box–Muller on two 24-bit uniforms in (0, 1) from one 64-bit hash of (seed, i).
template <typename T>
__global__ void fill_normal_kernel(T* __restrict__ data, int64_t n, uint64_t seed, float stddev) {
  const uint64_t key = splitmix64_mix(seed + 0x9e3779b97f4a7c15ull);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = splitmix64_mix((key ^ static_cast<uint64_t>(i)) + 0x9e3779b97f4a7c15ull);
    const float u1 = (static_cast<float>(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
    const float u2 = (static_cast<float>(h & 0xffffffull) + 0.5f) * (1.0f / 16777216.0f);
    data[i] = from_float<T>(stddev * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2));
  }
}

}  // namespace

void launch_fill_uniform(void* data, Elem e, int64_t n, uint32_t seed, void* stream) {
  if (n == 0) return;
  with_elem(e, [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_uniform_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads, 0,
                          static_cast<cudaStream_t>(stream)>>>(static_cast<T*>(data), n, seed);
  });
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_fill_normal(void* data, Elem e, int64_t n, uint64_t seed, float stddev, void* stream) {
  if (n == 0) return;
  with_elem(e, [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_normal_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads, 0,
                         static_cast<cudaStream_t>(stream)>>>(static_cast<T*>(data), n, seed, stddev);
  });
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
