// The launch plan of the unstructured-mask sparse GEMV (sparsa/sparse_gemv_masked.h): candidate
// configs, the default, validation, run(). Plain C++ compiled in every build; run() launches the
// kernel (sparse_gemv_masked.cu) in CUDA builds and throws "built without CUDA" otherwise.
#include "cuda/sparse_gemv_masked.cuh"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv_masked.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

namespace sparsa {
namespace {

namespace gemv = cuda::gemv;

constexpr int kTargetBlocks = 264;  // two per multiprocessor of an H200 (132)

bool supported(const GemvShape& s, const GemvConfig& c) {
  return c.vecs == 1 && gemv::masked_chunk_rows(s.in, c.split) <= gemv::kMaskedMaxChunk &&
         gemv::masked_shared_bytes(s.batch, s.in, c.unroll, c.warps, c.split) <= gemv::kMaxSharedBytes &&
         gemv::masked_register_words(s.batch, c.unroll) <= gemv::kMaxRegisterWords;
}

std::string describe(const GemvShape& s) {
  return std::string(dtype_name(s.weight_type)) + " batch " + std::to_string(s.batch) + " in " +
         std::to_string(s.in) + " out " + std::to_string(s.out);
}

void check_shape(const GemvShape& s) {
  if (s.weight_type != DType::F16 && s.weight_type != DType::BF16)
    bad_input("sparse_gemv_masked_cuda: weight type {} is not supported (F16 or BF16)", dtype_name(s.weight_type));
  if (s.batch < 1 || s.batch > kGemvMaxBatch)
    bad_input("sparse_gemv_masked_cuda: batch {} is outside 1..{}", s.batch, kGemvMaxBatch);
  if (s.in < 1 || s.out < 1 || s.out > std::numeric_limits<int32_t>::max())
    bad_input("sparse_gemv_masked_cuda: in {} and out {} must be at least 1", s.in, s.out);
  if (gemv_masked_candidates(s).empty())
    bad_input("sparse_gemv_masked_cuda: {} exceeds what the kernel's shared memory holds", describe(s));
}

}  // namespace

std::vector<GemvConfig> gemv_masked_candidates(const GemvShape& shape) {
  std::vector<GemvConfig> out;
  if (shape.in < 1 || shape.out < 1 || shape.batch < 1) return out;
  for (int unroll : {2, 4})
    for (int warps : {4, 8})
      for (int split = 1; split <= gemv::kMaxSplit; split *= 2)
        if (GemvConfig c{1, unroll, warps, split}; supported(shape, c)) out.push_back(c);
  return out;
}

GemvConfig default_gemv_masked_config(const GemvShape& shape) {
  const auto candidates = gemv_masked_candidates(shape);
  SPARSA_ASSERT(!candidates.empty());
  const int64_t tiles = gemv_mask_tiles(shape.out);
  for (int split = 1; split <= gemv::kMaxSplit; split *= 2) {
    const GemvConfig c{1, 4, 8, split};
    if ((tiles * split >= kTargetBlocks || split == gemv::kMaxSplit) && supported(shape, c)) return c;
  }
  return candidates.back();
}

SparseGemvMaskedCuda::SparseGemvMaskedCuda(const GemvShape& shape, const GemvConfig& config)
    : shape_(shape), config_(config) {
  check_shape(shape);
  const auto candidates = gemv_masked_candidates(shape);
  if (std::find(candidates.begin(), candidates.end(), config) == candidates.end())
    bad_input("sparse_gemv_masked_cuda: config (vecs {}, unroll {}, warps {}, split {}) is not supported for {}",
              config.vecs, config.unroll, config.warps, config.split, describe(shape));
}

SparseGemvMaskedCuda::SparseGemvMaskedCuda(const GemvShape& shape)
    : SparseGemvMaskedCuda(shape, (check_shape(shape), default_gemv_masked_config(shape))) {}

void SparseGemvMaskedCuda::run(const void* values, const uint8_t* masks, const uint32_t* offsets, const float* x,
                               float* y, float threshold, void* stream) const {
#ifdef SPARSA_WITH_CUDA
  if (reinterpret_cast<uintptr_t>(values) % 16 != 0)
    bad_input("sparse_gemv_masked_cuda: the values pointer must be 16-byte aligned");
  gemv::launch_sparse_gemv_masked(shape_.weight_type == DType::BF16, shape_.batch, shape_.in, shape_.out,
                                  config_.unroll, config_.warps, config_.split, values, masks, offsets, x, y,
                                  threshold, stream);
#else
  runtime_failure("sparse_gemv_masked_cuda: sparsa was built without CUDA");
#endif
}

}  // namespace sparsa
