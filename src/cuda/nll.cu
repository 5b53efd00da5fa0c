// The NLL kernel behind cuda/nll.cuh: per-token negative log-likelihood of the next token for
// GPU perplexity. One block per row.
#include "cuda/cuda_check.h"
#include "cuda/nll.cuh"
#include "cuda/reduce.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
row_nll_kernel(const float* __restrict__ logits, const int32_t* __restrict__ targets, double* nll, int64_t vocab,
               uint8_t* greedy) {
  __shared__ float scratch[kThreads / 32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) mx = fmaxf(mx, row[j]);
  mx = block_reduce<kThreads, true>(mx, scratch);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) sum += expf(row[j] - mx);
  sum = block_reduce<kThreads, false>(sum, scratch);
  if (threadIdx.x == 0)
    nll[blockIdx.x] = static_cast<double>(mx) + log(static_cast<double>(sum)) -
                      static_cast<double>(row[targets[blockIdx.x]]);
  if (greedy == nullptr) return;  // the same for every thread of the block
  // The first index holding the maximum, as -max(-index) (indices below 2^24 are exact in fp32).
  float first = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads)
    if (row[j] == mx) {
      first = -static_cast<float>(j);
      break;
    }
  first = block_reduce<kThreads, true>(first, scratch);
  if (threadIdx.x == 0) greedy[blockIdx.x] = -first == static_cast<float>(targets[blockIdx.x]);
}

}  // namespace

void launch_row_nll(const float* logits, const int32_t* targets, double* nll, int64_t n, int64_t vocab,
                    uint8_t* greedy) {
  row_nll_kernel<<<static_cast<unsigned>(n), kThreads>>>(logits, targets, nll, vocab, greedy);
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
