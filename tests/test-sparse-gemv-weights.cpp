// The GEMVs that skip pruned weights as well as inactive inputs, 2:4 (sparsa/sparse_gemv_2to4.h)
// and unstructured (bitmask, sparsa/sparse_gemv_masked.h): the packers (layout, mask and zeros,
// rejection of non-2:4 input), the CPU references against the dense activation-sparse reference
// sparse_gemv() on the pruned
// matrix (an independent computation), the plans' validation, and the GPU kernels against the
// CPU references. GPU tests skip when no CUDA device is present.
//
// GPU tolerance: ‖y − ref‖ / ‖ref‖ ≤ 1e-5 (same rounded weights, fp64 reference, fp32 kernel
// accumulation in another order). Outputs are poisoned with NaN before each run.
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/sparse_gemv_2to4.h"
#include "sparsa/sparse_gemv_masked.h"
#include "gemv_test_support.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace sparsa {
namespace {

using test::GpuCase;
using test::random_normal;

uint16_t to_half(DType type, float v) { return type == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v); }

// A dense Wᵀ [in, out] of half bits, never zero, and a 2:4 mask [in, out] (1 = kept) that keeps 2
// of every 4 inputs per column, or fewer for about 1 in 8 (group, column) pairs.
struct Pruned {
  std::vector<uint16_t> dense;   // [in, out] every value non-zero
  std::vector<uint8_t> mask;     // [in, out]
  std::vector<uint16_t> pruned;  // [in, out] dense ⊙ mask
};

Pruned random_pruned(DType type, int64_t in, int64_t out, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(0.05f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 3), fewer(0, 7);
  Pruned p{std::vector<uint16_t>(static_cast<size_t>(in * out)), std::vector<uint8_t>(static_cast<size_t>(in * out)),
           std::vector<uint16_t>(static_cast<size_t>(in * out))};
  for (size_t i = 0; i < p.dense.size(); ++i) p.dense[i] = to_half(type, (rng() & 1 ? 1.0f : -1.0f) * value(rng));
  for (int64_t g = 0; g < in / 4; ++g)
    for (int64_t o = 0; o < out; ++o) {
      const int a = pick(rng);
      const int b = (a + 1 + pick(rng) % 3) % 4;  // another offset
      const int f = fewer(rng);
      const int keep_a = f != 0, keep_b = f != 0 && f != 1;
      if (keep_a) p.mask[(4 * g + a) * out + o] = 1;
      if (keep_b) p.mask[(4 * g + b) * out + o] = 1;
    }
  for (size_t i = 0; i < p.dense.size(); ++i) p.pruned[i] = p.mask[i] ? p.dense[i] : 0;
  return p;
}

// Expects Error(kBadInput) with a one-line message that contains `needle`.
void expect_bad_input(auto&& call, const std::string& needle) {
  const std::string message = test::bad_input_message(call);
  EXPECT_NE(message.find(needle), std::string::npos) << message;
}

// ---- the packer ----

TEST(Gemv2to4Packer, HandPackedLayout) {
  // in 4, out 9 (two index words). Column 0 keeps inputs 1 and 3; column 1 only input 3 (padded
  // with a zero at offset 2); column 8 keeps inputs 0 and 2; columns 2..7 keep nothing.
  const DType t = DType::BF16;
  const int64_t in = 4, out = 9;
  std::vector<uint16_t> wt(in * out, 0);
  wt[1 * out + 0] = to_half(t, 1.5f), wt[3 * out + 0] = to_half(t, -2.0f);
  wt[3 * out + 1] = to_half(t, 4.0f);
  wt[0 * out + 8] = to_half(t, 0.25f), wt[2 * out + 8] = to_half(t, 8.0f);
  const Gemv2to4Weights p = pack_gemv_2to4(t, in, out, wt.data());
  ASSERT_EQ(p.values.size(), static_cast<size_t>(2 * out * 2));
  ASSERT_EQ(p.indices.size(), 2u);
  const auto* v = reinterpret_cast<const uint16_t*>(p.values.data());  // [2, out]
  EXPECT_EQ(bf16_to_f32(v[0]), 1.5f);
  EXPECT_EQ(bf16_to_f32(v[out + 0]), -2.0f);
  EXPECT_EQ(bf16_to_f32(v[1]), 0.0f);
  EXPECT_EQ(bf16_to_f32(v[out + 1]), 4.0f);
  EXPECT_EQ(bf16_to_f32(v[8]), 0.25f);
  EXPECT_EQ(bf16_to_f32(v[out + 8]), 8.0f);
  // nibble = idx0 | idx1 << 2: column 0 (1, 3) = 13, column 1 (2, 3) = 14, empty (0, 1) = 4.
  EXPECT_EQ(p.indices[0], 13u | 14u << 4 | 4u << 8 | 4u << 12 | 4u << 16 | 4u << 20 | 4u << 24 | 4u << 28);
  EXPECT_EQ(p.indices[1], 0u | 2u << 2);  // column 8 (0, 2); the unused nibbles stay 0
}

