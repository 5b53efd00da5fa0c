// src/gpu/gpu_context.h — the process-wide cuBLAS / cuSOLVER handles and their error checks
// (private to the GPU model code). Host-only: not for .cu files.
#pragma once

#include <cublas_v2.h>
#include <cusolverDn.h>

namespace sparsa::gpu {

// The current device's handles: created on first use on each device (thread-safe), math mode
// pinned to plain fp32 (no TF32), bound to the default stream. Never destroyed (process lifetime).
cublasHandle_t cublas();
cusolverDnHandle_t cusolver();

[[noreturn]] void throw_cublas_error(int status, const char* what, const char* file, int line);
[[noreturn]] void throw_cusolver_error(int status, const char* what, const char* file, int line);

}  // namespace sparsa::gpu

#define SPARSA_CUBLAS_CHECK(call)                                                                      \
  do {                                                                                                 \
    const cublasStatus_t sparsa_status_ = (call);                                                      \
    if (sparsa_status_ != CUBLAS_STATUS_SUCCESS)                                                       \
      ::sparsa::gpu::throw_cublas_error(static_cast<int>(sparsa_status_), #call, __FILE__, __LINE__);  \
  } while (0)
#define SPARSA_CUSOLVER_CHECK(call)                                                                    \
  do {                                                                                                 \
    const cusolverStatus_t sparsa_status_ = (call);                                                    \
    if (sparsa_status_ != CUSOLVER_STATUS_SUCCESS)                                                     \
      ::sparsa::gpu::throw_cusolver_error(static_cast<int>(sparsa_status_), #call, __FILE__, __LINE__); \
  } while (0)
