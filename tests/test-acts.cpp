// Activation sparsity: histogram thresholds against sorted-order thresholds on heavy-tailed
// random data, bitsets and the sparsifying observer against brute force, `sparsa acts` on small
// windows against thresholds recomputed by sorting, and the golden activation_sparsity.json
// (thresholds within 0.5 %, perplexities within 1 %) from one shared calibration pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include <fmt/ranges.h>

#include "sparsa/activations.h"
#include "sparsa/error.h"
#include "sparsa/mask_compare.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_sparsa;
using test::TempDir;

fs::path demo_model() { return test::repo_dir() / "models" / "tiny-llama-15m"; }
fs::path golden(const std::string& name) { return test::shared_dir() / "golden" / name; }

float sorted_threshold(std::vector<float> abs_values, double s) {
  const auto k = static_cast<size_t>(std::floor(s * static_cast<double>(abs_values.size())));
  std::nth_element(abs_values.begin(), abs_values.begin() + k, abs_values.end());
  return abs_values[k];
}

// ---- histogram ----

TEST(ActivationHistogram, ThresholdsMatchSortedOrderOnHeavyTails) {
  std::mt19937 rng(1);
  std::cauchy_distribution<float> cauchy(0.0f, 0.05f);
  std::student_t_distribution<float> t3(3.0f);
  std::vector<float> x;
  for (int i = 0; i < 150001; ++i) x.push_back(cauchy(rng));
  for (int i = 0; i < 50000; ++i) x.push_back(0.01f * t3(rng));
  for (int i = 0; i < 999; ++i) x.push_back(0.0f);  // exact zeros (SiLU outputs, padding)
  ActivationHistogram h;
  h.add(x.data(), static_cast<int64_t>(x.size() / 2));
  ActivationHistogram rest;
  rest.add(x.data() + x.size() / 2, static_cast<int64_t>(x.size() - x.size() / 2));
  h.merge(rest);
  ASSERT_EQ(h.total(), static_cast<int64_t>(x.size()));
  std::vector<float> mags(x.size());
  for (size_t i = 0; i < x.size(); ++i) mags[i] = std::fabs(x[i]);
  for (double s : {0.0, 0.001, 0.1, 0.25, 0.4, 0.5, 0.7, 0.9, 0.99, 0.9999}) {
    SCOPED_TRACE(s);
    const float exact = sorted_threshold(mags, s);
    const auto [lo, hi] = h.threshold_bin(s);
    EXPECT_LE(lo, exact);
    EXPECT_LT(exact, hi);
    const float est = h.threshold(s);
    if (exact == 0.0f) EXPECT_LT(est, std::ldexp(1.0f, -20));  // the zeros sit in the inner edge bin
    else EXPECT_LE(std::fabs(est - exact), exact * std::ldexp(1.0, -10));  // one fine bin
  }
}

TEST(ActivationHistogram, SignsAndEdgeBinsFoldTheTails) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {1e-30f, -1e-30f, 0.0f, -0.0f, 3e6f, -inf, 1.5f, -1.5f, 1.0f};
  ActivationHistogram h;
  h.add(x.data(), static_cast<int64_t>(x.size()));
  const auto& c = h.counts();
  const int64_t n = ActivationHistogram::kBinsPerSign;
  EXPECT_EQ(c[0], 2u);          // +1e-30, +0
  EXPECT_EQ(c[n], 2u);          // -1e-30, -0
  EXPECT_EQ(c[n - 1], 1u);      // 3e6
  EXPECT_EQ(c[2 * n - 1], 1u);  // -inf
  // 1.0 opens its bin; 1.5 and -1.5 share a bin on either sign.
  int64_t b1 = -1, b15 = -1;
  for (int64_t b = 0; b < n; ++b) {
    if (ActivationHistogram::bin_lower(b) <= 1.0f && 1.0f < ActivationHistogram::bin_upper(b)) b1 = b;
    if (ActivationHistogram::bin_lower(b) <= 1.5f && 1.5f < ActivationHistogram::bin_upper(b)) b15 = b;
  }
  EXPECT_EQ(ActivationHistogram::bin_lower(b1), 1.0f);
  EXPECT_EQ(c[b1], 1u);
  EXPECT_EQ(c[b15], 1u);
  EXPECT_EQ(c[n + b15], 1u);
  EXPECT_NEAR(ActivationHistogram::bin_upper(b15) / ActivationHistogram::bin_lower(b15), 1.0, 1.0 / 1024);
  EXPECT_EQ(h.threshold(0.95), std::ldexp(1.0f, 20));  // rank 8 is in the outer edge: only bounded
}

