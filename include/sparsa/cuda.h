// sparsa/cuda.h — the CUDA backend: device queries, device memory, and the GPU twins of the CPU
// reference ops in sparsa/ops.h, plus the few device ops the benchmarks drive directly.
//
// Naming (one convention for GPU things): the backend is "cuda" — src/cuda, namespace
// sparsa::cuda, kernel launchers cuda::launch_<op> declared in src/cuda/<op>.cuh beside
// <op>.cu, and public ops named after their CPU reference with the suffix _cuda (rmsnorm_cuda,
// perplexity_cuda) or, for types, Cuda (SparseGemvCuda). Model-level drivers built on it live in
// src/gpu (namespace sparsa::gpu) and keep the Gpu prefix of their options and types
// (GpuPrecision, GpuDecoder); gpu_peak_allocated keeps its older name for its callers.
//
// Contract, for every function here:
// - Pointers passed to the *_cuda ops are device pointers (cudaMalloc'd, e.g. DeviceBuffer::data()),
//   fp32 row-major with the shapes and aliasing rules of the CPU op of the same name.
// - Work runs on the calling thread's current device, on the legacy default stream (stream 0)
//   unless a `stream` argument (a cudaStream_t as void*) names another.
// - The ops are asynchronous: they enqueue a kernel and return. Launch errors (bad configuration,
//   no device) throw at once; errors while the kernel runs surface at the next synchronising call
//   (copy_to_host, DeviceBuffer::download, cuda_synchronize). Results are visible to later work on
//   the default stream and to the host after such a call.
// - Every CUDA failure throws sparsa::Error(kRuntime, "CUDA error <name> at <file>:<line>: <msg>").
// - Without CUDA (SPARSA_WITH_CUDA undefined) the library still links: cuda_device_count()
//   and gpu_peak_allocated() return 0, device_free() and gpu_reset_peak_allocated() do nothing,
//   and every other function throws sparsa::Error(kRuntime, "<function>: sparsa was built
//   without CUDA").
//   Callers choose the GPU path only when cuda_device_count() > 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sparsa/tensor.h"

namespace sparsa {

// ---- devices ----

// Number of usable CUDA devices. 0 when built without CUDA or when no driver / device is present;
// never throws and never prints. Queried once per process.
int cuda_device_count();

// Marketing name of device `device` (e.g. "NVIDIA H200"). Throws on an invalid index.
std::string cuda_device_name(int device);

// Blocks until all work enqueued on the current device has finished; throws the first error
// any of it raised.
void cuda_synchronize();

// ---- device memory (bytes; synchronous with respect to the host) ----

void* device_alloc(size_t bytes);            // cudaMalloc; nullptr for 0 bytes
void device_free(void* ptr) noexcept;        // cudaFree; ignores nullptr and errors (for destructors)
void copy_to_device(void* dst, const void* src, size_t bytes);  // host -> device
void copy_to_host(void* dst, const void* src, size_t bytes);    // device -> host; waits for the
                                                                // default stream's earlier work

// Peak device memory allocated through device_alloc since the last reset, in bytes (what
// sparsa's own allocations held at most; cuBLAS/cuSOLVER workspaces are included when they come
// from it). Thread-safe.
int64_t gpu_peak_allocated();
// Starts a new peak at what is allocated now. Thread-safe.
void gpu_reset_peak_allocated();

namespace detail {
// Throws Error(kRuntime) saying an upload of `given` elements does not fit in `capacity`.
[[noreturn]] void throw_device_buffer_overflow(size_t given, size_t capacity);
}  // namespace detail

// Owns `size()` elements of T in device memory. Move-only; frees on destruction.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : data_(static_cast<T*>(device_alloc(n * sizeof(T)))), size_(n) {}
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { device_free(data_); }

  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      device_free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

