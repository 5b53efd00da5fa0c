// The activation-sparse GEMV (sparsa/sparse_gemv.h): the CPU reference against a dense product
// written here, the tuning table, and the GPU kernel against the CPU reference. GPU tests skip
// when no CUDA device is present (CPU-only builds, CI); scripts/gpu-check.sh runs them on the
// device, also under compute-sanitizer.
//
// GPU tolerance: ‖y − ref‖ / ‖ref‖ ≤ 1e-5 for every weight type. The reference uses the same
// rounded weights and fp64 accumulation, so what remains is fp32 accumulation in another order
// (the issue's bound for bf16 is 1e-2, against unrounded weights). An all-inactive x must give
// exact zeros. Outputs are poisoned with NaN before each run, so an unwritten element fails.
//
// Fused launches must equal single launches EXACTLY (no tolerance): a column's fp32 sum runs over
// the active rows in list order per warp, then over warps, then over cluster ranks, so it depends
// on `warps` and `split` only — not on vecs, unroll, the load width or the other parts.
// FusedGpu checks that against the single launch of the same (warps, split).
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"
#include "gemv_test_support.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace sparsa {
namespace {

using test::GpuCase;
using test::random_normal;
using test::random_weights;

// The threshold that leaves `sparsity` of x inactive (|x| <= t); -1 (all active) for 0.
float threshold_for(const std::vector<float>& x, double sparsity) {
  std::vector<float> a(x.size());
  std::transform(x.begin(), x.end(), a.begin(), [](float v) { return std::abs(v); });
  std::sort(a.begin(), a.end());
  const auto k = static_cast<size_t>(std::llround(sparsity * static_cast<double>(a.size())));
  return k == 0 ? -1.0f : a[std::min(k, a.size()) - 1];
}

// ---- the CPU reference ----

TEST(SparseGemvReference, HandComputedExample) {
  // W [out 2, in 3] = [[1, 2, 3], [4, 5, 6]]; Wᵀ [3, 2]. x = [0.5, -0.1, -2], t = 0.2:
  // x ⊙ mask = [0.5, 0, -2]; y = [0.5 - 6, 2 - 12] = [-5.5, -10].
  const std::vector<float> wt = {1, 4, 2, 5, 3, 6};
  const std::vector<float> x = {0.5f, -0.1f, -2.0f};
  std::vector<float> y(2, std::nanf(""));
  sparse_gemv({DType::F32, 1, 3, 2}, wt.data(), x.data(), y.data(), 0.2f);
  EXPECT_EQ(y, (std::vector<float>{-5.5f, -10.0f}));
}

TEST(SparseGemvReference, MatchesDenseProductOfMaskedInputs) {
  for (DType type : {DType::F32, DType::F16, DType::BF16}) {
    const int64_t batch = 3, in = 127, out = 41;
    const test::RandomWeights w = random_weights(type, in, out, 11);
    const auto x = random_normal(batch * in, 12);  // [batch, in]
    const float t = threshold_for(x, 0.4);
    std::vector<float> y(batch * out, std::nanf(""));
    sparse_gemv({type, batch, in, out}, w.raw.data(), x.data(), y.data(), t);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < out; ++o) {
        double want = 0.0;  // dense sum over every input, the mask applied to x
        for (int64_t j = 0; j < in; ++j) {
          const float xm = std::abs(x[b * in + j]) > t ? x[b * in + j] : 0.0f;
          want += static_cast<double>(xm) * w.values[j * out + o];
        }
        EXPECT_NEAR(y[b * out + o], want, 1e-5 * (1.0 + std::abs(want))) << dtype_name(type) << " " << b << "," << o;
      }
  }
}

TEST(SparseGemvReference, SparsityThresholdLeavesThatFractionInactive) {
  EXPECT_EQ(sparsity_threshold({3.0f, -1.0f, 2.0f}, 0.34f), 1.0f);  // round(1.02) = 1 value inactive
  EXPECT_EQ(sparsity_threshold({3.0f, -1.0f, 2.0f}, 0.9f), 3.0f);
  EXPECT_EQ(sparsity_threshold({3.0f, -1.0f, 2.0f}, 0.0f), -1.0f);   // none inactive
  const auto x = random_normal(1001, 9);
  for (double s : {0.0, 0.25, 0.5, 0.9, 1.0}) {
    const float t = sparsity_threshold(x, static_cast<float>(s));
    const auto inactive = std::count_if(x.begin(), x.end(), [t](float v) { return !(std::abs(v) > t); });
    EXPECT_EQ(inactive, std::llround(s * 1001.0)) << s;
    EXPECT_EQ(t, threshold_for(x, s)) << s;
  }
}

