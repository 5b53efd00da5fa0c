// Device queries, device memory and the CUDA error type (sparsa/cuda.h, cuda/cuda_check.h).
// Host-only runtime calls, so this is compiled by the C++ compiler, not nvcc.
#ifdef SPARSA_WITH_CUDA

#include "cuda/cuda_check.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"

namespace sparsa {
namespace cuda {

void throw_cuda_error(cudaError_t code, const char* file, int line) {
  cudaGetLastError();  // reset the non-sticky error so the next check starts clean
  runtime_failure("CUDA error {} at {}:{}: {}", cudaGetErrorName(code), file, line,
                  cudaGetErrorString(code));
}

}  // namespace cuda

namespace {

// No driver, an old driver and no device all come back as errors here: each means "no GPU".
int query_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace

int cuda_device_count() {
  static const int count = query_device_count();
  return count;
}

std::string cuda_device_name(int device) {
  cudaDeviceProp prop{};
  SPARSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

void cuda_synchronize() { SPARSA_CUDA_CHECK(cudaDeviceSynchronize()); }

void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* ptr = nullptr;
  SPARSA_CUDA_CHECK(cudaMalloc(&ptr, bytes));
  return ptr;
}

void device_free(void* ptr) noexcept {
  if (ptr != nullptr && cudaFree(ptr) != cudaSuccess) cudaGetLastError();
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  SPARSA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  SPARSA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