TEST(Gemv2to4Packer, MaskAndPrunedZerosGiveTheSamePacking) {
  for (DType type : {DType::F16, DType::BF16}) {
    const int64_t in = 12, out = 19;
    const Pruned w = random_pruned(type, in, out, 3);
    const auto from_mask = pack_gemv_2to4(type, in, out, w.dense.data(), w.mask.data());
    const auto from_zeros = pack_gemv_2to4(type, in, out, w.pruned.data());
    EXPECT_EQ(from_mask.values, from_zeros.values) << dtype_name(type);
    EXPECT_EQ(from_mask.indices, from_zeros.indices) << dtype_name(type);
  }
}

TEST(Gemv2to4Packer, RejectsInputThatIsNot2to4) {
  const DType t = DType::F16;
  const int64_t in = 8, out = 5;
  std::vector<uint16_t> wt(in * out, 0);
  for (int k : {0, 1, 3}) wt[(4 + k) * out + 2] = to_half(t, 1.0f);  // column 2, inputs 4..7: three kept
  expect_bad_input([&] { pack_gemv_2to4(t, in, out, wt.data()); }, "column 2 keeps more than 2 of the 4 inputs 4..7");

  std::vector<uint8_t> mask(in * out, 0);
  mask[0 * out + 4] = mask[1 * out + 4] = mask[2 * out + 4] = 1;  // column 4, inputs 0..3: three kept
  expect_bad_input([&] { pack_gemv_2to4(t, in, out, wt.data(), mask.data()); }, "column 4 keeps more than 2");

  expect_bad_input([&] { pack_gemv_2to4(t, 6, 1, wt.data()); }, "in 6 is not a positive multiple of 4");
  expect_bad_input([&] { pack_gemv_2to4(t, 0, 1, wt.data()); }, "in 0");
  expect_bad_input([&] { pack_gemv_2to4(t, 4, 0, wt.data()); }, "out 0");
  expect_bad_input([&] { pack_gemv_2to4(DType::F32, 4, 1, wt.data()); }, "weight type");
}

// ---- the CPU reference ----

TEST(Gemv2to4Reference, HandComputedExample) {
  // Wᵀ [4, 2]: column 0 keeps inputs 0 (2.0) and 3 (-1.0); column 1 keeps input 2 (0.5) only.
  // x = [1, 3, -4, 0.1], t = 0.2: xm = [1, 3, -4, 0]; y = [2·1 + (-1)·0, 0.5·(-4)] = [2, -2].
  const DType t = DType::BF16;
  std::vector<uint16_t> wt(8, 0);
  wt[0 * 2 + 0] = to_half(t, 2.0f), wt[3 * 2 + 0] = to_half(t, -1.0f), wt[2 * 2 + 1] = to_half(t, 0.5f);
  const auto p = pack_gemv_2to4(t, 4, 2, wt.data());
  const std::vector<float> x = {1.0f, 3.0f, -4.0f, 0.1f};
  std::vector<float> y(2, std::nanf(""));
  sparse_gemv_2to4({t, 1, 4, 2}, p.values.data(), p.indices.data(), x.data(), y.data(), 0.2f);
  EXPECT_EQ(y, (std::vector<float>{2.0f, -2.0f}));
}

