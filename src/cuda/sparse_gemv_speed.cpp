// The measured speed-up of the activation-sparse GEMV against cuBLAS's dense GEMV on real inputs
// (sparsa/sparse_gemv.h time_sparse_vs_dense_gemv), both timed as the tuner times
// (cuda/launch_timer.h). Compiled by the C++ compiler, in CUDA builds only.
#ifdef SPARSA_WITH_CUDA

#include <cublas_v2.h>

#include <algorithm>
#include <vector>

#include "cuda/launch_timer.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/tensor.h"

namespace sparsa {
namespace gemv_speed_impl {

constexpr int64_t kRotateBytes = 256 << 20;      // weight copies span more than the L2, several times
constexpr size_t kCublasWorkspace = 32 << 20;    // cuBLAS in a captured graph needs its own workspace

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) runtime_failure("time_sparse_vs_dense_gemv: {}: {}", what, cublasGetStatusString(s));
}

// A cuBLAS handle with a workspace of its own, released on every path.
class Cublas {
 public:
  Cublas() : workspace_(kCublasWorkspace) {
    check_cublas(cublasCreate(&handle_), "cublasCreate");
    check_cublas(cublasSetWorkspace(handle_, workspace_.data(), kCublasWorkspace), "cublasSetWorkspace");
  }
  ~Cublas() { cublasDestroy(handle_); }
  Cublas(const Cublas&) = delete;
  Cublas& operator=(const Cublas&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  DeviceBuffer<uint8_t> workspace_;
  cublasHandle_t handle_{};
};

void check_arguments(const GemvShape& shape, std::span<const float> x, int reps) {
  if (shape.batch != 1) bad_input("time_sparse_vs_dense_gemv: batch {} (only 1 is timed)", shape.batch);
  if (shape.weight_type != DType::BF16 && shape.weight_type != DType::F16)
    bad_input("time_sparse_vs_dense_gemv: weights of type {} (F16 or BF16)", dtype_name(shape.weight_type));
  if (shape.in < 1 || shape.out < 1) bad_input("time_sparse_vs_dense_gemv: shape in {} out {}", shape.in, shape.out);
  if (x.empty() || x.size() % static_cast<size_t>(shape.in) != 0)
    bad_input("time_sparse_vs_dense_gemv: {} input values are not whole rows of {}", x.size(), shape.in);
  if (reps < 1) bad_input("time_sparse_vs_dense_gemv: {} replays (at least 1)", reps);
}

}  // namespace gemv_speed_impl

GemvSpeed time_sparse_vs_dense_gemv(const GemvShape& shape, std::span<const float> x, float threshold,
                                    float expected_sparsity, int reps) {
  using namespace gemv_speed_impl;
  check_arguments(shape, x, reps);
  const int64_t in = shape.in, out = shape.out;
  const int64_t rows = std::min<int64_t>(static_cast<int64_t>(x.size()) / in, cuda::kTimedLaunches);
  const int64_t weight_bytes = in * out * 2;
  const int64_t copies = std::clamp<int64_t>((kRotateBytes + weight_bytes - 1) / weight_bytes, 1, cuda::kTimedLaunches);
  std::vector<DeviceBuffer<uint16_t>> weights;
  for (int64_t c = 0; c < copies; ++c) {
    weights.emplace_back(static_cast<size_t>(in * out));
    fill_uniform_cuda(weights.back().data(), shape.weight_type, in * out, static_cast<uint32_t>(c + 1));
  }
  const std::vector<float> xf_host(x.begin(), x.begin() + rows * in);
  std::vector<uint16_t> xh_host(xf_host.size());
  const bool bf16 = shape.weight_type == DType::BF16;
  std::transform(xf_host.begin(), xf_host.end(), xh_host.begin(), [&](float v) { return bf16 ? f32_to_bf16(v) : f32_to_f16(v); });
  const DeviceBuffer<float> xf(xf_host);
  const DeviceBuffer<uint16_t> xh(xh_host);
  DeviceBuffer<float> y(static_cast<size_t>(out));
  DeviceBuffer<uint16_t> yh(static_cast<size_t>(out));

  GemvSpeed r;
  GemvTuneTable scratch;
  r.config = tune_sparse_gemv(shape, expected_sparsity, scratch);
  const SparseGemvCuda plan(shape, r.config);
  r.sparse_us = 1e6 * cuda::median_launch_seconds(reps, [&](int i, cudaStream_t stream) {
    plan.run(weights[i % copies].data(), xf.data() + (i % rows) * in, y.data(), threshold, stream);
  });

  // W [out, in] row-major is column-major [in, out]: y = Wᵀᵀ x with op T, as bench-sparse-gemv.
  const Cublas blas;
  const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  const float one = 1.0f, zero = 0.0f;
  r.dense_us = 1e6 * cuda::median_launch_seconds(reps, [&](int i, cudaStream_t stream) {
    check_cublas(cublasSetStream(blas.get(), stream), "cublasSetStream");
    check_cublas(cublasGemmEx(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), 1, static_cast<int>(in), &one,
                              weights[i % copies].data(), type, static_cast<int>(in), xh.data() + (i % rows) * in, type,
                              static_cast<int>(in), &zero, yh.data(), type, static_cast<int>(out), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  });
  return r;
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
