// The causal softmax kernel behind cuda/softmax.cuh (the score and value products are cuBLAS
// batched GEMMs in gpu_forward.cpp). One block per query row.
#include "cuda/cuda_check.h"
#include "cuda/half.cuh"
#include "cuda/softmax.cuh"
#include "cuda/reduce.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
causal_softmax_kernel(const float* __restrict__ scores, T* __restrict__ p, int64_t seqlen, float scale) {
  __shared__ float scratch[kThreads / 32];
  const int64_t row = blockIdx.x;
  const int64_t visible = row % seqlen + 1;  // keys 0..pos
  const float* s = scores + row * seqlen;
  T* out = p + row * seqlen;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < visible; j += kThreads) mx = fmaxf(mx, s[j]);
  mx = block_reduce<kThreads, true>(mx, scratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < visible; j += kThreads) sum += expf((s[j] - mx) * scale);
  sum = block_reduce<kThreads, false>(sum, scratch);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < seqlen; j += kThreads)
    out[j] = from_float<T>(j < visible ? expf((s[j] - mx) * scale) * inv : 0.0f);
}

}  // namespace

void launch_causal_softmax(const float* scores, void* p, int64_t n_rows, int64_t seqlen, float scale, bool half_out,
                           bool half_bf16) {
  const auto grid = static_cast<unsigned>(n_rows);
  if (!half_out)
    causal_softmax_kernel<<<grid, kThreads>>>(scores, static_cast<float*>(p), seqlen, scale);
  else if (half_bf16)
    causal_softmax_kernel<<<grid, kThreads>>>(scores, static_cast<__nv_bfloat16*>(p), seqlen, scale);
  else
    causal_softmax_kernel<<<grid, kThreads>>>(scores, static_cast<__half*>(p), seqlen, scale);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
