// The conversion kernels behind cuda/convert.cuh: one grid-stride kernel for every pair of
// fp32 / bf16 / fp16.
#include "cuda/convert.cuh"
#include "cuda/cuda_check.h"
#include "cuda/half.cuh"
#include "cuda/launch_util.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 32;

// y[i] = x[i] converted (any of fp32, bf16, fp16 to any other).
template <typename In, typename Out>
__global__ void convert_kernel(const In* __restrict__ x, Out* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_float<Out>(as_float(x[i]));
}

}  // namespace

void launch_to_half(const float* x, void* y, int64_t n, bool half_bf16, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  const unsigned blocks = grid_stride_blocks(n, kThreads, kMaxBlocks);
  if (half_bf16)
    convert_kernel<<<blocks, kThreads, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n);
  else
    convert_kernel<<<blocks, kThreads, 0, s>>>(x, static_cast<__half*>(y), n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_from_half(const void* x, float* y, int64_t n, bool half_bf16) {
  const unsigned blocks = grid_stride_blocks(n, kThreads, kMaxBlocks);
  if (half_bf16)
    convert_kernel<<<blocks, kThreads>>>(static_cast<const __nv_bfloat16*>(x), y, n);
  else
    convert_kernel<<<blocks, kThreads>>>(static_cast<const __half*>(x), y, n);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
