// Element-wise helpers of the GPU model: casts to half types, bias, embedding gather, scaling.
#include "cuda/cuda_check.h"
#include "gpu/half.cuh"
#include "gpu/kernels.h"

namespace sparsa::gpu {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 32 ? b : 65535 * 32);
}

// y[i] = x[i] converted (any of fp32, bf16, fp16 to any other).
template <typename In, typename Out>
__global__ void convert_kernel(const In* __restrict__ x, Out* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_float<Out>(as_float(x[i]));
}

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

// One block per token row.
__global__ void gather_rows_kernel(const float* __restrict__ table, const int32_t* __restrict__ tokens,
                                   float* __restrict__ x, int64_t dim) {
  const float* src = table + static_cast<int64_t>(tokens[blockIdx.x]) * dim;
  float* dst = x + static_cast<int64_t>(blockIdx.x) * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

__global__ void scale_kernel(float* y, const float* x, float s, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = x[i] * s;
}

}  // namespace

void launch_to_half(const float* x, void* y, int64_t n, bool half_bf16, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (half_bf16)
    convert_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n);
  else
    convert_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, static_cast<__half*>(y), n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_from_half(const void* x, float* y, int64_t n, bool half_bf16) {
  if (half_bf16)
    convert_kernel<<<blocks_for(n), kThreads>>>(static_cast<const __nv_bfloat16*>(x), y, n);
  else
    convert_kernel<<<blocks_for(n), kThreads>>>(static_cast<const __half*>(x), y, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_apply_mask(void* w, const uint8_t* mask, int64_t n, int element_bytes) {
  if (element_bytes == 4)
    apply_mask_kernel<<<blocks_for(n), kThreads>>>(static_cast<float*>(w), mask, n);
  else
    apply_mask_kernel<<<blocks_for(n), kThreads>>>(static_cast<uint16_t*>(w), mask, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_add_bias(float* y, const float* b, int64_t rows, int64_t cols) {
  add_bias_kernel<<<blocks_for(rows * cols), kThreads>>>(y, b, rows, cols);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_gather_rows(const float* table, const int32_t* tokens, float* x, int64_t n, int64_t dim) {
  gather_rows_kernel<<<static_cast<unsigned>(n), kThreads>>>(table, tokens, x, dim);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_scale(float* y, const float* x, float s, int64_t n) {
  scale_kernel<<<blocks_for(n), kThreads>>>(y, x, s, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::gpu