// ---- observers ----

TEST(ActivationSparsifier, ZeroesExactlyTheEntriesAtOrBelowTheThreshold) {
  ActivationThresholds t;
  t.t = {{0.5f, 0.25f, 1.0f, 2.0f}, {0.1f, 0.1f, 0.1f, 0.1f}};
  ActivationSparsifier sp(t);
  EXPECT_TRUE(sp.concurrent());
  const float above = std::nextafter(0.25f, 1.0f), below = std::nextafter(0.25f, 0.0f);
  std::vector<float> x = {0.25f, -0.25f, above, -above, below, 0.0f, -3.0f, 0.3f};  // [2 tokens, 4]
  sp.observe(0, ObsPoint::kOIn, x.data(), 2, 4);
  EXPECT_EQ(x, (std::vector<float>{0.0f, 0.0f, above, -above, 0.0f, 0.0f, -3.0f, 0.3f}));
  std::vector<float> y = {0.3f, 0.1f, -0.11f};
  sp.observe(1, ObsPoint::kDownIn, y.data(), 1, 3);
  EXPECT_EQ(y, (std::vector<float>{0.3f, 0.0f, -0.11f}));
}

// Copies of the activations at some (layer, point)s of one window, from the plain forward pass.
class Recorder : public Observer {
 public:
  std::map<std::pair<int64_t, int>, std::vector<float>> seen;  // -> [n_tokens, dim]
  std::map<std::pair<int64_t, int>, int64_t> dims;
  void observe(int64_t layer, ObsPoint p, float* x, int64_t n, int64_t dim) override {
    seen[{layer, static_cast<int>(p)}].assign(x, x + n * dim);
    dims[{layer, static_cast<int>(p)}] = dim;
  }
};

// Runs every window through forward() and returns, per (layer, point), the recorders' outputs in window order.
std::vector<Recorder> record_windows(const Model& m, const TensorI32& windows) {
  std::vector<Recorder> out(static_cast<size_t>(windows.dim(0)));
  ForwardBuffers buf;
  Tensor logits;
  for (int64_t w = 0; w < windows.dim(0); ++w)
    forward(m, windows.ptr() + w * windows.dim(1), windows.dim(1), logits, buf, &out[static_cast<size_t>(w)]);
  return out;
}

TensorI32 calib_prefix(int64_t rows, int64_t seqlen) {
  const TensorI32 all = TensorStore::open(golden("tokens.safetensors"))->load_i32("calib");
  TensorI32 w({rows, seqlen});
  for (int64_t r = 0; r < rows; ++r) std::copy_n(all.ptr() + r * all.dim(1), seqlen, w.ptr() + r * seqlen);
  return w;
}