TEST(SparseGemvReference, RejectsUnsupportedTypeAndNegativeSizes) {
  float y = 0.0f;
  EXPECT_THROW(sparse_gemv({DType::I8, 1, 1, 1}, &y, &y, &y, 0.0f), Error);
  EXPECT_THROW(sparse_gemv({DType::F32, 1, -1, 1}, &y, &y, &y, 0.0f), Error);
}

TEST(SparseGemvFusedReference, EachPartIsItsOwnDenseProductWithItsOwnThreshold) {
  for (DType type : {DType::F32, DType::BF16}) {
    const GemvFusedShape shape{type, 3, 127, {1, 41, 127}};
    const auto x = random_normal(static_cast<size_t>(shape.batch * shape.in), 21);  // [batch, in]
    const float thresholds[3] = {-1.0f, threshold_for(x, 0.5), threshold_for(x, 0.99)};
    std::vector<test::RandomWeights> w;
    std::vector<std::vector<float>> y;
    std::vector<GemvPart> parts;
    for (size_t m = 0; m < 3; ++m) {
      w.push_back(random_weights(type, shape.in, shape.outs[m], static_cast<uint32_t>(30 + m)));
      y.emplace_back(static_cast<size_t>(shape.batch * shape.outs[m]), std::nanf(""));
    }
    for (size_t m = 0; m < 3; ++m) parts.push_back({w[m].raw.data(), y[m].data(), thresholds[m]});
    sparse_gemv_fused(shape, parts, x.data());
    for (size_t m = 0; m < 3; ++m) {
      const int64_t out = shape.outs[m];
      for (int64_t b = 0; b < shape.batch; ++b)
        for (int64_t o = 0; o < out; ++o) {
          double want = 0.0;
          for (int64_t j = 0; j < shape.in; ++j) {
            const float xv = x[b * shape.in + j];
            if (std::abs(xv) > thresholds[m]) want += static_cast<double>(xv) * w[m].values[j * out + o];
          }
          EXPECT_NEAR(y[m][b * out + o], want, 1e-5 * (1.0 + std::abs(want))) << m << " " << b << "," << o;
        }
    }
  }
}

TEST(SparseGemvFusedReference, RejectsBadPartCounts) {
  float v[4] = {};
  const GemvPart part{v, v, 0.0f};
  const GemvPart four[4] = {part, part, part, part};
  EXPECT_THROW(sparse_gemv_fused({DType::F32, 1, 1, {}}, {}, v), Error);
  EXPECT_THROW(sparse_gemv_fused({DType::F32, 1, 1, {1, 1, 1, 1}}, four, v), Error);
  EXPECT_THROW(sparse_gemv_fused({DType::F32, 1, 1, {1, 1}}, {four, 1}, v), Error);  // 1 part for 2
  EXPECT_THROW(sparse_gemv_fused({DType::I8, 1, 1, {1}}, {four, 1}, v), Error);
}

// ---- configurations and the tuning table ----

TEST(SparseGemvTuning, SparsityBinsAreFivePercentWide) {
  EXPECT_EQ(gemv_sparsity_bin(0.0f), 0);
  EXPECT_EQ(gemv_sparsity_bin(0.5f), 10);
  EXPECT_EQ(gemv_sparsity_bin(0.49f), 10);
  EXPECT_EQ(gemv_sparsity_bin(0.9f), 18);
  EXPECT_EQ(gemv_sparsity_bin(1.5f), 20);
  EXPECT_EQ(gemv_sparsity_bin(-0.2f), 0);
  EXPECT_EQ((GemvKey{{DType::BF16, 2, 4096, 14336}, 10}.str()), "bf16 b2 in4096 out14336 s50");
}

