// The OPT family against the reference: the fp16 sharded tiny-opt-14m checkpoint loads under
// its HF names, dense perplexity on golden eval is transformers' fp32 58.0304 (within 0.05 %),
// project_in/project_out are wired where word_embed_proj_dim differs, and broken configs are
// refused with exit 2 and one line naming the fault.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "golden_prune.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::shared_dir;

const Model& opt_model() {
  static const Model m = load_model(test::opt_demo_model());
  return m;
}

TEST(OptModel, ConfigAsInConfigJson) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const ModelConfig& c = opt_model().config;
  EXPECT_EQ(c.arch, Arch::kOpt);
  EXPECT_EQ(c.model_type, "opt");
  EXPECT_EQ(c.num_layers, 6);
  EXPECT_EQ(c.hidden_size, 384);
  EXPECT_EQ(c.num_heads, 6);
  EXPECT_EQ(c.num_kv_heads, 6);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 1536);  // ffn_dim
  EXPECT_EQ(c.embed_dim, 384);           // word_embed_proj_dim: no projections
  EXPECT_FALSE(c.has_projections());
  EXPECT_EQ(c.vocab_size, 8192);
  EXPECT_EQ(c.max_position, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias && c.o_proj_bias && c.mlp_bias && c.norm_bias);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
}

// Our names for the model's tensors are exactly the checkpoint's (the index lists 4 + 16 per block).
TEST(OptModel, TensorNamesAreTheCheckpointsNames) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const json index = json::parse(test::read_file(test::opt_demo_model() / "model.safetensors.index.json"));
  std::set<std::string> expected;
  for (const auto& [name, file] : index["weight_map"].items()) expected.insert(name);
  ASSERT_EQ(expected.size(), 4u + 6u * 16u);
  std::set<std::string> ours;
  for (const HfConstTensor& t : hf_tensors(opt_model())) ours.insert(t.name);
  EXPECT_EQ(ours, expected);
  EXPECT_EQ(hf_linear_name(Arch::kOpt, 5, LinearRole::kDown), "model.decoder.layers.5.fc2");
  EXPECT_EQ(hf_linear_name(Arch::kOpt, 0, LinearRole::kO), "model.decoder.layers.0.self_attn.out_proj");
  EXPECT_EQ(opt_model().pos_embed.shape, (std::vector<int64_t>{514, 384}));
  EXPECT_EQ(opt_model().lm_head.data, opt_model().embed.data);  // tied
}

TEST(OptModel, DensePerplexityMatchesReference) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto tokens = TensorStore::open(shared_dir() / "golden" / "tokens.safetensors");
  const PerplexityResult r = perplexity(opt_model(), tokens->load_i32("eval"));
  EXPECT_EQ(r.predicted_tokens, 246 * 511);
  EXPECT_NEAR(r.ppl, 58.0304, 58.0304 * 0.0005) << "dense perplexity off the fp32 reference";
  std::printf("OPT dense ppl %.4f (reference 58.0304) in %.1f s\n", r.ppl, r.seconds);
}

// Records what reaches each observation point, and whether fc2's input is a ReLU output.
class Recorder : public Observer {
 public:
  void observe(int64_t layer, ObsPoint p, float* x, int64_t n, int64_t dim) override {
    seen[{layer, obs_point_name(p)}] = {n, dim};
    if (p == ObsPoint::kDownIn)
      for (int64_t i = 0; i < n * dim; ++i) negative_down_in += x[i] < 0.0f;
  }
  std::map<std::pair<int64_t, std::string_view>, std::pair<int64_t, int64_t>> seen;
  int64_t negative_down_in = 0;
};

TEST(OptModel, ObservationPointsSeeEveryLinearInput) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  std::vector<int32_t> toks(23);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(5 + 311 * i % 8000);
  Recorder rec;
  ForwardBuffers buf;
  Tensor logits;
  forward(opt_model(), toks.data(), 23, logits, buf, &rec);
  EXPECT_EQ(rec.seen.size(), 6u * kNumObsPoints);
  for (int64_t l = 0; l < 6; ++l) {
    EXPECT_EQ((rec.seen[{l, "attn_in"}]), (std::pair<int64_t, int64_t>{23, 384}));
    EXPECT_EQ((rec.seen[{l, "o_in"}]), (std::pair<int64_t, int64_t>{23, 384}));
    EXPECT_EQ((rec.seen[{l, "mlp_in"}]), (std::pair<int64_t, int64_t>{23, 384}));
    EXPECT_EQ((rec.seen[{l, "down_in"}]), (std::pair<int64_t, int64_t>{23, 1536}));
  }
  EXPECT_EQ(rec.negative_down_in, 0) << "fc2's input is relu(fc1(x))";
}

