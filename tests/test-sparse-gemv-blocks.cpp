// The block-skipping GEMV (sparsa/sparse_gemv_blocks.h): the host count of blocks read, the
// plan's configs and validation, and the GPU kernel against the CPU reference sparse_gemv() (the
// same function). GPU tests skip when no CUDA device is present.
//
// GPU tolerance: ‖y − ref‖ / ‖ref‖ ≤ 1e-5 (same rounded weights, fp64 reference). Outputs are
// poisoned with NaN before each run; an all-inactive x must give exact zeros.
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/sparse_gemv_blocks.h"
#include "gemv_test_support.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace sparsa {
namespace {

// x [batch, in] ~ N(0, 1); with `runs` > 1, runs of that many consecutive inputs share |x| (random
// signs), so they go inactive together: the pattern a co-activation-aware layout aims for.
std::vector<float> random_x(int64_t batch, int64_t in, int runs, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(batch * in));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < in; j += runs) {
      const float m = std::abs(dist(rng));
      for (int64_t k = j; k < std::min(in, j + runs); ++k) x[b * in + k] = rng() & 1 ? m : -m;
    }
  return x;
}

// ---- host side ----

TEST(GemvBlocks, BlocksReadCountsBlocksWithAnActiveRowInAnyBatchRow) {
  // in 10, blocks of 4: [0..3] [4..7] [8..9]. Row 0 active only in batch row 1; row 9 active.
  std::vector<float> x(20, 0.0f);
  x[10 + 0] = 2.0f;  // batch 1, row 0
  x[9] = -3.0f;      // batch 0, row 9
  x[5] = 0.5f;       // |0.5| <= t: inactive
  EXPECT_DOUBLE_EQ(gemv_blocks_read(x.data(), 2, 10, 1.0f, 4), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(gemv_blocks_read(x.data(), 1, 10, 1.0f, 4), 1.0 / 3.0);  // batch row 0 only
  EXPECT_DOUBLE_EQ(gemv_blocks_read(x.data(), 2, 10, 1.0f, 1), 2.0 / 10.0);
  EXPECT_DOUBLE_EQ(gemv_blocks_read(x.data(), 2, 10, 0.1f, 32), 1.0);
  EXPECT_THROW(gemv_blocks_read(x.data(), 1, 10, 0.0f, 0), Error);
}

TEST(GemvBlocks, BlockSizesAreSmallPowersOfTwo) {
  for (int b : {2, 4, 8, 16, 32}) EXPECT_TRUE(gemv_block_rows_supported(b)) << b;
  for (int b : {-4, 0, 1, 3, 12, 64}) EXPECT_FALSE(gemv_block_rows_supported(b)) << b;
}

TEST(GemvBlocks, DefaultIsACandidateForEveryShape) {
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (int64_t batch : {1, 3, 8})
      for (int rows : {2, 8, 32})
        for (auto [in, out] : {std::pair<int64_t, int64_t>{1, 1}, {127, 4097}, {4096, 4096}, {28672, 8192}, {65536, 3}}) {
          const GemvShape s{type, batch, in, out};
          const auto candidates = gemv_block_candidates(s, rows);
          ASSERT_FALSE(candidates.empty()) << batch << " " << in << " " << out << " " << rows;
          EXPECT_NE(std::find(candidates.begin(), candidates.end(), default_gemv_block_config(s, rows)),
                    candidates.end());
          EXPECT_EQ(SparseGemvBlockCuda(s, rows).config(), default_gemv_block_config(s, rows));
        }
  EXPECT_TRUE(gemv_block_candidates({DType::BF16, 1, 64, 64}, 3).empty());
}

TEST(GemvBlocks, RejectsUnsupportedShapesAndConfigs) {
  EXPECT_THROW(SparseGemvBlockCuda({DType::I8, 1, 64, 64}, 8), Error);
  EXPECT_THROW(SparseGemvBlockCuda({DType::BF16, 9, 64, 64}, 8), Error);
  EXPECT_THROW(SparseGemvBlockCuda({DType::BF16, 1, 0, 64}, 8), Error);
  EXPECT_THROW(SparseGemvBlockCuda({DType::BF16, 1, 64, 64}, 12), Error);
  EXPECT_THROW(SparseGemvBlockCuda({DType::BF16, 1, 64, 4097}, 8, GemvConfig{2, 4, 8, 1}), Error);  // scalar rows
  EXPECT_THROW(SparseGemvBlockCuda({DType::BF16, 1, 1 << 24, 64}, 8), Error);  // beyond shared memory
}

// ---- the GPU kernel against the reference ----

struct GpuCase {
  DType type;
  int64_t batch, in, out;
  int block_rows;
  bool every_config;
};

std::string case_name(const ::testing::TestParamInfo<GpuCase>& info) {
  const auto& c = info.param;
  return std::string(dtype_name(c.type)) + "_b" + std::to_string(c.batch) + "_in" + std::to_string(c.in) + "_out" +
         std::to_string(c.out) + "_rows" + std::to_string(c.block_rows);
}

class GemvBlocksGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(GemvBlocksGpu, MatchesReferenceAtEverySparsity) {
  SKIP_WITHOUT_GPU();
  const auto [type, batch, in, out, rows, every_config] = GetParam();
  const GemvShape shape{type, batch, in, out};
  const auto w = test::random_weights(type, in, out, static_cast<uint32_t>(in * 31 + out)).raw;
  DeviceBuffer<uint8_t> dw(w);
  DeviceBuffer<float> dx(static_cast<size_t>(batch * in)), dy(static_cast<size_t>(batch * out));
  const std::vector<float> poison(static_cast<size_t>(batch * out), std::nanf(""));
  const auto configs =
      every_config ? gemv_block_candidates(shape, rows) : std::vector<GemvConfig>{default_gemv_block_config(shape, rows)};
  uint32_t seed = 100;
  for (int runs : {1, rows})
    for (double sparsity : {0.0, 0.25, 0.5, 0.9, 0.99, 1.0}) {
      const auto x = random_x(batch, in, runs, ++seed);
      const float t = sparsity_threshold(x, static_cast<float>(sparsity));
      std::vector<float> want(static_cast<size_t>(batch * out));
      sparse_gemv(shape, w.data(), x.data(), want.data(), t);
      dx.upload(x);
      for (const GemvConfig& c : configs) {
        dy.upload(poison);
        SparseGemvBlockCuda(shape, rows, c).run(dw.data(), dx.data(), dy.data(), t);
        const auto got = dy.download();
        if (sparsity == 1.0) {
          EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f)) << "all inactive";
          continue;
        }
        EXPECT_LE(test::relative_l2_error(want, got), 1e-5) << "runs " << runs << ", sparsity " << sparsity << ", config vecs "
                                                   << c.vecs << " unroll " << c.unroll << " warps " << c.warps
                                                   << " split " << c.split;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(
    OddSizes, GemvBlocksGpu,
    ::testing::Values(GpuCase{DType::BF16, 1, 1, 1, 2, true}, GpuCase{DType::BF16, 1, 3, 3, 4, true},
                      GpuCase{DType::BF16, 1, 127, 127, 8, true}, GpuCase{DType::BF16, 1, 4097, 264, 16, true},
                      GpuCase{DType::F16, 3, 4097, 264, 32, true}, GpuCase{DType::F32, 1, 4097, 264, 8, true},
                      GpuCase{DType::BF16, 8, 1000, 520, 4, true}, GpuCase{DType::F16, 5, 127, 4097, 32, false},
                      GpuCase{DType::BF16, 1, 4097, 4097, 8, false}, GpuCase{DType::BF16, 2, 8192, 4096, 16, false},
                      GpuCase{DType::F16, 8, 14336, 4096, 32, false}),
    case_name);

TEST(GemvBlocksGpuRuns, AreBitIdentical) {
  SKIP_WITHOUT_GPU();
  const GemvShape shape{DType::BF16, 2, 4096, 4096};
  const auto w = test::random_weights(shape.weight_type, shape.in, shape.out, 3).raw;
  const auto x = random_x(shape.batch, shape.in, 8, 4);
  const float t = sparsity_threshold(x, 0.5f);
  DeviceBuffer<uint8_t> dw(w);
  DeviceBuffer<float> dx(x), dy(static_cast<size_t>(shape.batch * shape.out));
  const SparseGemvBlockCuda plan(shape, 8, {2, 8, 8, 16});
  plan.run(dw.data(), dx.data(), dy.data(), t);
  const auto first = dy.download();
  plan.run(dw.data(), dx.data(), dy.data(), t);
  EXPECT_EQ(first, dy.download());
}

#ifndef SPARSA_WITH_CUDA
TEST(CpuOnlyBuild, SparseGemvBlockCudaThrowsBuiltWithoutCuda) {
  EXPECT_THROW(SparseGemvBlockCuda({DType::BF16, 1, 64, 64}, 8).run(nullptr, nullptr, nullptr, 0.0f), Error);
}
#endif

}  // namespace
}  // namespace sparsa
