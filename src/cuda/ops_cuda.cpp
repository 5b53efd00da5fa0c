// The public GPU ops of sparsa/cuda.h: argument checks, then the launchers of src/cuda/<op>.cuh.
// Compiled by the C++ compiler, so rope's inverse frequencies come out bit-identical to the CPU
// reference in src/model/ops.cpp (same expression, same libm).
#ifdef SPARSA_WITH_CUDA

#include "cuda/convert.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/fill_random.cuh"
#include "cuda/read_bandwidth.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/rope.cuh"
#include "cuda/silu_mul.cuh"
#include "cuda/sqsum.cuh"
#include "sparsa/cuda.h"
#include "cuda/launch_timer.h"
#include "sparsa/error.h"

#include <cmath>
#include <cstdint>

namespace sparsa {
namespace {

// The element type of a public op's buffer; Error(kBadInput) naming `op` for another type.
cuda::Elem elem_of(DType type, const char* op) {
  switch (type) {
    case DType::F32: return cuda::Elem::kF32;
    case DType::BF16: return cuda::Elem::kBf16;
    case DType::F16: return cuda::Elem::kF16;
    default: bad_input("{}: unsupported element type {}", op, dtype_name(type));
  }
}

cuda::Elem half_elem_of(DType type, const char* op) {
  const cuda::Elem e = elem_of(type, op);
  if (e == cuda::Elem::kF32) bad_input("{}: {} is not a half type (bf16 or f16)", op, dtype_name(type));
  return e;
}

}  // namespace

static_assert(cuda::kRopeMaxHalf * 2 == kRopeMaxHeadDim);
static_assert(cuda::kSqsumSlice == kColumnSqsumSlice);

// Same expression as sparsa::rope.
cuda::RopeFreqs cuda::rope_freqs(int64_t head_dim, float theta) {
  SPARSA_ASSERT(head_dim / 2 <= kRopeMaxHalf);
  RopeFreqs f{};
  for (int64_t i = 0; i < head_dim / 2; ++i)
    f.inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  return f;
}

void rmsnorm_cuda(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim,
                  float eps) {
  SPARSA_ASSERT(n_tokens >= 0 && n_tokens <= INT32_MAX && dim >= 0);
  if (n_tokens == 0 || dim == 0) return;
  cuda::launch_rmsnorm(x, weight, y, n_tokens, dim, eps);
}

void silu_mul_cuda(const float* gate, const float* up, float* out, int64_t n_tokens, int64_t dim) {
  SPARSA_ASSERT(n_tokens >= 0 && dim >= 0);
  if (n_tokens == 0 || dim == 0) return;
  cuda::launch_silu_mul(gate, up, out, n_tokens * dim);
}

void rope_cuda(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
               float theta) {
  SPARSA_ASSERT(n_tokens >= 0 && n_tokens <= INT32_MAX && n_heads >= 0 && head_dim >= 0);
  if (head_dim > kRopeMaxHeadDim)
    runtime_failure("rope_cuda: head_dim {} exceeds the supported maximum {}", head_dim, kRopeMaxHeadDim);
  if (n_tokens == 0 || n_heads == 0 || head_dim < 2) return;
  cuda::launch_rope(x, positions, n_tokens, n_heads, head_dim, cuda::rope_freqs(head_dim, theta));
}

void to_half_cuda(const float* x, void* y, int64_t n, DType half_type, void* stream) {
  const cuda::Elem e = half_elem_of(half_type, "to_half_cuda");
  SPARSA_ASSERT(n >= 0);
  if (n == 0) return;
  cuda::launch_to_half(x, y, n, e == cuda::Elem::kBf16, stream);
}

void scale_cuda(float* y, const float* x, float s, int64_t n) {
  SPARSA_ASSERT(n >= 0);
  if (n == 0) return;
  cuda::launch_scale(y, x, s, n);
}

void column_sqsum_cuda(const void* x, DType type, double* acc, float* scratch, int64_t n_tokens, int64_t cols) {
  const cuda::Elem e = elem_of(type, "column_sqsum_cuda");
  SPARSA_ASSERT(n_tokens >= 0 && cols >= 0);
  if (n_tokens == 0 || cols == 0) return;
  if (e == cuda::Elem::kF32)
    cuda::launch_col_sqsum(static_cast<const float*>(x), nullptr, false, acc, scratch, n_tokens, cols);
  else
    cuda::launch_col_sqsum(nullptr, x, e == cuda::Elem::kBf16, acc, scratch, n_tokens, cols);
}

void column_norm_cuda(const double* acc, float* norm, int64_t cols, int64_t samples) {
  SPARSA_ASSERT(cols >= 0 && samples >= 1);
  if (cols == 0) return;
  cuda::launch_mean_sqrt(acc, norm, cols, samples);
}

void fill_uniform_cuda(void* data, DType type, int64_t n, uint32_t seed, void* stream) {
  const cuda::Elem e = elem_of(type, "fill_uniform_cuda");
  SPARSA_ASSERT(n >= 0);
  cuda::launch_fill_uniform(data, e, n, seed, stream);
}

double read_bandwidth_cuda(int64_t bytes, int runs) {
  if (bytes < (int64_t{64} << 20) || runs < 1)
    bad_input("read_bandwidth_cuda: at least 64 MiB (past the L2) and one run, got {} bytes, {} runs", bytes, runs);
  const int64_t words = bytes / 16;
  DeviceBuffer<uint8_t> data(static_cast<size_t>(words * 16));
  DeviceBuffer<uint32_t> out(1);
  fill_uniform_cuda(data.data(), DType::F32, words * 4, 0x5eed);
  cuda_synchronize();
  const double seconds = cuda::median_launch_seconds(
      runs, [&](int, cudaStream_t stream) { cuda::launch_read_xor(data.data(), words, out.data(), stream); });
  return static_cast<double>(words * 16) / seconds;
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
