// The embedding-lookup kernels behind cuda/get_rows.cuh.
#include "cuda/cuda_check.h"
#include "cuda/get_rows.cuh"
#include "cuda/half.cuh"
#include "cuda/launch_util.cuh"

namespace sparsa::cuda {
namespace {

constexpr int kThreads = 256;

// One block per token row.
__global__ void gather_rows_kernel(const float* __restrict__ table, const int32_t* __restrict__ tokens,
                                   float* __restrict__ x, int64_t dim) {
  const float* src = table + static_cast<int64_t>(tokens[blockIdx.x]) * dim;
  float* dst = x + static_cast<int64_t>(blockIdx.x) * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

// One block per token row: its window position's row added.
__global__ void add_position_rows_kernel(const float* __restrict__ table, int64_t offset, int64_t seqlen,
                                         float* __restrict__ x, int64_t dim) {
  const float* src = table + (static_cast<int64_t>(blockIdx.x) % seqlen + offset) * dim;
  float* dst = x + static_cast<int64_t>(blockIdx.x) * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] += src[i];
}

// The row of the token at position *pos, grid-stride over its dim elements.
template <typename T>
__global__ void embed_row_kernel(const T* __restrict__ table, const int32_t* __restrict__ tokens,
                                 const int32_t* __restrict__ pos, float* __restrict__ x, int64_t dim) {
  const T* row = table + static_cast<int64_t>(tokens[*pos]) * dim;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < dim;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = as_float(row[i]);
}

}  // namespace

void launch_gather_rows(const float* table, const int32_t* tokens, float* x, int64_t n, int64_t dim) {
  gather_rows_kernel<<<static_cast<unsigned>(n), kThreads>>>(table, tokens, x, dim);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_add_position_rows(const float* table, int64_t offset, int64_t seqlen, float* x, int64_t n, int64_t dim) {
  add_position_rows_kernel<<<static_cast<unsigned>(n), kThreads>>>(table, offset, seqlen, x, dim);
  SPARSA_CUDA_CHECK_LAUNCH();
}

void launch_embed_row(const void* table, Elem e, const int32_t* tokens, const int32_t* pos, float* x, int64_t dim,
                      void* stream) {
  with_elem(e, [&](auto tag) {
    using T = typename decltype(tag)::type;
    embed_row_kernel<<<grid_stride_blocks(dim, kThreads, 65535), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(table), tokens, pos, x, dim);
  });
  SPARSA_CUDA_CHECK_LAUNCH();
}

}  // namespace sparsa::cuda