// A copy of the model folder whose config.json is `config` (the weights are links to the originals).
fs::path folder_with_config(const test::TempDir& tmp, const json& config) {
  const fs::path dir = tmp / "opt";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(test::opt_demo_model()))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dir / e.path().filename());
  test::write_file(dir / "config.json", config.dump(2));
  return dir;
}

json opt_config() { return json::parse(test::read_file(test::opt_demo_model() / "config.json")); }

// `sparsa eval` on the folder exits 2 with one line containing `needle`.
void expect_eval_refuses(const fs::path& folder, const std::string& needle) {
  const auto r = test::run_sparsa({"eval", "--model", folder.string(), "--eval-limit", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(OptModelCli, PositionRowsMustBeMaxPositionPlusTwo) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::TempDir tmp;
  json c = opt_config();
  c["max_position_embeddings"] = 1024;  // the table has 514 rows, not 1026
  expect_eval_refuses(folder_with_config(tmp, c), "embed_positions.weight has 514 rows but max_position_embeddings + 2 = 1026");
}

TEST(OptModelCli, HiddenSizeMustDivideByHeads) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::TempDir tmp;
  json c = opt_config();
  c["num_attention_heads"] = 5;
  expect_eval_refuses(folder_with_config(tmp, c), "hidden_size (384) is not divisible by num_attention_heads (5)");
}

TEST(OptModelCli, OtherActivationIsRefused) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::TempDir tmp;
  json c = opt_config();
  c["activation_function"] = "gelu";
  expect_eval_refuses(folder_with_config(tmp, c), "activation_function 'gelu'");
}

// word_embed_proj_dim > hidden_size: embeddings padded with zero columns, project_in = [I 0],
// project_out = [I; 0]. The padded model computes exactly what the original does, so its logits
// must match; a wrong shape, order or missing projection would not.
TEST(OptModel, ProjectionsWhenEmbedDimDiffers) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const Model& m = opt_model();
  const int64_t d = 384, e = 400, vocab = 8192;
  const auto source = TensorStore::open(test::opt_demo_model());
  std::vector<TensorToWrite> tensors;
  std::vector<std::unique_ptr<Tensor>> owned;
  const auto add = [&](const std::string& name, Tensor t) {
    owned.push_back(std::make_unique<Tensor>(std::move(t)));
    tensors.push_back({name, DType::F32, owned.back()->shape, owned.back()->ptr()});
  };
  for (const std::string& name : source->names())
    if (name != "model.decoder.embed_tokens.weight") add(name, source->load_f32(name));
  Tensor embed({vocab, e}), project_in({d, e}), project_out({e, d});
  for (int64_t v = 0; v < vocab; ++v)
    for (int64_t i = 0; i < d; ++i) embed.data[static_cast<size_t>(v * e + i)] = m.embed.data[static_cast<size_t>(v * d + i)];
  for (int64_t i = 0; i < d; ++i) {
    project_in.data[static_cast<size_t>(i * e + i)] = 1.0f;
    project_out.data[static_cast<size_t>(i * d + i)] = 1.0f;
  }
  add("model.decoder.embed_tokens.weight", std::move(embed));
  add("model.decoder.project_in.weight", std::move(project_in));
  add("model.decoder.project_out.weight", std::move(project_out));

  test::TempDir tmp;
  json c = opt_config();
  c["word_embed_proj_dim"] = e;
  test::write_file(tmp / "config.json", c.dump(2));
  write_safetensors(tmp / "model.safetensors", tensors, {{"format", "pt"}});
  const Model padded = load_model(tmp.path());
  ASSERT_TRUE(padded.config.has_projections());
  EXPECT_EQ(padded.lm_head.shape, (std::vector<int64_t>{vocab, e}));

  std::vector<int32_t> toks(40);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>((i * 7919) % 8192);
  ForwardBuffers buf;
  Tensor want, got;
  forward(m, toks.data(), 40, want, buf);
  forward(padded, toks.data(), 40, got, buf);
  ASSERT_EQ(got.shape, want.shape);
  double max_diff = 0;
  for (size_t i = 0; i < want.numel(); ++i) max_diff = std::max<double>(max_diff, std::fabs(want.data[i] - got.data[i]));
  EXPECT_LT(max_diff, 1e-3);
}

}  // namespace
}  // namespace sparsa
