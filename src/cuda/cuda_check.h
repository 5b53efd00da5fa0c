// src/cuda/cuda_check.h — checking every CUDA runtime call (private to src/cuda).
//
// SPARSA_CUDA_CHECK(call) evaluates a call returning cudaError_t and, on failure, throws
// sparsa::Error(kRuntime, "CUDA error <name> at <file>:<line>: <message>").
// SPARSA_CUDA_CHECK_LAUNCH() does the same for the kernel launch just issued.
// This header is safe to include from .cu files: it does not pull in fmt (which nvcc rejects).
#pragma once

#include <cuda_runtime.h>

namespace sparsa::cuda {

// Throws the Error described above, after clearing the runtime's (non-sticky) last error.
[[noreturn]] void throw_cuda_error(cudaError_t code, const char* file, int line);

inline void check(cudaError_t code, const char* file, int line) {
  if (code != cudaSuccess) throw_cuda_error(code, file, line);
}

}  // namespace sparsa::cuda

#define SPARSA_CUDA_CHECK(call) ::sparsa::cuda::check((call), __FILE__, __LINE__)
#define SPARSA_CUDA_CHECK_LAUNCH() ::sparsa::cuda::check(cudaGetLastError(), __FILE__, __LINE__)