TEST(Gemv2to4Reference, MatchesDenseSparseGemvOnThePrunedMatrix) {
  uint32_t seed = 20;
  for (DType type : {DType::F16, DType::BF16})
    for (int64_t batch : {1, 3})
      for (auto [in, out] : {std::pair<int64_t, int64_t>{4, 1}, {12, 3}, {4100, 127}, {36, 4097}}) {
        const GemvShape shape{type, batch, in, out};
        const Pruned w = random_pruned(type, in, out, ++seed);
        const auto p = pack_gemv_2to4(type, in, out, w.pruned.data());
        for (double sparsity : {0.0, 0.5, 0.9, 0.99}) {
          const auto x = random_normal(static_cast<size_t>(batch * in), ++seed);
          const float t = sparsity_threshold(x, static_cast<float>(sparsity));
          std::vector<float> want(static_cast<size_t>(batch * out)), got(want.size(), std::nanf(""));
          sparse_gemv(shape, w.pruned.data(), x.data(), want.data(), t);
          sparse_gemv_2to4(shape, p.values.data(), p.indices.data(), x.data(), got.data(), t);
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 1e-6 * (1.0 + std::abs(want[i])))
                << dtype_name(type) << " b" << batch << " in" << in << " out" << out << " s" << sparsity << " at " << i;
        }
      }
}

TEST(Gemv2to4Reference, RejectsBadShapes) {
  float f = 0.0f;
  uint32_t i = 0;
  EXPECT_THROW(sparse_gemv_2to4({DType::F32, 1, 4, 1}, &f, &i, &f, &f, 0.0f), Error);
  EXPECT_THROW(sparse_gemv_2to4({DType::BF16, 1, 5, 1}, &f, &i, &f, &f, 0.0f), Error);
  EXPECT_THROW(sparse_gemv_2to4({DType::BF16, -1, 4, 1}, &f, &i, &f, &f, 0.0f), Error);
}

// ---- the plan ----

TEST(Gemv2to4Plan, DefaultIsACandidateForEveryShape) {
  for (DType type : {DType::F16, DType::BF16})
    for (int64_t batch : {1, 2, 3, 8})
      for (auto [in, out] : {std::pair<int64_t, int64_t>{4, 1}, {12, 3}, {4100, 4097}, {4096, 4096}, {28672, 8192},
                             {14336, 4096}, {65536, 264}}) {
        const GemvShape s{type, batch, in, out};
        const auto candidates = gemv_2to4_candidates(s);
        ASSERT_FALSE(candidates.empty()) << batch << " " << in << " " << out;
        EXPECT_NE(std::find(candidates.begin(), candidates.end(), default_gemv_2to4_config(s)), candidates.end())
            << batch << " " << in << " " << out;
        EXPECT_EQ(SparseGemv2to4Cuda(s).config(), default_gemv_2to4_config(s));
      }
  for (const GemvConfig& c : gemv_2to4_candidates({DType::BF16, 1, 64, 4097})) EXPECT_EQ(c.vecs, 1);  // scalar
  EXPECT_TRUE(gemv_2to4_candidates({DType::BF16, 1, 16 * 4 * 65536, 64}).empty());  // > 65535 groups a block
}

TEST(Gemv2to4Plan, RejectsUnsupportedShapesAndConfigs) {
  expect_bad_input([] { SparseGemv2to4Cuda({DType::F32, 1, 64, 64}); }, "weight type");
  expect_bad_input([] { SparseGemv2to4Cuda({DType::BF16, 9, 64, 64}); }, "batch 9");
  expect_bad_input([] { SparseGemv2to4Cuda({DType::BF16, 1, 66, 64}); }, "in 66");
  expect_bad_input([] { SparseGemv2to4Cuda({DType::BF16, 1, 64, 0}); }, "out 0");
  expect_bad_input([] { SparseGemv2to4Cuda({DType::BF16, 1, 64, 4097}, GemvConfig{2, 2, 8, 1}); }, "config");
  expect_bad_input([] { SparseGemv2to4Cuda({DType::BF16, 1, 64, 64}, GemvConfig{1, 8, 8, 1}); }, "config");
}

