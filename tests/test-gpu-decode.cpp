// The GPU decoder (sparsa/decode.h) against the CPU model on the demo model: dense logits and
// greedy tokens against forward() and generate(), sparsified logits against forward() with the
// ActivationSparsifier at the same thresholds, calibration against the CPU's activation profile,
// graph replay against eager launches, and the cuBLAS baseline against the sparse kernel.
// The plan checks run everywhere; the device tests skip without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "family_fixtures.h"
#include "golden_prune.h"
#include "sparsa/activations.h"
#include "sparsa/cuda.h"
#include "sparsa/decode.h"
#include "sparsa/generate.h"
#include "sparsa/model.h"
#include "sparsa/synth.h"
#include "test_support.h"

namespace sparsa {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

constexpr int64_t kSteps = 16;

const Model& demo_model() {
  static const Model m = load_model(test::llama_demo_model());
  return m;
}

// CPU logits [n, vocab] of the window tokens[0..n), optionally with activations sparsified.
Tensor cpu_logits(const Model& m, const std::vector<int32_t>& tokens, int64_t n, Observer* obs = nullptr) {
  Tensor logits;
  ForwardBuffers buf;
  forward(m, tokens.data(), n, logits, buf, obs);
  return logits;
}

// max |a - row| / max |row| for row `r` of ref.
double max_rel_diff(const std::vector<float>& a, const Tensor& ref, int64_t r) {
  const int64_t vocab = ref.dim(1);
  const float* row = ref.ptr() + r * vocab;
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[static_cast<size_t>(i)]) - row[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(row[i])));
  }
  return diff / scale;
}

std::vector<int32_t> cpu_greedy(const Model& m, const std::vector<int32_t>& prompt, int64_t steps) {
  GenerateOptions g;
  g.steps = steps;
  g.temperature = 0.0f;
  return generate(m, prompt, g, [](int32_t, int32_t) {});
}

DecodeOptions options(GpuPrecision p, int64_t max_seq) {
  DecodeOptions o;
  o.precision = p;
  o.max_seq = max_seq;
  return o;
}

// ---- everywhere ----

TEST(DecodePlan, MatricesOfTheDemoModel) {
  const ModelConfig c = load_hf_config(test::llama_demo_model() / "config.json");
  const auto mats = decode_matrices(c, GpuPrecision::kBf16);
  ASSERT_EQ(mats.size(), 5u);
  // d 384, 6 heads and 2 KV heads of 64, d_ff 1024, vocab 8192, 6 layers
  const struct {
    const char* name;
    int64_t in, out, count;
  } want[] = {{"qkv", 384, 384 + 2 * 128, 6}, {"o", 384, 384, 6}, {"gate_up", 384, 2048, 6},
              {"down", 1024, 384, 6},        {"lm_head", 384, 8192, 1}};
  for (size_t i = 0; i < mats.size(); ++i) {
    EXPECT_EQ(mats[i].name, want[i].name);
    EXPECT_EQ(mats[i].shape.in, want[i].in) << want[i].name;
    EXPECT_EQ(mats[i].shape.out, want[i].out) << want[i].name;
    EXPECT_EQ(mats[i].count, want[i].count) << want[i].name;
    EXPECT_EQ(mats[i].shape.weight_type, DType::BF16);
    EXPECT_EQ(mats[i].bytes(), want[i].in * want[i].out * 2);
  }
  EXPECT_EQ(mats[3].input, ObsPoint::kDownIn);
  EXPECT_FALSE(mats[4].has_input_point);
  EXPECT_EQ(decode_matrices(c, GpuPrecision::kFp32)[0].bytes(), 384 * 640 * 4);
}