TEST(SparseGemvTuning, FusedKeysNameEveryOutAndOnePartIsTheSingleKey) {
  const GemvFusedShape qkv{DType::BF16, 1, 4096, {4096, 1024, 1024}};
  EXPECT_EQ((GemvFusedKey{qkv, 10}.str()), "bf16 b1 in4096 out4096+1024+1024 s50");
  EXPECT_EQ((GemvFusedKey{{DType::F16, 4, 4096, {11008, 11008}}, 18}.str()), "f16 b4 in4096 out11008+11008 s90");
  const GemvShape single{DType::BF16, 1, 4096, 4096};
  EXPECT_EQ((GemvFusedKey{GemvFusedShape::single(single), 10}.str()), (GemvKey{single, 10}.str()));

  GemvTuneTable table;
  table.set(GemvKey{single, 10}, {2, 8, 4, 16});
  EXPECT_EQ(table.find(GemvFusedKey{GemvFusedShape::single(single), 10}), (GemvConfig{2, 8, 4, 16}));
  EXPECT_FALSE(table.find(GemvFusedKey{qkv, 10}).has_value());  // the fused shape is its own key
  EXPECT_EQ(table.lookup(GemvFusedKey{qkv, 10}), default_gemv_config(qkv));
  table.set(GemvFusedKey{qkv, 10}, {1, 4, 8, 4});
  EXPECT_EQ(table.find(GemvFusedKey{qkv, 10}), (GemvConfig{1, 4, 8, 4}));
  EXPECT_EQ(table.find(GemvKey{single, 10}), (GemvConfig{2, 8, 4, 16}));
  EXPECT_EQ(table.size(), 2u);
}

TEST(SparseGemvTuning, FusedCandidates) {
  for (const GemvFusedShape& s :
       {GemvFusedShape{DType::BF16, 1, 4096, {4096, 4096, 4096}}, GemvFusedShape{DType::BF16, 8, 4096, {14336, 14336}},
        GemvFusedShape{DType::F16, 3, 4097, {1, 127, 4097}}, GemvFusedShape{DType::F32, 1, 3, {8, 4, 1024}}}) {
    const auto candidates = gemv_candidates(s);
    ASSERT_FALSE(candidates.empty()) << GemvFusedKey{s, 0}.str();
    EXPECT_NE(std::find(candidates.begin(), candidates.end(), default_gemv_config(s)), candidates.end())
        << GemvFusedKey{s, 0}.str();
  }
  // One unaligned part puts every part on the scalar tile; aligned parts keep the vector tiles.
  for (const GemvConfig& c : gemv_candidates(GemvFusedShape{DType::BF16, 1, 64, {4096, 4097}}))
    EXPECT_TRUE(c.vecs == 1 && c.unroll == 4);
  EXPECT_EQ(gemv_candidates(GemvFusedShape{DType::BF16, 1, 64, {4096, 1024}}).size(),
            gemv_candidates(GemvShape{DType::BF16, 1, 64, 4096}).size());
  // The candidates of a one-part shape are those of the single shape.
  EXPECT_EQ(gemv_candidates(GemvFusedShape{DType::BF16, 3, 4097, {127}}), gemv_candidates(GemvShape{DType::BF16, 3, 4097, 127}));
  // No parts or too many: no candidates.
  EXPECT_TRUE(gemv_candidates(GemvFusedShape{DType::BF16, 1, 64, {}}).empty());
  EXPECT_TRUE(gemv_candidates(GemvFusedShape{DType::BF16, 1, 64, {64, 64, 64, 64}}).empty());
  // The default counts the tiles of every part: gate + up fill the GPU with less split-K than one.
  EXPECT_EQ(default_gemv_config(GemvShape{DType::BF16, 1, 4096, 11008}).split, 16);  // 22 tiles
  EXPECT_EQ(default_gemv_config(GemvFusedShape{DType::BF16, 1, 4096, {11008, 11008}}).split, 8);  // 44
}

TEST(SparseGemvTuning, DefaultIsACandidateForEveryShape) {
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (int64_t batch : {1, 3, 8})
      for (auto [in, out] : {std::pair<int64_t, int64_t>{1, 1}, {127, 4097}, {4096, 4096}, {28672, 8192}, {65536, 3}}) {
        const GemvShape s{type, batch, in, out};
        const auto candidates = gemv_candidates(s);
        ASSERT_FALSE(candidates.empty()) << GemvKey{s, 0}.str();
        EXPECT_NE(std::find(candidates.begin(), candidates.end(), default_gemv_config(s)), candidates.end())
            << GemvKey{s, 0}.str();
      }
  // Inputs beyond 16 blocks × 8192 per block, or lists beyond shared memory: no config.
  EXPECT_FALSE(gemv_candidates({DType::BF16, 1, 16 * 8192, 64}).empty());
  EXPECT_TRUE(gemv_candidates({DType::BF16, 1, 16 * 8192 + 1, 64}).empty());
  EXPECT_TRUE(gemv_candidates({DType::BF16, 8, 16 * 8192, 64}).empty());
  // Rows that are not 16-byte aligned only have the scalar tile.
  for (const GemvConfig& c : gemv_candidates({DType::BF16, 1, 64, 4097})) EXPECT_TRUE(c.vecs == 1 && c.unroll == 4);
}