// ---- the GPU kernel against the reference ----

class Gemv2to4Gpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(Gemv2to4Gpu, MatchesReferenceAtEverySparsity) {
  SKIP_WITHOUT_GPU();
  const auto [type, batch, in, out, every_config] = GetParam();
  const GemvShape shape{type, batch, in, out};
  const Pruned w = random_pruned(type, in, out, static_cast<uint32_t>(in * 31 + out));
  const auto p = pack_gemv_2to4(type, in, out, w.pruned.data());
  DeviceBuffer<uint8_t> dv(p.values);
  DeviceBuffer<uint32_t> di(p.indices);
  DeviceBuffer<float> dx(static_cast<size_t>(batch * in)), dy(static_cast<size_t>(batch * out));
  const std::vector<float> poison(static_cast<size_t>(batch * out), std::nanf(""));
  const auto configs =
      every_config ? gemv_2to4_candidates(shape) : std::vector<GemvConfig>{default_gemv_2to4_config(shape)};

  uint32_t seed = 100;
  for (double sparsity : {0.0, 0.25, 0.5, 0.7, 0.9, 0.99, 1.0}) {
    const auto x = random_normal(static_cast<size_t>(batch * in), ++seed);
    const float t = sparsity_threshold(x, static_cast<float>(sparsity));
    std::vector<float> want(static_cast<size_t>(batch * out));
    sparse_gemv_2to4(shape, p.values.data(), p.indices.data(), x.data(), want.data(), t);
    dx.upload(x);
    for (const GemvConfig& c : configs) {
      dy.upload(poison);
      SparseGemv2to4Cuda(shape, c).run(dv.data(), di.data(), dx.data(), dy.data(), t);
      const auto got = dy.download();
      if (sparsity == 1.0) {
        EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f)) << "all inactive";
        continue;
      }
      EXPECT_LE(test::relative_l2_error(want, got), 1e-5) << "sparsity " << sparsity << ", config vecs " << c.vecs << " unroll "
                                                 << c.unroll << " warps " << c.warps << " split " << c.split;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddSizes, Gemv2to4Gpu,
    ::testing::Values(GpuCase{DType::BF16, 1, 4, 1, true}, GpuCase{DType::BF16, 1, 12, 3, true},
                      GpuCase{DType::BF16, 1, 4100, 127, true}, GpuCase{DType::F16, 1, 4100, 264, true},
                      GpuCase{DType::BF16, 3, 4100, 264, true}, GpuCase{DType::BF16, 8, 1000, 520, true},
                      GpuCase{DType::F16, 5, 12, 4097, false}, GpuCase{DType::BF16, 1, 4100, 4097, false},
                      GpuCase{DType::BF16, 2, 4, 4096, false}, GpuCase{DType::F16, 8, 14336, 4096, false},
                      GpuCase{DType::BF16, 1, 4096, 14336, false}),
    test::gpu_case_name);

TEST(Gemv2to4GpuRuns, AreBitIdentical) {
  SKIP_WITHOUT_GPU();
  const GemvShape shape{DType::BF16, 2, 4096, 4096};
  const Pruned w = random_pruned(shape.weight_type, shape.in, shape.out, 3);
  const auto p = pack_gemv_2to4(shape.weight_type, shape.in, shape.out, w.pruned.data());
  const auto x = random_normal(static_cast<size_t>(shape.batch * shape.in), 4);
  const float t = sparsity_threshold(x, 0.5f);
  DeviceBuffer<uint8_t> dv(p.values);
  DeviceBuffer<uint32_t> di(p.indices);
  DeviceBuffer<float> dx(x), dy(static_cast<size_t>(shape.batch * shape.out));
  const SparseGemv2to4Cuda plan(shape, {2, 2, 8, 16});
  plan.run(dv.data(), di.data(), dx.data(), dy.data(), t);
  const auto first = dy.download();
  plan.run(dv.data(), di.data(), dx.data(), dy.data(), t);
  EXPECT_EQ(first, dy.download());
}