  // Copies host.size() elements into the front of the buffer; host.size() must be <= size().
  void upload(const std::vector<T>& host) {
    if (host.size() > size_) detail::throw_device_buffer_overflow(host.size(), size_);
    copy_to_device(data_, host.data(), host.size() * sizeof(T));
  }
  // Copies the whole buffer back to the host (waits for earlier work on the default stream).
  std::vector<T> download() const {
    std::vector<T> host(size_);
    copy_to_host(host.data(), data_, size_ * sizeof(T));
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

// ---- GPU twins of sparsa/ops.h (device pointers; see the CPU op for semantics) ----

// x, y: [n_tokens, dim]; weight: [dim]. y may alias x. Sum of squares in fp32.
void rmsnorm_cuda(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim,
                  float eps);

// gate, up, out: [n_tokens, dim]. out may alias gate. Vectorised when all three are 16-byte aligned.
void silu_mul_cuda(const float* gate, const float* up, float* out, int64_t n_tokens, int64_t dim);

// x: [n_tokens, n_heads, head_dim], positions: [n_tokens] (device int32). In place.
// The rotation angles are pos * inv_freq[i] in fp32 with inv_freq computed on the host exactly as
// the CPU op does, so large positions agree. head_dim > kRopeMaxHeadDim throws Error(kRuntime).
inline constexpr int64_t kRopeMaxHeadDim = 512;
void rope_cuda(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
               float theta);

// ---- device ops for benchmarks and tools (device pointers; same contract as above) ----

// y[i] = x[i] rounded to half_type (DType::BF16 or F16; round to nearest even, as the host's
// float_to_bf16 / float_to_f16). x: [n] fp32, y: [n] of half_type. Enqueues on `stream` (a
// cudaStream_t; nullptr: the legacy default stream). Error(kBadInput) for another type.
void to_half_cuda(const float* x, void* y, int64_t n, DType half_type, void* stream = nullptr);

// y[i] = x[i] * s; y may alias x. x, y: [n].
void scale_cuda(float* y, const float* x, float s, int64_t n);

// Wanda's input statistics in two steps: column_sqsum_cuda adds Σ_t x[t, c]² to acc [cols]
// (fp32 per slice of 256 tokens, fp64 over slices, in a fixed order, so the result does not depend
// on the launch) for x [n_tokens, cols] of `type` (F32, BF16 or F16); `scratch` holds
// column_sqsum_scratch_floats(n_tokens, cols) floats. column_norm_cuda then writes
// norm[c] = sqrt(acc[c] / samples), the norm Wanda scales |w| with. Error(kBadInput) for another type.
inline constexpr int64_t kColumnSqsumSlice = 256;  // tokens summed in fp32 before the fp64 merge
inline int64_t column_sqsum_scratch_floats(int64_t n_tokens, int64_t cols) {
  return (n_tokens + kColumnSqsumSlice - 1) / kColumnSqsumSlice * cols;
}
void column_sqsum_cuda(const void* x, DType type, double* acc, float* scratch, int64_t n_tokens, int64_t cols);
void column_norm_cuda(const double* acc, float* norm, int64_t cols, int64_t samples);

// data [n] of `type` (F32, BF16 or F16) = uniform in [-1, 1), never exactly 0, from a
// counter-based hash of (seed, index): the same values for any launch shape. Enqueues on `stream`.
// Error(kBadInput) for another type.
void fill_uniform_cuda(void* data, DType type, int64_t n, uint32_t seed, void* stream = nullptr);

// The read bandwidth of the current device in bytes/s: a kernel that only reads (16-byte
// cache-streaming loads, the grid filling every SM) over a fresh buffer of `bytes` random values
// (at least 64 MiB, so it streams from DRAM rather than the L2), timed as the GEMV tuner times
// (a CUDA graph of 16 launches, the median of `runs` replays after a warm-up one). Allocates and
// frees the buffer; synchronises the device. The
// bytes bound of the benchmarks' decode rows (bench-decode) divides by it.
double read_bandwidth_cuda(int64_t bytes = int64_t{1} << 30, int runs = 5);

}  // namespace sparsa