TEST(DecodePlan, RefusesWhatItCannotRun) {
  const ModelConfig c = load_hf_config(test::llama_demo_model() / "config.json");
  EXPECT_NO_THROW(check_decode_supported(c, DecodeOptions{}));
  ModelConfig biased = c;
  biased.attention_bias = true;  // q/k/v biases (Qwen2) run; o_proj's and the MLP's do not
  EXPECT_NO_THROW(check_decode_supported(biased, DecodeOptions{}));
  for (bool ModelConfig::*bias : {&ModelConfig::o_proj_bias, &ModelConfig::mlp_bias}) {
    ModelConfig b = c;
    b.*bias = true;
    EXPECT_NE(test::bad_input_message([&] { check_decode_supported(b, DecodeOptions{}); }).find("bias"),
              std::string::npos);
  }
  ModelConfig opt = c;
  opt.arch = Arch::kOpt;
  test::bad_input_message([&] { check_decode_supported(opt, DecodeOptions{}); });
  EXPECT_NE(test::bad_input_message([&] { check_decode_supported(c, options(GpuPrecision::kBf16, 513)); })
                .find("max_seq"),
            std::string::npos);
  const ActivationThresholds dense = dense_thresholds(3);
  ASSERT_EQ(dense.t.size(), 3u);
  for (const auto& layer : dense.t)
    for (float t : layer) EXPECT_LT(t, 0.0f);
}

// The family fixtures the decoder runs (the LLaMA family: Llama 3, Llama 3.2's llama3 RoPE scaling
// and tied embeddings, Mistral's sliding window, Qwen2's q/k/v biases, Qwen3's q/k norms; which
// ones it refuses is test-families' FamilyRefusals).
const std::vector<std::string> kDecodedFamilies = {"llama3", "llama32", "mistral", "qwen2", "qwen3"};

TEST(DecodePlan, WithoutADeviceTheDecoderSaysSo) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    GpuDecoder::synthetic(synth_config("tiny"), 1, 0.02f, DecodeOptions{});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime) << e.what();
  }
}

// ---- on the device ----

TEST(GpuDecode, DenseFp32MatchesCpuLogitsAndGenerate) {
  SKIP_WITHOUT_GPU();
  const Model& m = demo_model();
  const std::vector<int32_t> prompt = {1, 403, 1629};
  const std::vector<int32_t> cpu_tokens = cpu_greedy(m, prompt, kSteps);  // kSteps + 1 tokens
  const Tensor ref = cpu_logits(m, cpu_tokens, kSteps);
  GpuDecoder d(m, options(GpuPrecision::kFp32, 32));
  d.reset(prompt);
  for (int64_t i = 0; i < kSteps; ++i) {
    d.step();
    EXPECT_LT(max_rel_diff(d.logits(), ref, i), 1e-4) << "position " << i;
  }
  EXPECT_EQ(d.tokens(), cpu_tokens);
}

// Every decoded family fixture, fp32: logits within 1e-4 of the CPU forward at every position and
// the greedy tokens of generate(), over more positions than Mistral's 16-key window.
class GpuDecodeFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuDecodeFamily, DenseFp32MatchesCpuLogitsAndGenerate) {
  SKIP_WITHOUT_GPU();
  const Model m = load_model(test::family_fixture(GetParam()));
  const test::FamilyReference ref = test::load_family_reference(GetParam());
  const std::vector<int32_t> prompt(ref.tokens.data.begin(), ref.tokens.data.begin() + 4);
  const int64_t steps = 40;
  const std::vector<int32_t> cpu_tokens = cpu_greedy(m, prompt, steps);
  const Tensor want = cpu_logits(m, cpu_tokens, steps);
  GpuDecoder d(m, options(GpuPrecision::kFp32, steps + 8));
  d.reset(prompt);
  double worst = 0;
  for (int64_t i = 0; i < steps; ++i) {
    d.step();
    worst = std::max(worst, max_rel_diff(d.logits(), want, i));
  }
  std::printf("%s: %lld steps, worst max|dlogit| / max|logit| %.2e\n", GetParam().c_str(), static_cast<long long>(steps),
              worst);
  EXPECT_LT(worst, 1e-4);
  EXPECT_EQ(d.tokens(), cpu_tokens);
}