TEST(ActivationBits, MatchBruteForceAcrossWindowBoundaries) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  const Model m = load_model(demo_model());
  const int64_t seqlen = 37;  // windows share 64-bit words of the token axis
  const TensorI32 windows = calib_prefix(3, seqlen);
  const std::vector<BitsetRequest> reqs = {
      {0, ObsPoint::kAttnIn, 0.3f}, {1, ObsPoint::kDownIn, 0.1f}, {1, ObsPoint::kOIn, 0.2f}};
  const std::vector<BitMatrix> bits = capture_activation_bits(m, windows, reqs);
  const std::vector<Recorder> rec = record_windows(m, windows);
  ASSERT_EQ(bits.size(), reqs.size());
  for (size_t q = 0; q < reqs.size(); ++q) {
    const std::pair<int64_t, int> key{reqs[q].layer, static_cast<int>(reqs[q].point)};
    const int64_t dim = rec[0].dims.at(key);
    ASSERT_EQ(bits[q].rows(), dim);
    ASSERT_EQ(bits[q].cols(), 3 * seqlen);
    int64_t mismatches = 0, ones = 0;
    for (int64_t w = 0; w < 3; ++w) {
      const std::vector<float>& x = rec[static_cast<size_t>(w)].seen.at(key);
      for (int64_t i = 0; i < seqlen; ++i)
        for (int64_t f = 0; f < dim; ++f) {
          const bool active = std::fabs(x[i * dim + f]) > reqs[q].threshold;
          mismatches += bits[q].get(f, w * seqlen + i) != active;
          ones += active;
        }
    }
    EXPECT_EQ(mismatches, 0) << "request " << q;
    int64_t counted = 0;
    for (int64_t f = 0; f < dim; ++f) counted += bits[q].row_count(f);
    EXPECT_EQ(counted, ones);  // and nothing set past the last token
  }
  EXPECT_THROW(capture_activation_bits(m, windows, {{6, ObsPoint::kOIn, 0.1f}}), Error);
}

// ---- the CLI on small windows ----

TEST(ActsCli, SmallRunMatchesSortedThresholdsAndWritesBits) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  TempDir tmp;
  const auto bits_file = tmp / "bits.safetensors";
  const auto r = run_sparsa({"acts", "--model", demo_model().string(), "--calib", golden("tokens.safetensors").string(),
                             "--calib-key", "calib", "--nsamples", "4", "--seqlen", "64", "--act-sparsities", "0.5,0.9",
                             "--eval-key", "eval", "--eval-limit", "2", "--bits", "1:down_in:0.5", "--bits-out",
                             bits_file.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  const Model m = load_model(demo_model());
  const std::vector<Recorder> rec = record_windows(m, calib_prefix(4, 64));
  for (const char* s : {"0.5", "0.9"}) {
    ASSERT_EQ(j["thresholds"][s].size(), 6u);
    EXPECT_GT(j["ppl"][s].get<double>(), 1.0);
    for (int64_t l = 0; l < 6; ++l)
      for (int p = 0; p < kNumObsPoints; ++p) {
        std::vector<float> mags;
        for (const Recorder& w : rec)
          for (float v : w.seen.at({l, p})) mags.push_back(std::fabs(v));
        const float exact = sorted_threshold(mags, std::stod(s));
        const float got = j["thresholds"][s][std::to_string(l)][std::string(obs_point_name(static_cast<ObsPoint>(p)))];
        EXPECT_NEAR(got, exact, exact * 0.001) << "sparsity " << s << " layer " << l << " point " << p;
      }
  }
  EXPECT_LT(j["ppl"]["0.5"].get<double>(), j["ppl"]["0.9"].get<double>());

  // The bits: U8 [1024, 256 / 8], MSB first; 1 exactly where |x| > the reported threshold.
  const auto f = SafetensorsFile::open(bits_file);
  const TensorInfo* t = f->find("layers.1.down_in.s0.5");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->shape, (std::vector<int64_t>{1024, 32}));
  const BitMatrix bits = bits_from_packed(t->data, 1024, 256);
  const float thr = j["thresholds"]["0.5"]["1"]["down_in"];
  int64_t mismatches = 0;
  for (int64_t w = 0; w < 4; ++w) {
    const std::vector<float>& x = rec[static_cast<size_t>(w)].seen.at({1, static_cast<int>(ObsPoint::kDownIn)});
    for (int64_t i = 0; i < 64; ++i)
      for (int64_t c = 0; c < 1024; ++c) mismatches += bits.get(c, w * 64 + i) != (std::fabs(x[i * 1024 + c]) > thr);
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(ActsCli, BadInputExitsTwoWithOneLine) {
  const std::string tokens = golden("tokens.safetensors").string();
  const std::vector<std::vector<std::string>> cases = {
      {"acts", "--act-sparsities", "0.5,1.2", "--calib", tokens},
      {"acts", "--act-sparsities", "0", "--calib", tokens},
      {"acts", "--calib", tokens, "--calib-key", "nope"},
      {"acts", "--eval-key", "eval", "--calib-text", (test::repo_dir() / "data" / "persuasion.txt").string()},
      {"acts", "--calib", tokens, "--bits", "0:down_in:0.5"},
      {"acts", "--calib", tokens, "--bits", "6:down_in:0.5", "--bits-out", "/tmp/x.safetensors"},
      {"acts", "--calib", tokens, "--bits", "0:gate_in:0.5", "--bits-out", "/tmp/x.safetensors"},
      {"acts", "--calib", tokens, "--bits", "0:down_in", "--bits-out", "/tmp/x.safetensors"},
      {"acts", "--calib", tokens, "--seqlen", "600"},
  };
  for (const auto& args : cases) {
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 2) << fmt::format("{}", fmt::join(args, " ")) << "\n" << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
  }
}

// ---- the goldens: one calibration pass shared by every target ----

class GoldenActivations : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::shared_available()) return;
    model_ = std::make_unique<Model>(load_model(demo_model()));
    if (test::quick_scope()) {  // block 0 only: its activations do not depend on later blocks
      model_->config.num_layers = 1;
      model_->blocks.resize(1);
    }
    const auto tokens = TensorStore::open(golden("tokens.safetensors"));
    eval_ = std::make_unique<TensorI32>(tokens->load_i32("eval"));
    profile_ = std::make_unique<ActivationProfile>(capture_activation_profile(*model_, tokens->load_i32("calib")));
    expected_ = json::parse(test::read_file(golden("activation_sparsity.json")));
  }
  static void TearDownTestSuite() {
    model_.reset();
    eval_.reset();
    profile_.reset();
  }
  void SetUp() override {
    if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  }
  static inline std::unique_ptr<Model> model_;
  static inline std::unique_ptr<TensorI32> eval_;
  static inline std::unique_ptr<ActivationProfile> profile_;
  static inline json expected_;
};

