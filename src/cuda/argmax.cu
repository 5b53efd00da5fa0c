// The argmax kernel behind cuda/argmax.cuh: one block of 1024 threads; each thread keeps the
// best of a strided slice, warps merge with shuffles, warp 0 merges the warps.
#include "cuda/argmax.cuh"
#include "cuda/cuda_check.h"
#include "cuda/reduce.cuh"

#include <cstdint>

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 1024;

// (value, index) with the larger value, the lower index on ties; NaN never wins.
__device__ void take_better(float& best, int32_t& at, float v, int32_t i) {
  if (v > best || (v == best && i < at)) best = v, at = i;
}

__global__ void __launch_bounds__(kThreads)
argmax_advance_kernel(const float* __restrict__ logits, int64_t vocab, int32_t* __restrict__ tokens,
                      int32_t* __restrict__ pos, const int32_t* __restrict__ prompt_len) {
  __shared__ float best_v[kThreads / 32];
  __shared__ int32_t best_i[kThreads / 32];
  float best = -INFINITY;
  int32_t at = INT32_MAX;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) take_better(best, at, logits[i], static_cast<int32_t>(i));
  for (int o = 16; o > 0; o /= 2)
    take_better(best, at, __shfl_xor_sync(kFullMask, best, o), __shfl_xor_sync(kFullMask, at, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) best_v[warp] = best, best_i[warp] = at;
  __syncthreads();
  if (warp == 0) {
    best = best_v[lane];
    at = best_i[lane];
    for (int o = 16; o > 0; o /= 2)
      take_better(best, at, __shfl_xor_sync(kFullMask, best, o), __shfl_xor_sync(kFullMask, at, o));
    if (lane == 0) {
      const int32_t p = *pos;
      if (p + 1 >= *prompt_len) tokens[p + 1] = at == INT32_MAX ? 0 : at;  // all NaN: token 0
      *pos = p + 1;
    }
  }
}

}  // namespace

void launch_argmax_advance(const float* logits, int64_t vocab, int32_t* tokens, int32_t* pos,
                           const int32_t* prompt_len, void* stream) {
  argmax_advance_kernel<<<1, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(logits, vocab, tokens, pos,
                                                                                    prompt_len);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
