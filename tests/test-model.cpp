// The CPU forward pass against the reference: dense perplexity of the demo model on the golden
// eval windows (fp32 PyTorch gives 89.6657; we must be within 0.05 %), and the structure of
// the observation points.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "sparsa/model.h"
#include "sparsa/ops.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

using test::repo_dir;
using test::shared_dir;

const Model& demo_model() {
  static const Model m = load_model(repo_dir() / "models" / "tiny-llama-15m");
  return m;
}

TEST(Model, DemoConfigAsDocumented) {
  const ModelConfig& c = demo_model().config;
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_layers, 6);
  EXPECT_EQ(c.hidden_size, 384);
  EXPECT_EQ(c.num_heads, 6);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 1024);
  EXPECT_EQ(c.vocab_size, 8192);
  EXPECT_FLOAT_EQ(c.rope.theta, 10000.0f);  // read from rope_parameters.rope_theta
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(demo_model().blocks[5].linear(LinearRole::kDown).weight.shape, (std::vector<int64_t>{384, 1024}));
  EXPECT_EQ(hf_linear_name(Arch::kLlama, 5, LinearRole::kDown), "model.layers.5.mlp.down_proj");
}

TEST(Model, DensePerplexityMatchesReference) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto tokens = TensorStore::open(shared_dir() / "golden" / "tokens.safetensors");
  const TensorI32 eval = tokens->load_i32("eval");
  ASSERT_EQ(eval.shape, (std::vector<int64_t>{246, 512}));
  const PerplexityResult r = perplexity(demo_model(), eval);
  EXPECT_EQ(r.predicted_tokens, 246 * 511);
  EXPECT_NEAR(r.ppl, 89.6657, 89.6657 * 0.0005) << "dense perplexity off the fp32 reference";
  std::printf("dense ppl %.4f (reference 89.6657) in %.1f s, %.0f tokens/s\n", r.ppl, r.seconds,
              246 * 512 / r.seconds);
}

// Records what reaches each observation point.
class ShapeRecorder : public Observer {
 public:
  void observe(int64_t layer, ObsPoint p, float* x, int64_t n, int64_t dim) override {
    seen[{layer, obs_point_name(p)}] = {n, dim};
  }
  std::map<std::pair<int64_t, std::string_view>, std::pair<int64_t, int64_t>> seen;
};

TEST(Model, ObservationPointsSeeEveryLinearInput) {
  const Model& m = demo_model();
  std::vector<int32_t> toks(17);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(100 + 37 * i);
  ShapeRecorder rec;
  ForwardBuffers buf;
  Tensor logits;
  forward(m, toks.data(), 17, logits, buf, &rec);
  EXPECT_EQ(rec.seen.size(), 6u * kNumObsPoints);
  const std::pair<int64_t, int64_t> model_dim{17, 384}, ff_dim{17, 1024};
  for (int64_t l = 0; l < 6; ++l) {
    EXPECT_EQ((rec.seen[{l, "attn_in"}]), model_dim);
    EXPECT_EQ((rec.seen[{l, "o_in"}]), model_dim);
    EXPECT_EQ((rec.seen[{l, "mlp_in"}]), model_dim);
    EXPECT_EQ((rec.seen[{l, "down_in"}]), ff_dim);
  }
}

// Zeroing the input of one down_proj changes the output: observers can edit activations.
class ZeroDownIn : public Observer {
 public:
  void observe(int64_t layer, ObsPoint p, float* x, int64_t n, int64_t dim) override {
    if (layer == 3 && p == ObsPoint::kDownIn) std::fill(x, x + n * dim, 0.0f);
  }
};

TEST(Model, ObserverCanModifyActivations) {
  const Model& m = demo_model();
  std::vector<int32_t> toks{1, 450, 2000, 31, 7};
  ForwardBuffers buf;
  Tensor a, b, c;
  forward(m, toks.data(), 5, a, buf);
  ZeroDownIn zero;
  forward(m, toks.data(), 5, b, buf, &zero);
  forward(m, toks.data(), 5, c, buf);
  double diff = 0;
  for (size_t i = 0; i < a.numel(); ++i) diff += std::fabs(a.data[i] - b.data[i]);
  EXPECT_GT(diff, 1.0);
  EXPECT_EQ(a.data, c.data) << "the forward pass must be deterministic";
}