TEST(SparseGemvTuning, TableRoundTripsThroughItsFile) {
  test::TempDir dir;
  const auto path = dir / "tune.json";
  EXPECT_EQ(GemvTuneTable::load(path).size(), 0u);  // missing file: empty

  const GemvKey a{{DType::BF16, 1, 4096, 14336}, 10}, b{{DType::F16, 4, 8192, 28672}, 18};
  const GemvFusedKey fused{{DType::BF16, 1, 4096, {11008, 11008}}, 14};  // beside the single keys
  GemvTuneTable table;
  table.set(a, {2, 8, 4, 16});
  table.set(b, {1, 4, 8, 2, true});
  table.set(fused, {2, 4, 8, 2, true});
  table.save(path);
  const GemvTuneTable back = GemvTuneTable::load(path);
  EXPECT_EQ(back.size(), 3u);
  EXPECT_EQ(back.find(a), (GemvConfig{2, 8, 4, 16, false}));
  EXPECT_EQ(back.find(b), (GemvConfig{1, 4, 8, 2, true}));
  EXPECT_EQ(back.find(fused), (GemvConfig{2, 4, 8, 2, true}));
  const GemvKey untuned{{DType::BF16, 1, 4096, 4096}, 10};
  EXPECT_FALSE(back.find(untuned).has_value());
  EXPECT_EQ(back.lookup(untuned), default_gemv_config(untuned.shape));
}

TEST(SparseGemvTuning, TablesWrittenBeforeFusedKeysStillLoad) {
  test::TempDir dir;
  const auto path = dir / "old.json";
  // A table as the single-matrix version wrote it (2026-11-29): no "pdl".
  test::write_file(path, R"({"version": 1, "entries": {"bf16 b1 in4096 out14336 s50": )"
                         R"({"vecs": 2, "unroll": 8, "warps": 4, "split": 16}}})");
  const GemvTuneTable table = GemvTuneTable::load(path);
  EXPECT_EQ(table.find(GemvKey{{DType::BF16, 1, 4096, 14336}, 10}), (GemvConfig{2, 8, 4, 16, false}));
  EXPECT_EQ(table.find(GemvFusedKey{{DType::BF16, 1, 4096, {14336}}, 10}), (GemvConfig{2, 8, 4, 16, false}));
}

TEST(SparseGemvTuning, ProgrammaticLaunchIsACandidateButNotTheDefault) {
  const GemvShape shape{DType::BF16, 1, 4096, 4096};
  const auto candidates = gemv_candidates(shape);
  const auto with = std::count_if(candidates.begin(), candidates.end(), [](const GemvConfig& c) { return c.pdl; });
  EXPECT_EQ(2 * with, static_cast<std::ptrdiff_t>(candidates.size()));  // every config with and without
  EXPECT_FALSE(default_gemv_config(shape).pdl);
}

TEST(SparseGemvTuning, MalformedTableNamesTheFile) {
  test::TempDir dir;
  const auto path = dir / "bad.json";
  for (const std::string& text : {std::string("{not json"), std::string(R"({"version": 1, "entries": {"k": {"vecs": 1}}})"),
                                  std::string(R"({"version": 7, "entries": {}})")}) {
    test::write_file(path, text);
    try {
      GemvTuneTable::load(path);
      FAIL() << "expected sparsa::Error for " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
      EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
    }
  }
}

// ---- the GPU kernel against the reference ----

class SparseGemvGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(SparseGemvGpu, MatchesReferenceAtEverySparsity) {
  SKIP_WITHOUT_GPU();
  const auto [type, batch, in, out, every_config] = GetParam();
  const GemvShape shape{type, batch, in, out};
  const test::RandomWeights w = random_weights(type, in, out, static_cast<uint32_t>(in * 31 + out));
  DeviceBuffer<uint8_t> dw(w.raw);
  DeviceBuffer<float> dx(static_cast<size_t>(batch * in)), dy(static_cast<size_t>(batch * out));
  const std::vector<float> poison(static_cast<size_t>(batch * out), std::nanf(""));
  const auto configs = every_config ? gemv_candidates(shape) : std::vector<GemvConfig>{default_gemv_config(shape)};
  const double tolerance = 1e-5;