TEST_F(GoldenActivations, ThresholdsWithinHalfAPercent) {
  const int64_t d = 384, d_ff = 1024, tokens = 128 * 512;
  EXPECT_EQ(profile_->at(0, ObsPoint::kAttnIn).total(), tokens * d);
  const int64_t last = model_->config.num_layers - 1;
  EXPECT_EQ(profile_->at(last, ObsPoint::kDownIn).total(), tokens * d_ff);
  for (const auto& [s, layers] : expected_["thresholds"].items()) {
    const ActivationThresholds t = profile_->thresholds(std::stod(s));
    for (const auto& [layer, points] : layers.items())
      for (int p = 0; p < kNumObsPoints && std::stoll(layer) <= last; ++p) {
        const double want = points[std::string(obs_point_name(static_cast<ObsPoint>(p)))];
        EXPECT_NEAR(t.t[std::stoul(layer)][p], want, 0.005 * want) << "s " << s << " layer " << layer << " point " << p;
      }
  }
}

TEST_F(GoldenActivations, SparsifiedPerplexityWithinOnePercent) {
  if (test::quick_scope()) GTEST_SKIP() << "perplexity needs every block (SPARSA_TEST_SCOPE=quick)";
  for (const auto& [s, want] : expected_["ppl"].items()) {
    ActivationSparsifier sparsifier(profile_->thresholds(std::stod(s)));
    const double got = perplexity(*model_, *eval_, &sparsifier).ppl;
    EXPECT_NEAR(got, want.get<double>(), 0.01 * want.get<double>()) << "s " << s;
  }
}

}  // namespace
}  // namespace sparsa
