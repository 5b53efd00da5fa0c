// The launch plan of the 2:4 sparse GEMV (sparsa/sparse_gemv_2to4.h): candidate configs, the
// default, shape validation, and run(). Plain C++ compiled in every build; run() launches the
// kernel (sparse_gemv_2to4.cu) in CUDA builds and throws "built without CUDA" otherwise.
#include "cuda/sparse_gemv_2to4.cuh"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv_2to4.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

namespace sparsa {
namespace {

namespace g24 = cuda::gemv24;

constexpr int kTargetBlocks = 264;  // two per multiprocessor of an H200 (132)

bool supported(const GemvShape& s, const GemvConfig& c) {
  const auto ls = g24::launch_shape(s);
  if (ls.epl == 1 && c.vecs != 1) return false;  // the scalar kernel has one vec
  return g24::chunk_groups(ls, c.split) <= g24::kMaxChunkGroups &&
         g24::shared_bytes(ls, c.vecs, c.warps, c.split) <= g24::kMaxSharedBytes &&
         g24::register_words(ls, c.vecs, c.unroll) <= g24::kMaxRegisterWords;
}

std::string describe(const GemvShape& s) {
  return std::string(dtype_name(s.weight_type)) + " batch " + std::to_string(s.batch) + " in " +
         std::to_string(s.in) + " out " + std::to_string(s.out);
}

void check_shape(const GemvShape& s) {
  if (s.weight_type != DType::F16 && s.weight_type != DType::BF16)
    bad_input("sparse_gemv_2to4_cuda: weight type {} is not supported (F16 or BF16)", dtype_name(s.weight_type));
  if (s.batch < 1 || s.batch > kGemvMaxBatch)
    bad_input("sparse_gemv_2to4_cuda: batch {} is outside 1..{}", s.batch, kGemvMaxBatch);
  if (s.in < kGemv2to4Group || s.in % kGemv2to4Group != 0)
    bad_input("sparse_gemv_2to4_cuda: in {} is not a positive multiple of {}", s.in, kGemv2to4Group);
  if (s.out < 1 || s.out > std::numeric_limits<int32_t>::max())
    bad_input("sparse_gemv_2to4_cuda: out {} is outside 1..2^31-1", s.out);
  if (gemv_2to4_candidates(s).empty())
    bad_input("sparse_gemv_2to4_cuda: {} exceeds what the kernel's shared memory holds", describe(s));
}

}  // namespace

std::vector<GemvConfig> gemv_2to4_candidates(const GemvShape& shape) {
  std::vector<GemvConfig> out;
  if (shape.in < kGemv2to4Group || shape.batch < 1 || shape.out < 1) return out;
  for (int vecs : {1, 2})
    for (int unroll : {2, 4})
      for (int warps : {4, 8})
        for (int split = 1; split <= g24::kMaxSplit; split *= 2)
          if (GemvConfig c{vecs, unroll, warps, split}; supported(shape, c)) out.push_back(c);
  return out;
}

GemvConfig default_gemv_2to4_config(const GemvShape& shape) {
  const auto candidates = gemv_2to4_candidates(shape);
  SPARSA_ASSERT(!candidates.empty());
  const auto ls = g24::launch_shape(shape);
  const int vecs = ls.epl > 1 && g24::batch_tile(shape.batch) <= 2 ? 2 : 1;
  const int64_t tiles = (shape.out + g24::tile_columns(ls, vecs) - 1) / g24::tile_columns(ls, vecs);
  for (int split = 1; split <= g24::kMaxSplit; split *= 2) {
    const GemvConfig c{vecs, 2, 8, split};
    if ((tiles * split >= kTargetBlocks || split == g24::kMaxSplit) && supported(shape, c)) return c;
  }
  return candidates.back();
}

SparseGemv2to4Cuda::SparseGemv2to4Cuda(const GemvShape& shape, const GemvConfig& config)
    : shape_(shape), config_(config) {
  check_shape(shape);
  const auto candidates = gemv_2to4_candidates(shape);
  if (std::find(candidates.begin(), candidates.end(), config) == candidates.end())
    bad_input("sparse_gemv_2to4_cuda: config (vecs {}, unroll {}, warps {}, split {}) is not supported for {}",
              config.vecs, config.unroll, config.warps, config.split, describe(shape));
}

SparseGemv2to4Cuda::SparseGemv2to4Cuda(const GemvShape& shape)
    : SparseGemv2to4Cuda(shape, (check_shape(shape), default_gemv_2to4_config(shape))) {}

void SparseGemv2to4Cuda::run(const void* values, const uint32_t* indices, const float* x, float* y, float threshold,
                             void* stream) const {
#ifdef SPARSA_WITH_CUDA
  const auto ls = g24::launch_shape(shape_);
  if (ls.epl > 1 && reinterpret_cast<uintptr_t>(values) % 16 != 0)
    bad_input("sparse_gemv_2to4_cuda: the values pointer must be 16-byte aligned when out ({}) is a multiple of 8",
              shape_.out);
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0) bad_input("sparse_gemv_2to4_cuda: the x pointer must be 16-byte aligned");
  g24::launch_sparse_gemv_2to4(ls, config_.vecs, config_.unroll, config_.warps, config_.split, values, indices, x, y,
                               threshold, stream);
#else
  runtime_failure("sparse_gemv_2to4_cuda: sparsa was built without CUDA");
#endif
}

}  // namespace sparsa