  uint32_t seed = 100;
  for (double sparsity : {0.0, 0.25, 0.5, 0.7, 0.9, 0.99, 1.0}) {
    const auto x = random_normal(static_cast<size_t>(batch * in), ++seed);  // fresh inputs per sparsity
    const float t = threshold_for(x, sparsity);
    std::vector<float> want(static_cast<size_t>(batch * out));
    sparse_gemv(shape, w.raw.data(), x.data(), want.data(), t);
    dx.upload(x);
    for (const GemvConfig& c : configs) {
      dy.upload(poison);
      SparseGemvCuda(shape, c).run(dw.data(), dx.data(), dy.data(), t);
      const auto got = dy.download();
      const double err = test::relative_l2_error(want, got);
      EXPECT_LE(err, tolerance) << "sparsity " << sparsity << ", config vecs " << c.vecs << " unroll " << c.unroll
                                << " warps " << c.warps << " split " << c.split << " pdl " << c.pdl;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddSizes, SparseGemvGpu,
    ::testing::Values(GpuCase{DType::BF16, 1, 1, 1, true}, GpuCase{DType::BF16, 1, 3, 3, true},
                      GpuCase{DType::BF16, 1, 127, 127, true}, GpuCase{DType::BF16, 1, 4097, 264, true},
                      GpuCase{DType::F16, 1, 4097, 264, true}, GpuCase{DType::F32, 1, 4097, 264, true},
                      GpuCase{DType::BF16, 3, 4097, 264, true}, GpuCase{DType::BF16, 8, 1000, 520, true},
                      GpuCase{DType::F16, 5, 127, 4097, false}, GpuCase{DType::BF16, 1, 4097, 4097, false},
                      GpuCase{DType::F32, 2, 3, 4097, false}, GpuCase{DType::BF16, 1, 40000, 1024, false},
                      GpuCase{DType::F16, 8, 14336, 4096, false}, GpuCase{DType::BF16, 1, 131072, 8, false}),
    test::gpu_case_name);

// Random weights and x of one shape on the device, and room for y.
struct DeviceProblem {
  std::vector<float> x;  // [batch, in]
  DeviceBuffer<uint8_t> dw;
  DeviceBuffer<float> dx, dy;
  DeviceProblem(const GemvShape& shape, uint32_t seed)
      : x(random_normal(static_cast<size_t>(shape.batch * shape.in), seed + 1)),
        dw(random_weights(shape.weight_type, shape.in, shape.out, seed).raw),
        dx(x),
        dy(static_cast<size_t>(shape.batch * shape.out)) {}
  std::vector<float> run(const SparseGemvCuda& plan, double sparsity) {
    plan.run(dw.data(), dx.data(), dy.data(), threshold_for(x, sparsity));
    return dy.download();
  }
};

TEST(SparseGemvGpuRuns, AreBitIdentical) {
  SKIP_WITHOUT_GPU();
  const GemvShape shape{DType::BF16, 2, 4096, 4096};
  DeviceProblem p(shape, 3);
  const SparseGemvCuda plan(shape, {2, 8, 8, 16});
  const auto first = p.run(plan, 0.5);
  EXPECT_EQ(first, p.run(plan, 0.5));
}

TEST(SparseGemvGpuRuns, TunedTablePicksAWorkingConfig) {
  SKIP_WITHOUT_GPU();
  const GemvShape shape{DType::F16, 1, 2048, 1024};
  GemvTuneTable table;
  const GemvConfig best = tune_sparse_gemv(shape, 0.5f, table, 3);
  EXPECT_EQ(table.find({shape, gemv_sparsity_bin(0.5f)}), best);
  const SparseGemvCuda plan(shape, 0.52f, table);  // same 5 % bin
  EXPECT_EQ(plan.config(), best);

  const test::RandomWeights w = random_weights(shape.weight_type, shape.in, shape.out, 5);
  const auto x = random_normal(static_cast<size_t>(shape.in), 6);
  const float t = threshold_for(x, 0.5);
  std::vector<float> want(static_cast<size_t>(shape.out));
  sparse_gemv(shape, w.raw.data(), x.data(), want.data(), t);
  DeviceBuffer<uint8_t> dw(w.raw);
  DeviceBuffer<float> dx(x), dy(std::vector<float>(want.size(), std::nanf("")));
  plan.run(dw.data(), dx.data(), dy.data(), t);
  EXPECT_LE(test::relative_l2_error(want, dy.download()), 1e-5);
}

TEST(SparseGemvGpuRuns, RejectsUnsupportedShapesConfigsAndPointers) {
  SKIP_WITHOUT_GPU();
  EXPECT_THROW(SparseGemvCuda({DType::BF16, 9, 64, 64}, GemvConfig{}), Error);
  EXPECT_THROW(SparseGemvCuda({DType::BF16, 1, 0, 64}, GemvConfig{}), Error);
  EXPECT_THROW(SparseGemvCuda({DType::I8, 1, 64, 64}, GemvConfig{}), Error);
  EXPECT_THROW(SparseGemvCuda({DType::BF16, 1, 16 * 8192 + 1, 64}, GemvConfig{1, 4, 8, 16}), Error);
  EXPECT_THROW(SparseGemvCuda({DType::BF16, 8, 16 * 8192, 64}, 0.5f, GemvTuneTable{}), Error);
  EXPECT_THROW(SparseGemvCuda({DType::BF16, 1, 64, 4097}, GemvConfig{2, 4, 8, 1}), Error);  // scalar rows
  DeviceBuffer<uint16_t> dw(64 * 64 + 8);
  DeviceBuffer<float> dx(64), dy(64);
  const SparseGemvCuda plan({DType::BF16, 1, 64, 64}, GemvConfig{1, 4, 8, 1});
  EXPECT_THROW(plan.run(dw.data() + 1, dx.data(), dy.data(), 0.0f), Error);  // 2 bytes off 16-byte alignment
}

// ---- fused launches ----

// A single-part config whose sums run in the same order as `c` (same warps and split): `c` itself
// when the part allows it, else the first such candidate (e.g. the part has 16-byte rows while a
// sibling forces the fused launch onto scalar loads).
std::optional<GemvConfig> same_order_config(const GemvShape& part, const GemvConfig& c) {
  const auto candidates = gemv_candidates(part);
  if (std::find(candidates.begin(), candidates.end(), c) != candidates.end()) return c;
  for (const GemvConfig& d : candidates)
    if (d.warps == c.warps && d.split == c.split) return d;
  return std::nullopt;
}

struct FusedCase {
  DType type;
  int64_t batch, in;
  std::vector<int64_t> outs;
  bool every_config;
};

std::string fused_case_name(const ::testing::TestParamInfo<FusedCase>& info) {
  const auto& c = info.param;
  std::string name = std::string(dtype_name(c.type)) + "_b" + std::to_string(c.batch) + "_in" + std::to_string(c.in);
  for (int64_t out : c.outs) name += "_" + std::to_string(out);
  return name;
}

class SparseGemvFusedGpu : public ::testing::TestWithParam<FusedCase> {};

// Each part against the reference at its own sparsity; the same launch again (bit-identical); and
// every part against a single launch of the same summation order (bit-identical).
TEST_P(SparseGemvFusedGpu, MatchesReferenceAndSingleLaunches) {
  SKIP_WITHOUT_GPU();
  const FusedCase& fc = GetParam();
  const GemvFusedShape shape{fc.type, fc.batch, fc.in, fc.outs};
  const size_t parts = fc.outs.size();
  std::vector<test::RandomWeights> w;
  std::vector<DeviceBuffer<uint8_t>> dw;
  std::vector<DeviceBuffer<float>> dy, dsingle;
  for (size_t m = 0; m < parts; ++m) {
    w.push_back(random_weights(fc.type, fc.in, fc.outs[m], static_cast<uint32_t>(fc.in * 7 + fc.outs[m] + m)));
    dw.emplace_back(w[m].raw);
    dy.emplace_back(static_cast<size_t>(fc.batch * fc.outs[m]));
    dsingle.emplace_back(static_cast<size_t>(fc.batch * fc.outs[m]));
  }
  DeviceBuffer<float> dx(static_cast<size_t>(fc.batch * fc.in));
  const auto configs = fc.every_config ? gemv_candidates(shape) : std::vector<GemvConfig>{default_gemv_config(shape)};
  const double sparsities[] = {0.0, 0.25, 0.5, 0.7, 0.9, 0.99};
  constexpr size_t kLevels = std::size(sparsities);
  int compared_with_single = 0;

  for (size_t level = 0; level < kLevels; ++level) {
    const auto x = random_normal(static_cast<size_t>(fc.batch * fc.in), static_cast<uint32_t>(200 + level));
    dx.upload(x);
    std::vector<float> thresholds(parts);  // part m at the sparsity `m` levels further on
    std::vector<std::vector<float>> want(parts);
    std::vector<GemvPart> host_parts(parts), device_parts(parts);
    for (size_t m = 0; m < parts; ++m) {
      thresholds[m] = threshold_for(x, sparsities[(level + 2 * m) % kLevels]);
      want[m].resize(static_cast<size_t>(fc.batch * fc.outs[m]));
      host_parts[m] = {w[m].raw.data(), want[m].data(), thresholds[m]};
      device_parts[m] = {dw[m].data(), dy[m].data(), thresholds[m]};
    }
    sparse_gemv_fused(shape, host_parts, x.data());
    for (const GemvConfig& c : configs) {
      const std::string where = "level " + std::to_string(level) + ", config vecs " + std::to_string(c.vecs) +
                                " unroll " + std::to_string(c.unroll) + " warps " + std::to_string(c.warps) +
                                " split " + std::to_string(c.split) + " pdl " + std::to_string(c.pdl);
      const SparseGemvFusedCuda plan(shape, c);
      for (size_t m = 0; m < parts; ++m) dy[m].upload(std::vector<float>(dy[m].size(), std::nanf("")));
      plan.run(device_parts, dx.data());
      std::vector<std::vector<float>> got(parts);
      for (size_t m = 0; m < parts; ++m) {
        got[m] = dy[m].download();
        EXPECT_LE(test::relative_l2_error(want[m], got[m]), 1e-5) << "part " << m << ", " << where;
      }
      plan.run(device_parts, dx.data());
      for (size_t m = 0; m < parts; ++m) EXPECT_EQ(got[m], dy[m].download()) << "rerun, part " << m << ", " << where;
      for (size_t m = 0; m < parts; ++m) {
        const auto single = same_order_config(shape.part(m), c);
        if (!single) continue;
        dsingle[m].upload(std::vector<float>(dsingle[m].size(), std::nanf("")));
        SparseGemvCuda(shape.part(m), *single).run(dw[m].data(), dx.data(), dsingle[m].data(), thresholds[m]);
        EXPECT_EQ(got[m], dsingle[m].download()) << "single launch, part " << m << ", " << where;
        ++compared_with_single;
      }
    }
  }
  EXPECT_GT(compared_with_single, 0);
}

INSTANTIATE_TEST_SUITE_P(
    OddSizes, SparseGemvFusedGpu,
    ::testing::Values(FusedCase{DType::BF16, 1, 3, {1, 127, 4097}, true},
                      FusedCase{DType::BF16, 3, 127, {4097, 1, 127}, true},
                      FusedCase{DType::F16, 8, 4097, {127, 4097}, true},
                      FusedCase{DType::F32, 1, 4097, {264, 8, 1024}, true},
                      FusedCase{DType::BF16, 8, 127, {1, 4097, 127}, false},
                      FusedCase{DType::BF16, 1, 4096, {4096, 1024, 1024}, true},
                      FusedCase{DType::F16, 1, 4096, {11008, 11008}, false}),
    fused_case_name);

// Bit-identical results across every config of one (warps, split): the claim that lets fused
// launches equal single launches exactly.
TEST(SparseGemvGpuRuns, SumOrderDependsOnlyOnWarpsAndSplit) {
  SKIP_WITHOUT_GPU();
  const GemvShape shape{DType::BF16, 3, 4097, 1024};
  DeviceProblem p(shape, 8);
  std::map<std::pair<int, int>, std::vector<float>> first;  // (warps, split) -> y
  int compared = 0;
  for (const GemvConfig& c : gemv_candidates(shape)) {
    const auto y = p.run(SparseGemvCuda(shape, c), 0.5);
    const auto [it, inserted] = first.try_emplace({c.warps, c.split}, y);
    if (!inserted) {
      EXPECT_EQ(it->second, y) << "vecs " << c.vecs << " unroll " << c.unroll << " warps " << c.warps << " split "
                               << c.split << " pdl " << c.pdl;
      ++compared;
    }
  }
  EXPECT_GT(compared, 0);
}

TEST(SparseGemvGpuRuns, TunedFusedTablePicksAWorkingConfig) {
  SKIP_WITHOUT_GPU();
  const GemvFusedShape shape{DType::BF16, 1, 2048, {1024, 256, 256}};
  GemvTuneTable table;
  const GemvConfig best = tune_sparse_gemv_fused(shape, 0.7f, table, 3);
  EXPECT_EQ(table.find(GemvFusedKey{shape, gemv_sparsity_bin(0.7f)}), best);
  const SparseGemvFusedCuda plan(shape, 0.69f, table);
  EXPECT_EQ(plan.config(), best);

  const auto x = random_normal(static_cast<size_t>(shape.in), 16);
  DeviceBuffer<float> dx(x);
  std::vector<test::RandomWeights> w;
  std::vector<DeviceBuffer<uint8_t>> dw;
  std::vector<DeviceBuffer<float>> dy;
  std::vector<std::vector<float>> want;
  std::vector<GemvPart> host_parts, device_parts;
  for (size_t m = 0; m < 3; ++m) {
    w.push_back(random_weights(shape.weight_type, shape.in, shape.outs[m], static_cast<uint32_t>(17 + m)));
    dw.emplace_back(w[m].raw);
    dy.emplace_back(std::vector<float>(static_cast<size_t>(shape.outs[m]), std::nanf("")));
    want.emplace_back(static_cast<size_t>(shape.outs[m]));
  }
  for (size_t m = 0; m < 3; ++m) {
    const float t = threshold_for(x, 0.6 + 0.1 * static_cast<double>(m));
    host_parts.push_back({w[m].raw.data(), want[m].data(), t});
    device_parts.push_back({dw[m].data(), dy[m].data(), t});
  }
  sparse_gemv_fused(shape, host_parts, x.data());
  plan.run(device_parts, dx.data());
  for (size_t m = 0; m < 3; ++m) EXPECT_LE(test::relative_l2_error(want[m], dy[m].download()), 1e-5) << m;
}

TEST(SparseGemvGpuRuns, FusedRejectsBadPartsAndPointers) {
  SKIP_WITHOUT_GPU();
  EXPECT_THROW(SparseGemvFusedCuda(GemvFusedShape{DType::BF16, 1, 64, {}}, GemvConfig{1, 4, 8, 1}), Error);
  EXPECT_THROW(SparseGemvFusedCuda(GemvFusedShape{DType::BF16, 1, 64, {64, 64, 64, 64}}, GemvConfig{1, 4, 8, 1}), Error);
  EXPECT_THROW(SparseGemvFusedCuda(GemvFusedShape{DType::BF16, 1, 64, {64, 0}}, GemvConfig{1, 4, 8, 1}), Error);
  EXPECT_THROW(SparseGemvFusedCuda(GemvFusedShape{DType::BF16, 1, 64, {64, 4097}}, GemvConfig{2, 4, 8, 1}), Error);
  DeviceBuffer<uint16_t> dw(2 * 64 * 64 + 8);
  DeviceBuffer<float> dx(64), dy(128);
  const SparseGemvFusedCuda plan(GemvFusedShape{DType::BF16, 1, 64, {64, 64}}, GemvConfig{1, 4, 8, 1});
  const GemvPart good{dw.data(), dy.data(), 0.0f}, skewed{dw.data() + 64 * 64 + 1, dy.data() + 64, 0.0f};
  const GemvPart one[1] = {good}, misaligned[2] = {good, skewed};
  EXPECT_THROW(plan.run(one, dx.data()), Error);         // 1 part for a plan of 2
  EXPECT_THROW(plan.run(misaligned, dx.data()), Error);  // part 1 is 2 bytes off 16-byte alignment
}

#ifndef SPARSA_WITH_CUDA
TEST(CpuOnlyBuild, SparseGemvCudaThrowsBuiltWithoutCuda) {
  const GemvShape shape{DType::BF16, 1, 64, 64};
  GemvTuneTable table;
  EXPECT_THROW(SparseGemvCuda(shape, GemvConfig{}).run(nullptr, nullptr, nullptr, 0.0f), Error);
  EXPECT_THROW(tune_sparse_gemv(shape, 0.5f, table), Error);
  const GemvFusedShape fused{DType::BF16, 1, 64, {64, 64}};
  EXPECT_THROW(SparseGemvFusedCuda(fused, GemvConfig{}).run({}, nullptr), Error);
  EXPECT_THROW(tune_sparse_gemv_fused(fused, 0.5f, table), Error);
}
#endif

}  // namespace
}  // namespace sparsa
