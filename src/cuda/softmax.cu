// The causal softmax kernel behind cuda/softmax.cuh (the score and value products are cuBLAS
// batched GEMMs in gpu_forward.cpp). One block per query row.
#include "cuda/cuda_check.h"
#include "cuda/half.cuh"
#include "cuda/softmax.cuh"
#include "cuda/reduce.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;

// The CPU's order of operations: capped scores are cap · tanh(s · scale / cap) and are
// exponentiated unscaled; uncapped ones are exponentiated as (s - max) · scale.
__device__ __forceinline__ float shaped(float s, float softcap, float scale) {
  return softcap > 0.0f ? softcap * tanhf(s * scale / softcap) : s;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
causal_softmax_kernel(const float* __restrict__ scores, T* __restrict__ p, int64_t seqlen, CausalSoftmaxOptions o) {
  __shared__ float scratch[kThreads / 32];
  const int64_t row = blockIdx.x;
  const int64_t end = row % seqlen + 1;  // keys first..pos
  const int64_t first = o.window > 0 && end > o.window ? end - o.window : 0;
  const float exp_scale = o.softcap > 0.0f ? 1.0f : o.scale;
  const float* s = scores + row * seqlen;
  T* out = p + row * seqlen;
  float mx = -INFINITY;
  for (int64_t j = first + threadIdx.x; j < end; j += kThreads) mx = fmaxf(mx, shaped(s[j], o.softcap, o.scale));
  mx = block_reduce<kThreads, true>(mx, scratch);
  float sum = 0.0f;
  for (int64_t j = first + threadIdx.x; j < end; j += kThreads)
    sum += expf((shaped(s[j], o.softcap, o.scale) - mx) * exp_scale);
  sum = block_reduce<kThreads, false>(sum, scratch);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < seqlen; j += kThreads)
    out[j] = from_float<T>(j >= first && j < end ? expf((shaped(s[j], o.softcap, o.scale) - mx) * exp_scale) * inv
                                                 : 0.0f);
}

}  // namespace

void launch_causal_softmax(const float* scores, void* p, int64_t n_rows, int64_t seqlen, const CausalSoftmaxOptions& o,
                           bool half_out, bool half_bf16) {
  const auto grid = static_cast<unsigned>(n_rows);
  if (!half_out)
    causal_softmax_kernel<<<grid, kThreads>>>(scores, static_cast<float*>(p), seqlen, o);
  else if (half_bf16)
    causal_softmax_kernel<<<grid, kThreads>>>(scores, static_cast<__nv_bfloat16*>(p), seqlen, o);
  else
    causal_softmax_kernel<<<grid, kThreads>>>(scores, static_cast<__half*>(p), seqlen, o);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
