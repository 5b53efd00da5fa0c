// The element-wise kernels behind cuda/elementwise.cuh (grid-stride loops).
#include "cuda/cuda_check.h"
#include "cuda/elementwise.cuh"
#include "cuda/launch_util.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 32;

template <typename T>
__global__ void apply_mask_kernel(T* w, const uint8_t* __restrict__ mask, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (mask[i]) w[i] = T(0);
}

__global__ void add_bias_kernel(float* y, const float* __restrict__ b, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += b[i % cols];
}

__global__ void scale_kernel(float* y, const float* x, float s, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = x[i] * s;
}

__global__ void add_kernel(float* y, const float* __restrict__ x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void zero_small_kernel(float* x, int64_t n, float t) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (fabsf(x[i]) <= t) x[i] = 0.0f;
}

__global__ void relu_kernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = fmaxf(x[i], 0.0f);
}

__global__ void softcap_kernel(float* x, int64_t n, float cap) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = cap * tanhf(x[i] / cap);
}

}  // namespace

void launch_apply_mask(void* w, const uint8_t* mask, int64_t n, int element_bytes) {
  const unsigned blocks = grid_stride_blocks(n, kThreads, kMaxBlocks);
  if (element_bytes == 4)
    apply_mask_kernel<<<blocks, kThreads>>>(static_cast<float*>(w), mask, n);
  else
    apply_mask_kernel<<<blocks, kThreads>>>(static_cast<uint16_t*>(w), mask, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_add_bias(float* y, const float* b, int64_t rows, int64_t cols, void* stream) {
  add_bias_kernel<<<grid_stride_blocks(rows * cols, kThreads, kMaxBlocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      y, b, rows, cols);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_scale(float* y, const float* x, float s, int64_t n) {
  scale_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads>>>(y, x, s, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_add(float* y, const float* x, int64_t n) {
  add_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads>>>(y, x, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_zero_small(float* x, int64_t n, float t) {
  zero_small_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads>>>(x, n, t);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_relu(float* x, int64_t n) {
  relu_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads>>>(x, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_softcap(float* x, int64_t n, float cap) {
  softcap_kernel<<<grid_stride_blocks(n, kThreads, kMaxBlocks), kThreads>>>(x, n, cap);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
