// The launch plan of the block-skipping GEMV (sparsa/sparse_gemv_blocks.h): candidate configs,
// the default, validation, run(), and the host count of blocks read. Plain C++ compiled in every
// build; run() launches the kernel (sparse_gemv_blocks.cu) in CUDA builds and throws "built
// without CUDA" otherwise.
#include "cuda/sparse_gemv_blocks.cuh"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace sparsa {
namespace {

namespace gemv = cuda::gemv;

constexpr int kTargetBlocks = 264;                 // two per multiprocessor of an H200 (132)
constexpr int64_t kMaxListedBlocks = 65536;        // uint16 block offsets per cluster block

bool supported(const GemvShape& s, int block_rows, const GemvConfig& c) {
  const auto ls = gemv::launch_shape(s);
  if (ls.epl == 1 && (c.vecs != 1 || c.unroll != 4)) return false;  // the scalar kernel's one tile
  return gemv::block_chunk_rows(ls, c.split) / block_rows <= kMaxListedBlocks &&
         gemv::block_shared_bytes(ls, c.vecs, c.warps, c.split) <= gemv::kMaxSharedBytes &&
         gemv::register_words(ls, c.vecs, c.unroll) <= gemv::kMaxRegisterWords;
}

std::string describe(const GemvShape& s, int block_rows) {
  return std::string(dtype_name(s.weight_type)) + " batch " + std::to_string(s.batch) + " in " +
         std::to_string(s.in) + " out " + std::to_string(s.out) + " blocks of " + std::to_string(block_rows);
}

void check_shape(const GemvShape& s, int block_rows) {
  if (s.weight_type != DType::F32 && s.weight_type != DType::F16 && s.weight_type != DType::BF16)
    bad_input("sparse_gemv_blocks_cuda: weight type {} is not supported (F32, F16 or BF16)", dtype_name(s.weight_type));
  if (s.batch < 1 || s.batch > kGemvMaxBatch)
    bad_input("sparse_gemv_blocks_cuda: batch {} is outside 1..{}", s.batch, kGemvMaxBatch);
  if (s.in < 1 || s.out < 1 || s.out > std::numeric_limits<int32_t>::max())
    bad_input("sparse_gemv_blocks_cuda: in {} and out {} must be at least 1", s.in, s.out);
  if (!gemv_block_rows_supported(block_rows))
    bad_input("sparse_gemv_blocks_cuda: block size {} is not 2, 4, 8, 16 or 32 rows", block_rows);
  if (gemv_block_candidates(s, block_rows).empty())
    bad_input("sparse_gemv_blocks_cuda: {} exceeds what the kernel's shared memory holds", describe(s, block_rows));
}

}  // namespace

bool gemv_block_rows_supported(int block_rows) {
  return block_rows >= 2 && block_rows <= gemv::kMaxBlockRows && (block_rows & (block_rows - 1)) == 0;
}

double gemv_blocks_read(const float* x, int64_t batch, int64_t in, float threshold, int block_rows) {
  if (block_rows < 1) bad_input("gemv_blocks_read: block size {} must be at least 1", block_rows);
  if (in <= 0) return 0.0;
  const int64_t blocks = (in + block_rows - 1) / block_rows;
  int64_t read = 0;
  for (int64_t k = 0; k < blocks; ++k) {
    bool any = false;
    for (int64_t j = k * block_rows; j < std::min(in, (k + 1) * block_rows) && !any; ++j)
      for (int64_t b = 0; b < batch && !any; ++b) any = std::abs(x[b * in + j]) > threshold;
    read += any;
  }
  return static_cast<double>(read) / static_cast<double>(blocks);
}

std::vector<GemvConfig> gemv_block_candidates(const GemvShape& shape, int block_rows) {
  std::vector<GemvConfig> out;
  if (!gemv_block_rows_supported(block_rows) || shape.in < 1 || shape.out < 1 || shape.batch < 1) return out;
  for (int vecs : {1, 2})
    for (int unroll : {4, 8})
      for (int warps : {4, 8})
        for (int split = 1; split <= gemv::kMaxSplit; split *= 2)
          if (GemvConfig c{vecs, unroll, warps, split}; supported(shape, block_rows, c)) out.push_back(c);
  return out;
}

GemvConfig default_gemv_block_config(const GemvShape& shape, int block_rows) {
  const auto candidates = gemv_block_candidates(shape, block_rows);
  SPARSA_ASSERT(!candidates.empty());
  const auto ls = gemv::launch_shape(shape);
  const int vecs = ls.epl > 1 && gemv::batch_tile(shape.batch) <= 2 ? 2 : 1;
  const int64_t tiles = (shape.out + gemv::tile_columns(ls, vecs) - 1) / gemv::tile_columns(ls, vecs);
  for (int split = 1; split <= gemv::kMaxSplit; split *= 2) {
    const GemvConfig c{vecs, 4, 8, split};
    if ((tiles * split >= kTargetBlocks || split == gemv::kMaxSplit) && supported(shape, block_rows, c)) return c;
  }
  return candidates.back();
}

SparseGemvBlockCuda::SparseGemvBlockCuda(const GemvShape& shape, int block_rows, const GemvConfig& config)
    : shape_(shape), block_rows_(block_rows), config_(config) {
  check_shape(shape, block_rows);
  const auto candidates = gemv_block_candidates(shape, block_rows);
  if (std::find(candidates.begin(), candidates.end(), config) == candidates.end())
    bad_input("sparse_gemv_blocks_cuda: config (vecs {}, unroll {}, warps {}, split {}) is not supported for {}",
              config.vecs, config.unroll, config.warps, config.split, describe(shape, block_rows));
}

SparseGemvBlockCuda::SparseGemvBlockCuda(const GemvShape& shape, int block_rows)
    : SparseGemvBlockCuda(shape, block_rows,
                          (check_shape(shape, block_rows), default_gemv_block_config(shape, block_rows))) {}

void SparseGemvBlockCuda::run(const void* wt, const float* x, float* y, float threshold, void* stream) const {
#ifdef SPARSA_WITH_CUDA
  const auto ls = gemv::launch_shape(shape_);
  if (ls.epl > 1 && reinterpret_cast<uintptr_t>(wt) % 16 != 0)
    bad_input("sparse_gemv_blocks_cuda: the weight pointer must be 16-byte aligned when out ({}) is a multiple of {}",
              shape_.out, ls.epl);
  gemv::launch_sparse_gemv_blocks(ls, block_rows_, config_.vecs, config_.unroll, config_.warps, config_.split, wt, x, y,
                                  threshold, stream);
#else
  runtime_failure("sparse_gemv_blocks_cuda: sparsa was built without CUDA");
#endif
}

}  // namespace sparsa
