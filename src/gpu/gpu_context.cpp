// cuBLAS / cuSOLVER handles and errors (src/gpu/gpu_context.h).
#ifdef SPARSA_WITH_CUDA

#include "gpu/gpu_context.h"

#include "sparsa/error.h"

namespace sparsa::gpu {

void throw_cublas_error(int status, const char* what, const char* file, int line) {
  runtime_failure("cuBLAS error {} ({}) at {}:{}: {}", status,
                  cublasGetStatusString(static_cast<cublasStatus_t>(status)), file, line, what);
}

void throw_cusolver_error(int status, const char* what, const char* file, int line) {
  runtime_failure("cuSOLVER error {} at {}:{}: {}", status, file, line, what);
}

cublasHandle_t cublas() {
  static const cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    SPARSA_CUBLAS_CHECK(cublasCreate(&h));
    // Default math: fp32 GEMMs stay fp32 (TF32 needs an explicit opt-in); half inputs use tensor cores.
    SPARSA_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    return h;
  }();
  return handle;
}

cusolverDnHandle_t cusolver() {
  static const cusolverDnHandle_t handle = [] {
    cusolverDnHandle_t h = nullptr;
    SPARSA_CUSOLVER_CHECK(cusolverDnCreate(&h));
    return h;
  }();
  return handle;
}

}  // namespace sparsa::gpu

#endif  // SPARSA_WITH_CUDA
