// Device queries, device memory and the CUDA error type (sparsa/cuda.h, cuda/cuda_check.h).
// Host-only runtime calls, so this is compiled by the C++ compiler, not nvcc.
#ifdef SPARSA_WITH_CUDA

#include "cuda/cuda_check.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

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

namespace {

// What sparsa's own allocations hold now and held at most (gpu_peak_allocated).
struct AllocationLedger {
  std::mutex mutex;
  std::unordered_map<void*, size_t> sizes;
  int64_t current = 0, peak = 0;
};
AllocationLedger& ledger() {
  static AllocationLedger l;
  return l;
}

double mib(size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    runtime_failure("GPU out of memory: asked for {:.1f} MiB with {:.1f} MiB free of {:.1f} MiB (sparsa holds {:.1f} MiB); "
                    "lower --nsamples or --chunk-tokens, or use a smaller --seqlen",
                    mib(bytes), mib(free), mib(total), mib(static_cast<size_t>(ledger().current)));
  }
  SPARSA_CUDA_CHECK(status);
  AllocationLedger& l = ledger();
  std::lock_guard<std::mutex> lock(l.mutex);
  l.sizes[ptr] = bytes;
  l.current += static_cast<int64_t>(bytes);
  l.peak = std::max(l.peak, l.current);
  return ptr;
}

void device_free(void* ptr) noexcept {
  if (ptr == nullptr) return;
  {
    AllocationLedger& l = ledger();
    std::lock_guard<std::mutex> lock(l.mutex);
    if (auto it = l.sizes.find(ptr); it != l.sizes.end()) {
      l.current -= static_cast<int64_t>(it->second);
      l.sizes.erase(it);
    }
  }
  if (cudaFree(ptr) != cudaSuccess) cudaGetLastError();
}

int64_t gpu_peak_allocated() {
  std::lock_guard<std::mutex> lock(ledger().mutex);
  return ledger().peak;
}

void gpu_reset_peak_allocated() {
  std::lock_guard<std::mutex> lock(ledger().mutex);
  ledger().peak = ledger().current;
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
