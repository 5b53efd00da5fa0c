// The host side of the sparse GEMV kernel (sparsa/sparse_gemv.h): plan validation, launch, and
// the tuner that times every candidate config on random device data. Compiled by the C++
// compiler; the kernel itself is in sparse_gemv.cu.
#ifdef SPARSA_WITH_CUDA

#include "cuda/cuda_check.h"
#include "cuda/sparse_gemv_launch.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace sparsa {
namespace {

namespace gemv = cuda::gemv;

std::string config_string(const GemvConfig& c) {
  return "vecs " + std::to_string(c.vecs) + ", unroll " + std::to_string(c.unroll) + ", warps " +
         std::to_string(c.warps) + ", split " + std::to_string(c.split);
}

void check_shape(const GemvShape& s) {
  if (s.weight_type != DType::F32 && s.weight_type != DType::F16 && s.weight_type != DType::BF16)
    bad_input("sparse_gemv_cuda: weight type {} is not supported (F32, F16 or BF16)", dtype_name(s.weight_type));
  if (s.batch < 1 || s.batch > kGemvMaxBatch)
    bad_input("sparse_gemv_cuda: batch {} is outside 1..{}", s.batch, kGemvMaxBatch);
  if (s.in < 1 || s.out < 1 || s.out > std::numeric_limits<int32_t>::max())
    bad_input("sparse_gemv_cuda: in {} and out {} must be at least 1", s.in, s.out);
  if (gemv_candidates(s).empty())
    bad_input("sparse_gemv_cuda: in {} at batch {} exceeds what the kernel's shared memory holds", s.in, s.batch);
}

// Median time in seconds of one launch, over `reps` replays of a graph of `launches` launches
// rotating over the weight copies.
double median_launch_seconds(const SparseGemvCuda& plan, const std::vector<DeviceBuffer<uint8_t>>& weights,
                             const float* x, float* y, float threshold, int reps) {
  constexpr int kLaunches = 16;
  cudaStream_t stream{};
  SPARSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph{};
  cudaGraphExec_t exec{};
  cudaEvent_t start{}, stop{};
  std::vector<float> ms;
  try {
    SPARSA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kLaunches; ++i) plan.run(weights[i % weights.size()].data(), x, y, threshold, stream);
    SPARSA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    SPARSA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    SPARSA_CUDA_CHECK(cudaEventCreate(&start));
    SPARSA_CUDA_CHECK(cudaEventCreate(&stop));
    SPARSA_CUDA_CHECK(cudaGraphLaunch(exec, stream));  // warm-up
    for (int r = 0; r < reps; ++r) {
      SPARSA_CUDA_CHECK(cudaEventRecord(start, stream));
      SPARSA_CUDA_CHECK(cudaGraphLaunch(exec, stream));
      SPARSA_CUDA_CHECK(cudaEventRecord(stop, stream));
      SPARSA_CUDA_CHECK(cudaEventSynchronize(stop));
      float t = 0.0f;
      SPARSA_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
      ms.push_back(t);
    }
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);  // harmless when not capturing
    cudaGetLastError();
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2] / 1e3 / kLaunches;
}

}  // namespace

SparseGemvCuda::SparseGemvCuda(const GemvShape& shape, const GemvConfig& config) : shape_(shape), config_(config) {
  check_shape(shape);
  const auto candidates = gemv_candidates(shape);
  if (std::find(candidates.begin(), candidates.end(), config) == candidates.end())
    bad_input("sparse_gemv_cuda: config ({}) is not supported for {}", config_string(config),
              GemvKey{shape, 0}.str());
}

SparseGemvCuda::SparseGemvCuda(const GemvShape& shape, float expected_sparsity, const GemvTuneTable& table)
    : SparseGemvCuda(shape, table.lookup({shape, gemv_sparsity_bin(expected_sparsity)})) {}

void SparseGemvCuda::run(const void* wt, const float* x, float* y, float threshold, void* stream) const {
  const auto ls = gemv::launch_shape(shape_);
  if (ls.epl > 1 && reinterpret_cast<uintptr_t>(wt) % 16 != 0)
    bad_input("sparse_gemv_cuda: the weight pointer must be 16-byte aligned when out ({}) is a multiple of {}",
              shape_.out, ls.epl);
  gemv::launch_sparse_gemv(ls, config_.vecs, config_.unroll, config_.warps, config_.split, wt, x, y, threshold,
                           stream);
}

GemvConfig tune_sparse_gemv(const GemvShape& shape, float expected_sparsity, GemvTuneTable& table, int reps) {
  check_shape(shape);
  SPARSA_ASSERT(reps >= 1);
  const auto ls = gemv::launch_shape(shape);
  constexpr int64_t kRotateBytes = 256 << 20;  // weights rotated over more than the 50 MB L2, several times
  const int64_t weight_bytes = shape.in * shape.out * ls.element_bytes;
  const int64_t copies = std::clamp<int64_t>((kRotateBytes + weight_bytes - 1) / weight_bytes, 1, 16);
  std::vector<DeviceBuffer<uint8_t>> weights;
  for (int64_t c = 0; c < copies; ++c) {
    weights.emplace_back(static_cast<size_t>(weight_bytes));
    gemv::fill_random(ls.type, weights.back().data(), shape.in * shape.out, static_cast<uint32_t>(c + 1), nullptr);
  }
  DeviceBuffer<float> x(static_cast<size_t>(shape.batch * shape.in)), y(static_cast<size_t>(shape.batch * shape.out));
  gemv::fill_random(gemv::WeightType::F32, x.data(), shape.batch * shape.in, 1234u, nullptr);
  const float threshold = sparsity_threshold(x.download(), expected_sparsity);

  GemvConfig best{};
  double best_seconds = std::numeric_limits<double>::infinity();
  for (const GemvConfig& c : gemv_candidates(shape)) {
    const SparseGemvCuda plan(shape, c);
    try {
      plan.run(weights[0].data(), x.data(), y.data(), threshold);  // a cluster too large to schedule fails here
      cuda_synchronize();
    } catch (const Error&) {
      continue;
    }
    const double s = median_launch_seconds(plan, weights, x.data(), y.data(), threshold, reps);
    if (s < best_seconds) best_seconds = s, best = c;
  }
  if (!std::isfinite(best_seconds)) runtime_failure("tune_sparse_gemv: no config runs for {}", GemvKey{shape, 0}.str());
  table.set({shape, gemv_sparsity_bin(expected_sparsity)}, best);
  return best;
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