TEST(Gemv2to4GpuRuns, RejectsMisalignedPointers) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer<uint16_t> dv(64 * 32 + 8);
  DeviceBuffer<uint32_t> di(16 * 8);
  DeviceBuffer<float> dx(64 + 4), dy(64);
  const SparseGemv2to4Cuda plan({DType::BF16, 1, 64, 64});
  EXPECT_THROW(plan.run(dv.data() + 1, di.data(), dx.data(), dy.data(), 0.0f), Error);
  EXPECT_THROW(plan.run(dv.data(), di.data(), dx.data() + 1, dy.data(), 0.0f), Error);
}

// ---- unstructured: bitmask + packed values ----

// A dense Wᵀ [in, out] of half bits (never zero) and a random mask keeping `density` of it.
struct Unstructured {
  std::vector<uint16_t> dense, pruned;  // [in, out]
  std::vector<uint8_t> mask;            // [in, out]
};

Unstructured random_unstructured(DType type, int64_t in, int64_t out, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(0.05f, 1.0f), unit(0.0f, 1.0f);
  Unstructured u{std::vector<uint16_t>(static_cast<size_t>(in * out)), std::vector<uint16_t>(static_cast<size_t>(in * out)),
                 std::vector<uint8_t>(static_cast<size_t>(in * out))};
  for (size_t i = 0; i < u.dense.size(); ++i) {
    u.dense[i] = to_half(type, (rng() & 1 ? 1.0f : -1.0f) * value(rng));
    u.mask[i] = unit(rng) < density;
    u.pruned[i] = u.mask[i] ? u.dense[i] : 0;
  }
  return u;
}

TEST(GemvMaskedPacker, HandPackedLayout) {
  // in 1, out 260 (2 tiles): tile 0 keeps columns 0, 3, 255 (3 values, padded to 8); tile 1
  // keeps 256 and 259 (padded to 8).
  const DType t = DType::F16;
  std::vector<uint16_t> wt(260, 0);
  for (int c : {0, 3, 255, 256, 259}) wt[c] = to_half(t, static_cast<float>(c + 1));
  const GemvMaskedWeights p = pack_gemv_masked(t, 1, 260, wt.data());
  ASSERT_EQ(p.masks.size(), 64u);
  ASSERT_EQ(p.offsets, (std::vector<uint32_t>{0, 1}));
  ASSERT_EQ(p.values.size(), 16u * 2);
  EXPECT_EQ(p.masks[0], 0x09);   // columns 0 and 3
  EXPECT_EQ(p.masks[31], 0x80);  // column 255
  EXPECT_EQ(p.masks[32], 0x09);  // columns 256 and 259
  for (int b : {1, 2, 30, 33, 63}) EXPECT_EQ(p.masks[b], 0) << b;
  const auto* v = reinterpret_cast<const uint16_t*>(p.values.data());
  EXPECT_EQ(f16_to_f32(v[0]), 1.0f);
  EXPECT_EQ(f16_to_f32(v[1]), 4.0f);
  EXPECT_EQ(f16_to_f32(v[2]), 256.0f);
  for (int i = 3; i < 8; ++i) EXPECT_EQ(v[i], 0) << i;  // padding
  EXPECT_EQ(f16_to_f32(v[8]), 257.0f);
  EXPECT_EQ(f16_to_f32(v[9]), 260.0f);
  EXPECT_EQ(p.bytes(), 64 + 8 + 32);
}

