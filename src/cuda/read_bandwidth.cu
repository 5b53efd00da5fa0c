// The read-bandwidth probe (read_bandwidth.cuh); sparsa::read_bandwidth_cuda, which times it, is in
// ops_cuda.cpp.
#include "cuda/cuda_check.h"
#include "cuda/read_bandwidth.cuh"

#include <cuda_runtime.h>

#include <algorithm>

namespace sparsa {
namespace cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kUnroll = 4;  // 16-byte loads in flight per thread

__global__ void __launch_bounds__(kThreads) read_xor_kernel(const uint4* __restrict__ data, int64_t words, uint32_t* out) {
  const int64_t stride = int64_t{gridDim.x} * kThreads;
  uint32_t acc = 0;
  int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < words; i += kUnroll * stride) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = __ldcs(data + i + u * stride);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < words; i += stride) {
    const uint4 v = __ldcs(data + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  for (int offset = 16; offset > 0; offset /= 2) acc ^= __shfl_xor_sync(0xffffffffu, acc, offset);
  if (threadIdx.x % 32 == 0 && acc != 0) atomicXor(out, acc);
}

}  // namespace

void launch_read_xor(const void* data, int64_t words, uint32_t* out, void* stream) {
  int device = 0, sms = 0, per_sm = 0;
  SPARSA_CUDA_CHECK(cudaGetDevice(&device));
  SPARSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  SPARSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, read_xor_kernel, kThreads, 0));
  const auto st = static_cast<cudaStream_t>(stream);
  SPARSA_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(uint32_t), st));
  read_xor_kernel<<<sms * std::max(per_sm, 1), kThreads, 0, st>>>(static_cast<const uint4*>(data), words, out);
  SPARSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda

}  // namespace sparsa