INSTANTIATE_TEST_SUITE_P(Families, GpuDecodeFamily, ::testing::ValuesIn(kDecodedFamilies));

TEST(GpuDecode, Bf16CloseToCpu) {
  SKIP_WITHOUT_GPU();
  const Model& m = demo_model();
  const std::vector<int32_t> tokens = cpu_greedy(m, {1, 403, 1629}, kSteps);
  const Tensor ref = cpu_logits(m, tokens, kSteps);
  GpuDecoder d(m, options(GpuPrecision::kBf16, 32));
  d.reset(std::vector<int32_t>(tokens.begin(), tokens.begin() + kSteps));  // every position forced
  double worst = 0;
  for (int64_t i = 0; i < kSteps; ++i) {
    d.step();
    worst = std::max(worst, max_rel_diff(d.logits(), ref, i));
  }
  std::printf("bf16 decode: worst max|Δlogit| / max|logit| = %.4f\n", worst);
  EXPECT_LT(worst, 3e-2);
}

TEST(GpuDecode, GraphReplayEqualsEagerLaunches) {
  SKIP_WITHOUT_GPU();
  GpuDecoder d(demo_model(), options(GpuPrecision::kBf16, 32));
  std::vector<std::vector<float>> graph, eager;
  d.reset({1, 403});
  for (int i = 0; i < 6; ++i) d.step(), graph.push_back(d.logits());
  const auto graph_tokens = d.tokens();
  d.reset({1, 403});
  for (int i = 0; i < 6; ++i) d.step_eager(), eager.push_back(d.logits());
  EXPECT_EQ(graph, eager);
  EXPECT_EQ(d.tokens(), graph_tokens);
}

TEST(GpuDecode, SparseMatchesMaskedCpuAndCalibratesLikeActs) {
  SKIP_WITHOUT_GPU();
  const Model& m = demo_model();
  const int64_t n = 24;
  GpuDecoder d(m, options(GpuPrecision::kFp32, 32));
  const auto calibrated = calibrate_decode_thresholds(d, {1}, n, {0.5}, 0);  // dense activations, as acts
  ASSERT_EQ(calibrated.size(), 1u);
  const ActivationThresholds& t = calibrated[0];
  std::vector<int32_t> tokens = d.tokens();  // tokens 0..n-1 were the calibration's inputs
  tokens.resize(static_cast<size_t>(n));

  // the same thresholds as `sparsa acts` over the same window
  TensorI32 window;
  window.shape = {1, n};
  window.data = tokens;
  const ActivationThresholds cpu_t = capture_activation_profile(m, window).thresholds(0.5);
  for (int64_t l = 0; l < m.config.num_layers; ++l)
    for (int p = 0; p < kNumObsPoints; ++p) {
      const float a = t.t[l][p], b = cpu_t.t[l][p];
      EXPECT_NEAR(a, b, 5e-3 * std::fabs(b)) << "layer " << l << " " << obs_point_name(static_cast<ObsPoint>(p));
    }

  // decoding with them equals the CPU forward with those activations zeroed
  ActivationSparsifier sparsifier(t);
  const Tensor ref = cpu_logits(m, tokens, n, &sparsifier);
  const Tensor dense = cpu_logits(m, tokens, n);
  d.set_thresholds(t);
  d.reset(tokens);
  double worst = 0, effect = 0;
  for (int64_t i = 0; i < n; ++i) {
    d.step();
    const auto got = d.logits();
    worst = std::max(worst, max_rel_diff(got, ref, i));
    effect = std::max(effect, max_rel_diff(got, dense, i));
  }
  std::printf("s=0.5 decode: max rel diff to masked CPU %.2e, to dense CPU %.2e\n", worst, effect);
  // A value within rounding of its threshold may fall on either side on the two machines; the
  // tolerance leaves room for a few such flips and stays far below what the masking changes.
  EXPECT_LT(worst, 1e-2);
  EXPECT_GT(effect, 10 * worst);  // the thresholds did change the result

  // the first block's input is the same as in calibration: half of it is inactive
  const auto fractions = decode_inactive_fractions(d, tokens, n);
  ASSERT_EQ(fractions.size(), static_cast<size_t>(m.config.num_layers));
  EXPECT_NEAR(fractions[0][static_cast<int>(ObsPoint::kAttnIn)], 0.5, 5e-3);
  for (const auto& layer : fractions)
    for (double f : layer) EXPECT_GT(f, 0.3);
}

