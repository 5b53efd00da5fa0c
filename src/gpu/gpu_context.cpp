// cuBLAS / cuSOLVER handles and errors (src/gpu/gpu_context.h).
#ifdef SPARSA_WITH_CUDA

#include "gpu/gpu_context.h"

#include <array>
#include <mutex>

#include "cuda/cuda_check.h"
#include "sparsa/error.h"

namespace sparsa::gpu {

void throw_cublas_error(int status, const char* what, const char* file, int line) {
  runtime_failure("cuBLAS error {} ({}) at {}:{}: {}", status,
                  cublasGetStatusString(static_cast<cublasStatus_t>(status)), file, line, what);
}

void throw_cusolver_error(int status, const char* what, const char* file, int line) {
  runtime_failure("cuSOLVER error {} at {}:{}: {}", status, file, line, what);
}

namespace {

// One handle per device, created on first use on that device.
constexpr int kMaxDevices = 64;
std::mutex handles_mutex;

int current_device() {
  int d = 0;
  SPARSA_CUDA_CHECK(cudaGetDevice(&d));
  if (d >= kMaxDevices) runtime_failure("device {} is beyond the {} sparsa supports", d, kMaxDevices);
  return d;
}

}  // namespace

cublasHandle_t cublas() {
  static std::array<cublasHandle_t, kMaxDevices> handles{};
  const int d = current_device();
  std::lock_guard<std::mutex> lock(handles_mutex);
  if (handles[static_cast<size_t>(d)] == nullptr) {
    cublasHandle_t h = nullptr;
    SPARSA_CUBLAS_CHECK(cublasCreate(&h));
    // Default math: fp32 GEMMs stay fp32 (TF32 needs an explicit opt-in); half inputs use tensor cores.
    SPARSA_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    handles[static_cast<size_t>(d)] = h;
  }
  return handles[static_cast<size_t>(d)];
}

cusolverDnHandle_t cusolver() {
  static std::array<cusolverDnHandle_t, kMaxDevices> handles{};
  const int d = current_device();
  std::lock_guard<std::mutex> lock(handles_mutex);
  if (handles[static_cast<size_t>(d)] == nullptr) {
    cusolverDnHandle_t h = nullptr;
    SPARSA_CUSOLVER_CHECK(cusolverDnCreate(&h));
    handles[static_cast<size_t>(d)] = h;
  }
  return handles[static_cast<size_t>(d)];
}

}  // namespace sparsa::gpu

#endif  // SPARSA_WITH_CUDA
