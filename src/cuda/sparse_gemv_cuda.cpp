// The host side of the sparse GEMV kernel (sparsa/sparse_gemv.h): plan validation, launch, and
// the tuner that times every candidate config on random device data. Compiled by the C++
// compiler; the kernel itself is in sparse_gemv.cu.
#ifdef SPARSA_WITH_CUDA

#include "cuda/cuda_check.h"
#include "cuda/launch_timer.h"
#include "cuda/sparse_gemv.cuh"
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

namespace sparsa {
namespace {

namespace gemv = cuda::gemv;

std::string config_string(const GemvConfig& c) {
  return "vecs " + std::to_string(c.vecs) + ", unroll " + std::to_string(c.unroll) + ", warps " +
         std::to_string(c.warps) + ", split " + std::to_string(c.split) + (c.pdl ? ", pdl" : "");
}

void check_shape(const GemvFusedShape& s) {
  if (s.weight_type != DType::F32 && s.weight_type != DType::F16 && s.weight_type != DType::BF16)
    bad_input("sparse_gemv_cuda: weight type {} is not supported (F32, F16 or BF16)", dtype_name(s.weight_type));
  if (s.batch < 1 || s.batch > kGemvMaxBatch)
    bad_input("sparse_gemv_cuda: batch {} is outside 1..{}", s.batch, kGemvMaxBatch);
  if (s.outs.empty() || s.outs.size() > kGemvMaxParts)
    bad_input("sparse_gemv_cuda: {} parts; a launch takes 1..{}", s.outs.size(), kGemvMaxParts);
  for (int64_t out : s.outs)
    if (s.in < 1 || out < 1 || out > std::numeric_limits<int32_t>::max())
      bad_input("sparse_gemv_cuda: in {} and out {} must be at least 1", s.in, out);
  if (gemv_candidates(s).empty())
    bad_input("sparse_gemv_cuda: in {} at batch {} exceeds what the kernel's shared memory holds", s.in, s.batch);
}

void check_config(const GemvFusedShape& shape, const GemvConfig& config) {
  check_shape(shape);
  const auto candidates = gemv_candidates(shape);
  if (std::find(candidates.begin(), candidates.end(), config) == candidates.end())
    bad_input("sparse_gemv_cuda: config ({}) is not supported for {}", config_string(config),
              GemvFusedKey{shape, 0}.str());
}

// The launch of a checked plan; parts[m].wt must be 16-byte aligned when the launch uses vectors.
void launch(const gemv::LaunchShape& ls, const GemvConfig& c, std::span<const GemvPart> parts, const float* x,
            void* stream) {
  if (parts.size() != static_cast<size_t>(ls.parts))
    bad_input("sparse_gemv_cuda: {} parts given to a plan of {}", parts.size(), ls.parts);
  for (int m = 0; m < ls.parts; ++m)
    if (ls.epl > 1 && reinterpret_cast<uintptr_t>(parts[m].wt) % 16 != 0)
      bad_input("sparse_gemv_cuda: the weight pointer must be 16-byte aligned when out ({}) is a multiple of {}",
                ls.out[m], ls.epl);
  gemv::launch_sparse_gemv(ls, c, parts.data(), x, stream);
}

}  // namespace

SparseGemvCuda::SparseGemvCuda(const GemvShape& shape, const GemvConfig& config) : shape_(shape), config_(config) {
  check_config(GemvFusedShape::single(shape), config);
}

SparseGemvCuda::SparseGemvCuda(const GemvShape& shape, float expected_sparsity, const GemvTuneTable& table)
    : SparseGemvCuda(shape, table.lookup({shape, gemv_sparsity_bin(expected_sparsity)})) {}

void SparseGemvCuda::run(const void* wt, const float* x, float* y, float threshold, void* stream) const {
  const GemvPart part{wt, y, threshold};
  launch(gemv::launch_shape(shape_), config_, {&part, 1}, x, stream);
}

SparseGemvFusedCuda::SparseGemvFusedCuda(GemvFusedShape shape, const GemvConfig& config)
    : shape_(std::move(shape)), config_(config) {
  check_config(shape_, config);
}

SparseGemvFusedCuda::SparseGemvFusedCuda(GemvFusedShape shape, float expected_sparsity, const GemvTuneTable& table)
    : SparseGemvFusedCuda(shape, table.lookup(GemvFusedKey{shape, gemv_sparsity_bin(expected_sparsity)})) {}

void SparseGemvFusedCuda::run(std::span<const GemvPart> parts, const float* x, void* stream) const {
  launch(gemv::launch_shape(shape_), config_, parts, x, stream);
}

GemvConfig tune_sparse_gemv(const GemvShape& shape, float expected_sparsity, GemvTuneTable& table, int reps) {
  return tune_sparse_gemv_fused(GemvFusedShape::single(shape), expected_sparsity, table, reps);
}

GemvConfig tune_sparse_gemv_fused(const GemvFusedShape& shape, float expected_sparsity, GemvTuneTable& table,
                                  int reps) {
  check_shape(shape);
  SPARSA_ASSERT(reps >= 1);
  const auto ls = gemv::launch_shape(shape);
  const size_t parts = shape.outs.size();
  // Every part's weight in one buffer per copy: [in, outs[0]], then [in, outs[1]], ...; each part
  // starts 16-byte aligned.
  std::vector<int64_t> offset(parts + 1, 0);  // bytes
  for (size_t m = 0; m < parts; ++m)
    offset[m + 1] = offset[m] + (shape.in * shape.outs[m] * ls.element_bytes + 15) / 16 * 16;
  constexpr int64_t kRotateBytes = 256 << 20;  // weights rotated over more than the 50 MB L2, several times
  const int64_t copies = std::clamp<int64_t>((kRotateBytes + offset[parts] - 1) / offset[parts], 1, 16);
  std::vector<DeviceBuffer<uint8_t>> weights;
  for (int64_t c = 0; c < copies; ++c) {
    weights.emplace_back(static_cast<size_t>(offset[parts]));
    fill_uniform_cuda(weights.back().data(), shape.weight_type, offset[parts] / ls.element_bytes,
                      static_cast<uint32_t>(c + 1));
  }
  int64_t y_size = 0;
  for (int64_t out : shape.outs) y_size += shape.batch * out;
  DeviceBuffer<float> x(static_cast<size_t>(shape.batch * shape.in)), y(static_cast<size_t>(y_size));
  fill_uniform_cuda(x.data(), DType::F32, shape.batch * shape.in, 1234u);
  const float threshold = sparsity_threshold(x.download(), expected_sparsity);
  // The parts of weight copy i.
  auto parts_of = [&](int64_t i) {
    std::vector<GemvPart> p(parts);
    float* ym = y.data();
    for (size_t m = 0; m < parts; ++m) {
      p[m] = {weights[i % copies].data() + offset[m], ym, threshold};
      ym += shape.batch * shape.outs[m];
    }
    return p;
  };

  GemvConfig best{};
  double best_seconds = std::numeric_limits<double>::infinity();
  for (const GemvConfig& c : gemv_candidates(shape)) {
    const SparseGemvFusedCuda plan(shape, c);
    try {
      plan.run(parts_of(0), x.data());  // a cluster too large to schedule fails here
      cuda_synchronize();
    } catch (const Error&) {
      continue;
    }
    const double s = cuda::median_launch_seconds(reps, [&](int i, cudaStream_t stream) { plan.run(parts_of(i), x.data(), stream); });
    if (s < best_seconds) best_seconds = s, best = c;
  }
  if (!std::isfinite(best_seconds)) runtime_failure("tune_sparse_gemv: no config runs for {}", GemvFusedKey{shape, 0}.str());
  table.set(GemvFusedKey{shape, gemv_sparsity_bin(expected_sparsity)}, best);
  return best;
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