TEST(GemvMaskedPacker, MaskAndPrunedZerosGiveTheSamePackingAndBadInputIsRejected) {
  const Unstructured w = random_unstructured(DType::BF16, 37, 300, 0.3, 5);
  const auto a = pack_gemv_masked(DType::BF16, 37, 300, w.dense.data(), w.mask.data());
  const auto b = pack_gemv_masked(DType::BF16, 37, 300, w.pruned.data());
  EXPECT_EQ(a.masks, b.masks);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.values, b.values);
  expect_bad_input([&] { pack_gemv_masked(DType::F32, 37, 300, w.dense.data()); }, "weight type");
  expect_bad_input([&] { pack_gemv_masked(DType::BF16, 0, 300, w.dense.data()); }, "in 0");
  expect_bad_input([&] { pack_gemv_masked(DType::BF16, 37, 0, w.dense.data()); }, "out 0");
}

TEST(GemvMaskedReference, MatchesDenseSparseGemvOnThePrunedMatrix) {
  uint32_t seed = 40;
  for (DType type : {DType::F16, DType::BF16})
    for (int64_t batch : {1, 3})
      for (auto [in, out] : {std::pair<int64_t, int64_t>{1, 1}, {3, 3}, {127, 127}, {37, 4097}})
        for (double density : {0.0, 0.1, 0.5, 1.0}) {
          const GemvShape shape{type, batch, in, out};
          const Unstructured w = random_unstructured(type, in, out, density, ++seed);
          const auto p = pack_gemv_masked(type, in, out, w.pruned.data());
          const auto x = random_normal(static_cast<size_t>(batch * in), ++seed);
          const float t = sparsity_threshold(x, 0.5f);
          std::vector<float> want(static_cast<size_t>(batch * out)), got(want.size(), std::nanf(""));
          sparse_gemv(shape, w.pruned.data(), x.data(), want.data(), t);
          sparse_gemv_masked(shape, p.values.data(), p.masks.data(), p.offsets.data(), x.data(), got.data(), t);
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 1e-6 * (1.0 + std::abs(want[i])))
                << dtype_name(type) << " b" << batch << " in" << in << " out" << out << " d" << density << " at " << i;
        }
}

TEST(GemvMaskedPlan, CandidatesDefaultsAndValidation) {
  for (int64_t batch : {1, 3, 8})
    for (auto [in, out] : {std::pair<int64_t, int64_t>{1, 1}, {127, 4097}, {4096, 4096}, {28672, 8192}, {14336, 4096}}) {
      const GemvShape s{DType::BF16, batch, in, out};
      const auto candidates = gemv_masked_candidates(s);
      ASSERT_FALSE(candidates.empty()) << batch << " " << in << " " << out;
      EXPECT_NE(std::find(candidates.begin(), candidates.end(), default_gemv_masked_config(s)), candidates.end());
      EXPECT_EQ(SparseGemvMaskedCuda(s).config(), default_gemv_masked_config(s));
    }
  expect_bad_input([] { SparseGemvMaskedCuda({DType::F32, 1, 64, 64}); }, "weight type");
  expect_bad_input([] { SparseGemvMaskedCuda({DType::BF16, 9, 64, 64}); }, "batch 9");
  expect_bad_input([] { SparseGemvMaskedCuda({DType::BF16, 1, 64, 64}, GemvConfig{2, 4, 8, 1}); }, "config");
  expect_bad_input([] { SparseGemvMaskedCuda({DType::BF16, 1, 1 << 24, 64}); }, "shared memory");
}

class GemvMaskedGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(GemvMaskedGpu, MatchesReferenceAtEverySparsityAndDensity) {
  SKIP_WITHOUT_GPU();
  const auto [type, batch, in, out, every_config] = GetParam();
  const GemvShape shape{type, batch, in, out};
  DeviceBuffer<float> dx(static_cast<size_t>(batch * in)), dy(static_cast<size_t>(batch * out));
  const std::vector<float> poison(static_cast<size_t>(batch * out), std::nanf(""));
  const auto configs = every_config ? gemv_masked_candidates(shape) : std::vector<GemvConfig>{default_gemv_masked_config(shape)};
  uint32_t seed = 300;
  for (double density : {0.05, 0.5, 1.0}) {
    const Unstructured w = random_unstructured(type, in, out, density, ++seed);
    const auto p = pack_gemv_masked(type, in, out, w.pruned.data());
    DeviceBuffer<uint8_t> dv(p.values), dm(p.masks);
    DeviceBuffer<uint32_t> doff(p.offsets);
    for (double sparsity : {0.0, 0.5, 0.9, 0.99, 1.0}) {
      const auto x = random_normal(static_cast<size_t>(batch * in), ++seed);
      const float t = sparsity_threshold(x, static_cast<float>(sparsity));
      std::vector<float> want(static_cast<size_t>(batch * out));
      sparse_gemv_masked(shape, p.values.data(), p.masks.data(), p.offsets.data(), x.data(), want.data(), t);
      dx.upload(x);
      for (const GemvConfig& c : configs) {
        dy.upload(poison);
        SparseGemvMaskedCuda(shape, c).run(dv.data(), dm.data(), doff.data(), dx.data(), dy.data(), t);
        const auto got = dy.download();
        if (sparsity == 1.0) {
          EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f)) << "all inactive";
          continue;
        }
        EXPECT_LE(test::relative_l2_error(want, got), 1e-5)
            << "density " << density << ", sparsity " << sparsity << ", config unroll " << c.unroll << " warps "
            << c.warps << " split " << c.split;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddSizes, GemvMaskedGpu,
    ::testing::Values(GpuCase{DType::BF16, 1, 1, 1, true}, GpuCase{DType::BF16, 1, 3, 3, true},
                      GpuCase{DType::BF16, 1, 127, 127, true}, GpuCase{DType::F16, 1, 4097, 264, true},
                      GpuCase{DType::BF16, 3, 4097, 264, true}, GpuCase{DType::BF16, 8, 1000, 520, true},
                      GpuCase{DType::F16, 5, 127, 4097, false}, GpuCase{DType::BF16, 1, 4097, 4097, false},
                      GpuCase{DType::F16, 8, 4096, 4096, false}, GpuCase{DType::BF16, 1, 4096, 14336, false}),
    test::gpu_case_name);

TEST(GemvMaskedGpuRuns, AreBitIdenticalAndRejectMisalignedValues) {
  SKIP_WITHOUT_GPU();
  const GemvShape shape{DType::BF16, 2, 4096, 4096};
  const Unstructured w = random_unstructured(shape.weight_type, shape.in, shape.out, 0.5, 3);
  const auto p = pack_gemv_masked(shape.weight_type, shape.in, shape.out, w.pruned.data());
  const auto x = random_normal(static_cast<size_t>(shape.batch * shape.in), 4);
  const float t = sparsity_threshold(x, 0.5f);
  DeviceBuffer<uint8_t> dv(p.values), dm(p.masks);
  DeviceBuffer<uint32_t> doff(p.offsets);
  DeviceBuffer<float> dx(x), dy(static_cast<size_t>(shape.batch * shape.out));
  const SparseGemvMaskedCuda plan(shape, {1, 4, 8, 16});
  plan.run(dv.data(), dm.data(), doff.data(), dx.data(), dy.data(), t);
  const auto first = dy.download();
  plan.run(dv.data(), dm.data(), doff.data(), dx.data(), dy.data(), t);
  EXPECT_EQ(first, dy.download());
  EXPECT_THROW(plan.run(dv.data() + 2, dm.data(), doff.data(), dx.data(), dy.data(), t), Error);
}

#ifndef SPARSA_WITH_CUDA
TEST(CpuOnlyBuild, WeightSparseGemvCudaThrowsBuiltWithoutCuda) {
  const SparseGemv2to4Cuda plan({DType::BF16, 1, 64, 64});
  EXPECT_THROW(plan.run(nullptr, nullptr, nullptr, nullptr, 0.0f), Error);
  const SparseGemvMaskedCuda masked({DType::BF16, 1, 64, 64});
  EXPECT_THROW(masked.run(nullptr, nullptr, nullptr, nullptr, nullptr, 0.0f), Error);
}
#endif

}  // namespace
}  // namespace sparsa
