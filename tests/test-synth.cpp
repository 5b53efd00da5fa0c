// Synthetic checkpoints (sparsa synth): real shapes, the promised weight scale, determinism, a
// folder that loads and evaluates, and clear errors. Also the CLI's --device cuda refusal on a
// machine without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"
#include "sparsa/synth.h"
#include "test_support.h"

namespace sparsa {
namespace {

TEST(Synth, PresetsHaveTheRealShapes) {
  const ModelConfig c7 = synth_config("7b");
  EXPECT_EQ(c7.hidden_size, 4096);
  EXPECT_EQ(c7.intermediate_size, 11008);
  EXPECT_EQ(c7.num_layers, 32);
  EXPECT_EQ(c7.num_heads, 32);
  EXPECT_EQ(c7.vocab_size, 32000);
  const ModelConfig c13 = synth_config("13b");
  EXPECT_EQ(c13.hidden_size, 5120);
  EXPECT_EQ(c13.intermediate_size, 13824);
  EXPECT_EQ(c13.num_layers, 40);
  const ModelConfig c70 = synth_config("70b");
  EXPECT_EQ(c70.intermediate_size, 28672);
  EXPECT_EQ(c70.num_kv_heads, 8);
  EXPECT_EQ(c70.head_dim, 128);
  EXPECT_FALSE(test::bad_input_message([] { synth_config("65b"); }).empty());
}

TEST(Synth, WeightsHaveTheRequestedScaleAndAreDeterministic) {
  const ModelConfig c = synth_config("tiny");
  const Model a = synth_model(c, 3), b = synth_model(c, 3), other = synth_model(c, 4);
  const Tensor& w = a.blocks[1].linear(LinearRole::kUp).weight;  // [688, 256]
  double sum = 0, sq = 0;
  for (float v : w.data) {
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(w.numel()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(sd, 0.02, 0.02 * 0.02);  // 176k samples: the standard deviation is within 2 %
  EXPECT_EQ(w.data, b.blocks[1].linear(LinearRole::kUp).weight.data);
  EXPECT_NE(w.data, other.blocks[1].linear(LinearRole::kUp).weight.data);
  EXPECT_NE(w.data, a.blocks[0].linear(LinearRole::kUp).weight.data);  // each tensor its own stream
  for (float v : a.blocks[0].attn_norm.data) EXPECT_EQ(v, 1.0f);
}

TEST(Synth, WrittenFolderLoadsWithTheSameWeights) {
  test::TempDir dir;
  ModelConfig c = synth_config("tiny");
  c.num_kv_heads = 2;
  const Model m = synth_model(c, 9);
  write_hf_model(m, dir.path() / "model", DType::BF16);
  const Model back = load_model(dir.path() / "model");
  EXPECT_EQ(back.config.num_kv_heads, 2);
  EXPECT_EQ(back.config.intermediate_size, 688);
  const Tensor& want = m.blocks[1].linear(LinearRole::kV).weight;
  const Tensor& got = back.blocks[1].linear(LinearRole::kV).weight;
  ASSERT_EQ(got.shape, want.shape);
  for (size_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got.data[i], bf16_to_f32(f32_to_bf16(want.data[i])));
  // Random weights predict nothing: perplexity is near the vocabulary size.
  const TensorI32 tokens = synth_tokens(2, 64, c.vocab_size, 1);
  const double ppl = perplexity(back, tokens).ppl;
  EXPECT_GT(ppl, 0.8 * static_cast<double>(c.vocab_size));
  EXPECT_LT(ppl, 1.25 * static_cast<double>(c.vocab_size));
}

TEST(Synth, TokensAreInRangeAndSeeded) {
  const TensorI32 t = synth_tokens(3, 100, 50, 5);
  ASSERT_EQ(t.shape, (std::vector<int64_t>{3, 100}));
  for (int32_t v : t.data) {
    EXPECT_GE(v, 0);
    EXPECT_LT(v, 50);
  }
  EXPECT_EQ(t.data, synth_tokens(3, 100, 50, 5).data);
  EXPECT_FALSE(test::bad_input_message([] { synth_tokens(0, 10, 10, 1); }).empty());
}

TEST(SynthCli, WritesModelAndCalibrationThatPruneUses) {
  test::TempDir dir;
  const auto out = dir.path() / "s";
  auto r = test::run_sparsa({"synth", "--preset", "tiny", "--layers", "1", "--calib-samples", "2", "--calib-seqlen",
                             "32", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto calib = TensorStore::open(out / "calib-tokens.safetensors")->load_i32("calib");
  EXPECT_EQ(calib.shape, (std::vector<int64_t>{2, 32}));
  r = test::run_sparsa({"prune", "--model", out.string(), "--method", "wanda", "--sparsity", "0.5", "--calib",
                        (out / "calib-tokens.safetensors").string(), "--out", (dir.path() / "p").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = test::run_sparsa({"synth", "--preset", "tiny", "--heads", "3", "--out", (dir.path() / "bad").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
}

TEST(DeviceCli, CudaWithoutAGpuIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  test::TempDir dir;
  // Every command that runs a model takes --device, and refuses it the same way before any work.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"eval", "--device", "cuda", "--eval-limit", "1"},
        {"acts", "--device", "cuda", "--calib", (test::repo_dir() / "data" / "calib-tokens.safetensors").string(),
         "--nsamples", "1"},
        {"study", "--device", "cuda", "--out", (dir.path() / "study").string()},
        {"generate", "--device", "cuda", "--prompt", "Once", "--steps", "4"}}) {
    const auto r = test::run_sparsa(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("no CUDA device"), std::string::npos) << args[0] << ": " << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << args[0] << ": " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "study" / "study.duckdb")) << "study started before refusing";
  const auto bad = test::run_sparsa({"eval", "--gpu-precision", "fp8"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

}  // namespace
}  // namespace sparsa
