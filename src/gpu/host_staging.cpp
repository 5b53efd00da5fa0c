// Page-locked staging for weight and mask copies (src/gpu/host_staging.h).
#ifdef SPARSA_WITH_CUDA

#include "gpu/host_staging.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "cuda/cuda_check.h"
#include "gpu/gpu_types.h"
#include "sparsa/tensor.h"

namespace sparsa::gpu {
namespace {

// memcpy split over the OpenMP threads (one thread cannot fill the memory bus).
void parallel_copy(void* dst, const void* src, size_t bytes) {
  constexpr size_t kPiece = size_t{1} << 22;
  const auto pieces = static_cast<int64_t>((bytes + kPiece - 1) / kPiece);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < pieces; ++i) {
    const size_t at = static_cast<size_t>(i) * kPiece;
    std::memcpy(static_cast<char*>(dst) + at, static_cast<const char*>(src) + at, std::min(kPiece, bytes - at));
  }
}

}  // namespace

HostStaging::~HostStaging() {
  if (data_ != nullptr) cudaFreeHost(data_);
}

void* HostStaging::reserve(size_t bytes) {
  if (bytes > size_) {
    if (data_ != nullptr) SPARSA_CUDA_CHECK(cudaFreeHost(data_));
    data_ = nullptr;
    size_ = 0;
    SPARSA_CUDA_CHECK(cudaHostAlloc(&data_, bytes, cudaHostAllocPortable));  // usable from every device
    size_ = bytes;
  }
  return data_;
}

void convert_from_f32(const float* src, int64_t n, void* dst, GpuPrecision p) {
  if (!is_half(p)) {
    parallel_copy(dst, src, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  auto* h = static_cast<uint16_t*>(dst);
  const bool bf16 = is_bf16(p);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) h[i] = bf16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
}

void convert_to_f32(const void* src, int64_t n, float* dst, GpuPrecision p) {
  if (!is_half(p)) {
    parallel_copy(dst, src, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const auto* h = static_cast<const uint16_t*>(src);
  const bool bf16 = is_bf16(p);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
}

void HostStaging::upload(const float* src, int64_t n, void* dst, GpuPrecision p) {
  const size_t bytes = static_cast<size_t>(n) * element_bytes(p);
  void* buf = reserve(bytes);
  convert_from_f32(src, n, buf, p);
  SPARSA_CUDA_CHECK(cudaMemcpy(dst, buf, bytes, cudaMemcpyHostToDevice));
}

void HostStaging::download(const void* src, size_t bytes, void* dst) {
  void* buf = reserve(bytes);
  SPARSA_CUDA_CHECK(cudaMemcpy(buf, src, bytes, cudaMemcpyDeviceToHost));
  parallel_copy(dst, buf, bytes);
}

}  // namespace sparsa::gpu

#endif  // SPARSA_WITH_CUDA
