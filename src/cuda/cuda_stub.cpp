// The CPU-only build's stand-ins for the CUDA backend (sparsa/cuda.h): no devices, and every
// GPU entry point throws, so code that checks cuda_device_count() first links and runs anywhere.
#ifndef SPARSA_WITH_CUDA

#include "sparsa/cuda.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

[[noreturn]] void no_cuda(const char* what) { runtime_failure("{}: sparsa was built without CUDA", what); }

}  // namespace

int cuda_device_count() { return 0; }
std::string cuda_device_name(int) { no_cuda("cuda_device_name"); }
void cuda_synchronize() { no_cuda("cuda_synchronize"); }

void* device_alloc(size_t) { no_cuda("device_alloc"); }
void device_free(void*) noexcept {}
void copy_to_device(void*, const void*, size_t) { no_cuda("copy_to_device"); }
void copy_to_host(void*, const void*, size_t) { no_cuda("copy_to_host"); }

void rmsnorm_cuda(const float*, const float*, float*, int64_t, int64_t, float) { no_cuda("rmsnorm_cuda"); }
void silu_mul_cuda(const float*, const float*, float*, int64_t, int64_t) { no_cuda("silu_mul_cuda"); }
void rope_cuda(float*, const int32_t*, int64_t, int64_t, int64_t, float) { no_cuda("rope_cuda"); }

int64_t gpu_peak_allocated() { return 0; }
void gpu_reset_peak_allocated() {}

void to_half_cuda(const float*, void*, int64_t, DType, void*) { no_cuda("to_half_cuda"); }
void scale_cuda(float*, const float*, float, int64_t) { no_cuda("scale_cuda"); }
void column_sqsum_cuda(const void*, DType, double*, float*, int64_t, int64_t) { no_cuda("column_sqsum_cuda"); }
void column_norm_cuda(const double*, float*, int64_t, int64_t) { no_cuda("column_norm_cuda"); }
void fill_uniform_cuda(void*, DType, int64_t, uint32_t, void*) { no_cuda("fill_uniform_cuda"); }
double read_bandwidth_cuda(int64_t, int) { no_cuda("read_bandwidth_cuda"); }

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