// The causal attention of position t must not depend on later tokens.
TEST(Model, CausalPrefixInvariance) {
  const Model& m = demo_model();
  std::vector<int32_t> toks(130);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>((i * 7919) % 8192);
  ForwardBuffers buf;
  Tensor full, prefix;
  forward(m, toks.data(), 130, full, buf);
  forward(m, toks.data(), 70, prefix, buf);
  double max_diff = 0;
  for (size_t i = 0; i < prefix.numel(); ++i) max_diff = std::max<double>(max_diff, std::fabs(full.data[i] - prefix.data[i]));
  EXPECT_LT(max_diff, 1e-3);
}

// A naive reference for the blocked attention kernel.
TEST(Ops, CausalAttentionMatchesNaive) {
  const int64_t n = 150, heads = 6, kv = 2, hd = 32;
  std::vector<float> q(n * heads * hd), k(n * kv * hd), v(n * kv * hd), out(n * heads * hd);
  uint32_t s = 12345;
  auto rnd = [&] { s = s * 1664525u + 1013904223u; return static_cast<float>(s >> 8) / 16777216.0f - 0.5f; };
  for (auto* vec : {&q, &k, &v})
    for (auto& x : *vec) x = 2.0f * rnd();
  causal_attention(q.data(), k.data(), v.data(), out.data(), n, heads, kv, hd);
  double max_err = 0;
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t g = h / (heads / kv);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> p(i + 1);
      double mx = -1e30, sum = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += q[(i * heads + h) * hd + d] * k[(j * kv + g) * hd + d];
        p[j] = dot / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, p[j]);
      }
      for (auto& x : p) sum += x = std::exp(x - mx);
      for (int64_t d = 0; d < hd; ++d) {
        double o = 0;
        for (int64_t j = 0; j <= i; ++j) o += p[j] / sum * v[(j * kv + g) * hd + d];
        max_err = std::max(max_err, std::fabs(o - out[(i * heads + h) * hd + d]));
      }
    }
  }
  EXPECT_LT(max_err, 1e-5);
}

// torch.nn.LayerNorm by its definition, in double: rows with an offset far from zero (where a
// one-pass variance would lose digits), with and without a bias, and in place.
TEST(Ops, LayerNormMatchesDefinition) {
  const int64_t n = 5, d = 96;
  std::vector<float> x(n * d), w(d), b(d);
  for (int64_t i = 0; i < n * d; ++i) x[i] = 100.0f * static_cast<float>(i / d) + std::sin(0.37f * i);
  for (int64_t i = 0; i < d; ++i) {
    w[i] = 0.5f + 0.01f * i;
    b[i] = 0.1f * std::cos(0.2f * i);
  }
  for (const bool with_bias : {true, false}) {
    std::vector<float> y(x);
    layernorm(y.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), n, d, 1e-5f);
    for (int64_t t = 0; t < n; ++t) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < d; ++i) mean += x[t * d + i] / static_cast<double>(d);
      for (int64_t i = 0; i < d; ++i) var += (x[t * d + i] - mean) * (x[t * d + i] - mean) / static_cast<double>(d);
      for (int64_t i = 0; i < d; ++i) {
        const double want = (x[t * d + i] - mean) / std::sqrt(var + 1e-5) * w[i] + (with_bias ? b[i] : 0.0);
        // 2e-4: the float sums' rounding depends on their order, which the compiler's vectorisation
        // picks (1.01e-4 where it does not vectorise, as under the sanitizers; docs/reliability.md).
        ASSERT_NEAR(y[t * d + i], want, 2e-4) << "row " << t << " col " << i << (with_bias ? " with bias" : "");
      }
    }
  }
}

TEST(Ops, Relu) {
  std::vector<float> x{-2.0f, -0.0f, 0.0f, 1e-30f, 3.5f};
  relu(x.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(x, (std::vector<float>{0.0f, 0.0f, 0.0f, 1e-30f, 3.5f}));
}

}  // namespace
}  // namespace sparsa