// Calibrated over the positions the decode covers and refined once on upstream-sparsified
// activations, every point's measured inactive fraction (mean over blocks) lands within 0.03 of
// its target when decoding those positions again (issue #19, item 4). The same check on synthetic
// 7B shapes is bench-decode's table.
TEST(GpuDecode, RefinedThresholdsHitTheirTargetsAtEveryPoint) {
  SKIP_WITHOUT_GPU();
  const Model& m = demo_model();
  const int64_t n = 192;
  GpuDecoder d(m, options(GpuPrecision::kFp32, n + 8));
  for (double s : {0.25, 0.5}) {
    SCOPED_TRACE(s);
    d.set_thresholds(calibrate_decode_thresholds(d, {1}, n, {s}, 1)[0]);
    const auto f = decode_inactive_fractions(d, {1}, n);
    for (int p = 0; p < kNumObsPoints; ++p) {
      double mean = 0;
      for (const auto& row : f) mean += row[static_cast<size_t>(p)] / static_cast<double>(f.size());
      std::printf("s=%.2f %s: %.4f\n", s, obs_point_name(static_cast<ObsPoint>(p)).data(), mean);
      EXPECT_NEAR(mean, s, 0.03) << obs_point_name(static_cast<ObsPoint>(p));
    }
  }
}

TEST(GpuDecode, CublasBaselineMatchesSparseKernelOnSyntheticModel) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = synth_config("tiny");
  GpuDecoder a = GpuDecoder::synthetic(c, 7, 0.02f, options(GpuPrecision::kFp32, 16));
  GpuDecoder b = GpuDecoder::synthetic(c, 7, 0.02f, options(GpuPrecision::kFp32, 16));
  b.set_linears(DecodeLinears::kCublas);
  a.reset({1});
  b.reset({1});
  for (int i = 0; i < 8; ++i) a.step(), b.step();
  const auto la = a.logits(), lb = b.logits();
  double diff = 0, scale = 0, sq = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(la[i]) - lb[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(la[i])));
    sq += static_cast<double>(la[i]) * la[i];
  }
  const double rms = std::sqrt(sq / static_cast<double>(la.size()));
  std::printf("synthetic tiny: logit rms %.3f, max %.3f, cuBLAS vs sparse kernel %.2e\n", rms, scale, diff);
  EXPECT_LT(diff, 1e-4 * scale);
  EXPECT_EQ(a.tokens(), b.tokens());
  // N(0, 0.02²) weights: the logits are sums of 256 unit-scale terms times 0.02, rms about 0.3
  EXPECT_GT(rms, 0.1);
  EXPECT_LT(rms, 1.0);
}

TEST(GpuDecode, RefusesBadUse) {
  SKIP_WITHOUT_GPU();
  GpuDecoder d = GpuDecoder::synthetic(synth_config("tiny"), 1, 0.02f, options(GpuPrecision::kBf16, 4));
  test::bad_input_message([&] { d.step(); });  // no reset yet
  test::bad_input_message([&] { d.reset({}); });
  test::bad_input_message([&] { d.reset({1, 5000}); });  // vocabulary 1024
  test::bad_input_message([&] { d.reset({1, 2, 3, 4, 5}); });
  test::bad_input_message([&] { d.set_thresholds(dense_thresholds(5)); });
  d.reset({1});
  for (int i = 0; i < 4; ++i) d.step();
  EXPECT_NE(test::bad_input_message([&] { d.step(); }).find("full"), std::string::npos);
  EXPECT_EQ(d.tokens().size(), 5u);
}

}  // namespace
}  // namespace sparsa
