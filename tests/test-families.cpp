// The model families researchers prune today, checked against transformers (issue #18): one small
// random-weight checkpoint per family in tests/data/families/<family>/ (made by make_fixtures.py
// with transformers 5.17: bf16 weights, fp32 reference logits and perplexity on two 64-token
// windows, and the perplexity with the family's feature switched off). sparsa's fp32 CPU logits
// must match within 1e-4 (relative to the largest logit, max over positions), its perplexity
// within 1e-5, and the feature must matter (the perplexity without it differs by > 1e-3), so the
// comparison would fail without it. Then every family is pruned by Wanda and SparseGPT (50 % and
// 2:4), written back with the checkpoint writer and reloaded with identical logits. (That the
// written checkpoints load back in transformers is checked on the GPU machine, not here.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sparsa/checkpoint.h"
#include "sparsa/decode.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"
#include "sparsa/store.h"
#include "sparsa/study.h"
#include "family_fixtures.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using test::family_fixture;
using test::max_relative_logit_error;

const std::vector<std::string>& kFamilies = test::family_names();

fs::path fixture(const std::string& family) { return family_fixture(family); }
json reference_info(const std::string& family) { return test::family_reference_info(family); }

using Reference = test::FamilyReference;
Reference load_reference(const std::string& family) { return test::load_family_reference(family); }

// sparsa's fp32 CPU logits of every window: [windows, seqlen, vocab].
Tensor cpu_logits(const Model& m, const TensorI32& tokens) {
  const int64_t windows = tokens.dim(0), seqlen = tokens.dim(1), vocab = m.config.vocab_size;
  Tensor all({windows, seqlen, vocab});
  ForwardBuffers buf;
  Tensor logits;
  for (int64_t w = 0; w < windows; ++w) {
    forward(m, tokens.ptr() + w * seqlen, seqlen, logits, buf);
    std::copy(logits.data.begin(), logits.data.end(), all.data.begin() + w * seqlen * vocab);
  }
  return all;
}

class Family : public ::testing::TestWithParam<std::string> {};

TEST_P(Family, LogitsAndPerplexityMatchTransformers) {
  const std::string family = GetParam();
  const Model m = load_model(fixture(family));
  const Reference ref = load_reference(family);
  const double err = max_relative_logit_error(ref.logits, cpu_logits(m, ref.tokens), m.config.vocab_size);
  const json info = reference_info(family);
  const double ppl = perplexity(m, ref.tokens).ppl, want = info["perplexity"].get<double>();
  RecordProperty("relative_logit_error", fmt::format("{:.2e}", err));
  RecordProperty("relative_perplexity_error", fmt::format("{:.2e}", std::fabs(ppl - want) / want));
  EXPECT_LE(err, 1e-4) << family;
  EXPECT_LE(std::fabs(ppl - want) / want, 1e-5) << family << ": sparsa " << ppl << ", transformers " << want;
  // The feature the fixture exercises moves the perplexity far more than the tolerance, so the
  // comparison above would fail without it.
  const double off = info["perplexity_feature_off"].get<double>();
  EXPECT_GT(std::fabs(want - off) / want, 1e-3) << family << ": the feature does not matter on this fixture";
}

TEST_P(Family, CheckpointRoundTripsUnchanged) {
  const std::string family = GetParam();
  const Model m = load_model(fixture(family));
  test::TempDir tmp;
  save_pruned_checkpoint(m, fixture(family), tmp.path(), std::nullopt);
  const Model back = load_model(tmp.path());
  const auto a = hf_tensors(m), b = hf_tensors(back);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].tensor->data, b[i].tensor->data) << a[i].name;
  }
}

// The whole study on each family (small sizes; every step of the default study): the dense
// perplexity is transformers', every run is computed and stored, and the report is written.
TEST_P(Family, StudyRunsEveryStep) {
  const std::string family = GetParam();
  test::TempDir tmp;
  const StudyResult r = run_study(test::family_study_options(family, tmp.path()));
  const json& s = r.summary;
  const double want = reference_info(family)["perplexity"].get<double>();
  EXPECT_LE(std::fabs(s["dense_ppl"].get<double>() - want) / want, 1e-5) << family;
  ASSERT_EQ(s["runs"].size(), 4u) << family;
  for (const json& run : s["runs"]) EXPECT_TRUE(std::isfinite(run["ppl"].get<double>())) << family << " " << run.dump();
  EXPECT_TRUE(std::isfinite(s["act_ppl"]["0.5"].get<double>())) << family;
  EXPECT_EQ(r.runs_reused, 0);
  const auto store = Store::open(r.db, Store::Mode::kReadOnly);
  const int64_t blocks = load_hf_config(fixture(family) / "config.json").num_layers;
  EXPECT_EQ(store->query_json("SELECT count(DISTINCT layer) FROM cluster_null")["rows"][0][0].get<int64_t>(), blocks);
  EXPECT_NE(test::read_file(r.report).find("## Co-activation and clustering"), std::string::npos) << family;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Family, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) { return info.param; });

// ---- what each family's config is read as ----

TEST(FamilyConfig, EachFixtureReadsItsFeatures) {
  const ModelConfig l3 = load_hf_config(fixture("llama3") / "config.json");
  EXPECT_EQ(l3.rope.type, RopeType::kLlama3);
  EXPECT_FLOAT_EQ(l3.rope.factor, 8.0f);
  EXPECT_EQ(l3.rope.original_max_position, 32);
  const ModelConfig l32 = load_hf_config(fixture("llama32") / "config.json");
  EXPECT_TRUE(l32.tie_word_embeddings);
  EXPECT_EQ(l32.head_dim, 64);
  const ModelConfig mi = load_hf_config(fixture("mistral") / "config.json");
  EXPECT_EQ(mi.sliding_window, 16);
  EXPECT_TRUE(mi.is_sliding(0) && mi.is_sliding(1));
  const ModelConfig q2 = load_hf_config(fixture("qwen2") / "config.json");
  EXPECT_TRUE(q2.attention_bias && !q2.o_proj_bias && q2.tie_word_embeddings);
  EXPECT_FALSE(q2.is_sliding(0));
  const ModelConfig q3 = load_hf_config(fixture("qwen3") / "config.json");
  EXPECT_EQ(q3.arch, Arch::kQwen3);
  const ModelConfig g = load_hf_config(fixture("gemma3") / "config.json");
  EXPECT_EQ(g.arch, Arch::kGemma3);
  EXPECT_TRUE(g.is_sliding(0) && !g.is_sliding(1) && g.is_sliding(2) && !g.is_sliding(3));
  EXPECT_EQ(g.rope_for(1).type, RopeType::kLinear);
  EXPECT_FLOAT_EQ(g.rope_for(1).theta, 1e6f);
  EXPECT_EQ(g.rope_for(0).type, RopeType::kDefault);
  EXPECT_FLOAT_EQ(g.rope_for(0).theta, 1e4f);
  EXPECT_FLOAT_EQ(g.query_pre_attn_scalar, 48.0f);
  const ModelConfig o = load_hf_config(fixture("opt350m") / "config.json");
  EXPECT_TRUE(o.post_layer_norm);
  EXPECT_FALSE(o.has_final_norm());
  EXPECT_EQ(o.embed_dim, 64);
}

// The llama3 inverse frequencies on Llama 3.1's own settings: the highest frequencies unchanged,
// the lowest divided by the factor, the band between blended.
TEST(FamilyConfig, Llama3InverseFrequencies) {
  RopeParams p{.type = RopeType::kLlama3, .theta = 500000.0f, .factor = 8.0f, .low_freq_factor = 1.0f,
               .high_freq_factor = 4.0f, .original_max_position = 8192};
  const std::vector<float> f = rope_inv_freq(p, 128);
  p.type = RopeType::kDefault;
  const std::vector<float> base = rope_inv_freq(p, 128);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_EQ(f[0], base[0]);
  EXPECT_FLOAT_EQ(f[63], base[63] / 8.0f);
  int blended = 0;
  for (size_t i = 0; i < f.size(); ++i)
    if (f[i] != base[i] && f[i] != base[i] / 8.0f) {
      ++blended;
      EXPECT_GT(f[i], base[i] / 8.0f);
      EXPECT_LT(f[i], base[i]);
    }
  EXPECT_GT(blended, 0);
}

// ---- refusals: one line naming what is not supported ----

std::string refusal(const fs::path& dir, const json& config) {
  test::write_file(dir / "config.json", config.dump());
  return test::bad_input_message([&] { load_hf_config(dir / "config.json"); });
}

json fixture_config(const std::string& family) {
  return json::parse(test::read_file(fixture(family) / "config.json"));
}

TEST(FamilyRefusals, UnsupportedRopeTypesAreNamed) {
  test::TempDir tmp;
  for (const char* type : {"yarn", "dynamic", "longrope", "su", "ntk"}) {
    json j = fixture_config("llama3");
    j["rope_parameters"]["rope_type"] = type;
    const std::string msg = refusal(tmp.path(), j);
    EXPECT_NE(msg.find(std::string("'") + type + "'"), std::string::npos) << msg;
    EXPECT_TRUE(test::one_line(msg + "\n")) << msg;
    // the older spelling: rope_theta + rope_scaling {"type": ...}
    j.erase("rope_parameters");
    j["rope_theta"] = 500000.0;
    j["rope_scaling"] = {{"type", type}, {"factor", 4.0}};
    EXPECT_NE(refusal(tmp.path(), j).find(type), std::string::npos);
  }
}

TEST(FamilyRefusals, IncompleteRopeScalingNamesTheField) {
  test::TempDir tmp;
  for (const char* field : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    json j = fixture_config("llama3");
    j["rope_parameters"].erase(field);
    EXPECT_NE(refusal(tmp.path(), j).find(std::string("rope_parameters.") + field), std::string::npos) << field;
  }
  json j = fixture_config("llama3");
  j["rope_parameters"]["factor"] = 0;
  EXPECT_NE(refusal(tmp.path(), j).find("rope_parameters.factor"), std::string::npos);
  j = fixture_config("llama3");
  j["rope_parameters"]["high_freq_factor"] = 0.5;
  EXPECT_NE(refusal(tmp.path(), j).find("high_freq_factor"), std::string::npos);
  j = fixture_config("gemma3");
  j["rope_parameters"]["full_attention"]["rope_type"] = "yarn";
  EXPECT_NE(refusal(tmp.path(), j).find("rope_parameters.full_attention.rope_type 'yarn'"), std::string::npos);
  j = fixture_config("gemma3");
  j["rope_parameters"].erase("sliding_attention");
  EXPECT_NE(refusal(tmp.path(), j).find("rope_parameters.sliding_attention"), std::string::npos);
  j = fixture_config("llama3");
  j["rope_parameters"]["partial_rotary_factor"] = 0.5;
  EXPECT_NE(refusal(tmp.path(), j).find("partial_rotary_factor"), std::string::npos);
}

TEST(FamilyRefusals, GemmaFeaturesOutsideTheTextDecoderAreNamed) {
  test::TempDir tmp;
  json j = fixture_config("gemma3");
  j["model_type"] = "gemma3";
  EXPECT_NE(refusal(tmp.path(), j).find("gemma3_text"), std::string::npos);
  j = fixture_config("gemma3");
  j["hidden_activation"] = "gelu";
  EXPECT_NE(refusal(tmp.path(), j).find("'gelu'"), std::string::npos);
  j = fixture_config("gemma3");
  j["use_bidirectional_attention"] = true;
  EXPECT_NE(refusal(tmp.path(), j).find("use_bidirectional_attention"), std::string::npos);
  j = fixture_config("gemma3");
  j["layer_types"][1] = "chunked_attention";
  EXPECT_NE(refusal(tmp.path(), j).find("'chunked_attention'"), std::string::npos);
  j = fixture_config("gemma3");
  j["layer_types"].erase(0);
  EXPECT_NE(refusal(tmp.path(), j).find("layer_types"), std::string::npos);
  j = fixture_config("gemma3");
  j["final_logit_softcapping"] = "30";
  EXPECT_NE(refusal(tmp.path(), j).find("final_logit_softcapping"), std::string::npos);
}

// Without layer_types, Gemma 3 has every sliding_window_pattern-th layer global (transformers'
// rule), and Qwen with use_sliding_window slides from max_window_layers on.
TEST(FamilyConfig, LayerTypesWithoutTheList) {
  test::TempDir tmp;
  json j = fixture_config("gemma3");
  j.erase("layer_types");
  j["sliding_window_pattern"] = 2;
  test::write_file(tmp / "config.json", j.dump());
  ModelConfig c = load_hf_config(tmp / "config.json");
  EXPECT_TRUE(c.is_sliding(0) && !c.is_sliding(1) && c.is_sliding(2) && !c.is_sliding(3));
  j = fixture_config("qwen2");
  j.erase("layer_types");
  j["use_sliding_window"] = true;
  j["sliding_window"] = 8;
  j["max_window_layers"] = 1;
  test::write_file(tmp / "config.json", j.dump());
  c = load_hf_config(tmp / "config.json");
  EXPECT_EQ(c.sliding_window, 8);
  EXPECT_TRUE(!c.is_sliding(0) && c.is_sliding(1));
}

// The GPU path runs none of the new features yet: it must refuse each one, naming it, rather
// than compute it wrongly.
// The GPU forward (perplexity, pruning) runs every family; the GPU decoder the LLaMA family only,
// and it names the feature it lacks.
// The GPU decoder runs the LLaMA family's fixtures (Llama 3's and 3.2's llama3 RoPE scaling,
// Mistral's sliding window, Qwen2's q/k/v biases, Qwen3's q/k norms: test-gpu-decode compares each
// with the CPU on a GPU) and names the feature it lacks for the others.
TEST(FamilyRefusals, GpuDecoderNamesTheFeatureItDoesNotRun) {
  const std::vector<std::pair<std::string, std::string>> refused = {{"gemma3", "(1 + w) RMSNorm"}, {"opt350m", "OPT"}};
  DecodeOptions opt;
  opt.max_seq = 64;
  for (const auto& [family, feature] : refused) {
    const ModelConfig c = load_hf_config(fixture(family) / "config.json");
    EXPECT_NO_THROW(check_gpu_supported(c)) << family;
    const std::string msg = test::bad_input_message([&] { check_decode_supported(c, opt); });
    EXPECT_NE(msg.find(feature), std::string::npos) << family << ": " << msg;
    EXPECT_NE(msg.find("--device cpu"), std::string::npos) << msg;
  }
  for (const std::string family : {"llama3", "llama32", "mistral", "qwen2", "qwen3"}) {
    const ModelConfig c = load_hf_config(fixture(family) / "config.json");
    EXPECT_NO_THROW(check_gpu_supported(c)) << family;
    EXPECT_NO_THROW(check_decode_supported(c, opt)) << family;
  }
}

// ---- pruning ----

struct PruneCase {
  std::string family;
  PruneMethod method;
  std::string target;  // "0.5" or "2:4"
};

std::string prune_case_name(const ::testing::TestParamInfo<PruneCase>& info) {
  const auto& p = info.param;
  return p.family + "_" + std::string(prune_method_name(p.method)) + (p.target == "2:4" ? "_2of4" : "_u50");
}

std::vector<PruneCase> prune_cases() {
  std::vector<PruneCase> out;
  for (const auto& f : kFamilies)
    for (const PruneMethod m : {PruneMethod::kWanda, PruneMethod::kSparseGPT})
      for (const char* t : {"0.5", "2:4"}) out.push_back({f, m, t});
  return out;
}

class FamilyPrune : public ::testing::TestWithParam<PruneCase> {};

// 4 random windows of 64 tokens: enough statistics for every linear of the tiny models.
TensorI32 calibration(int64_t vocab) {
  TensorI32 calib({4, 64});
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  for (auto& t : calib.data) t = token(rng);
  return calib;
}

bool is_linear_weight(const Model& m, const std::string& name) {
  for (int64_t l = 0; l < m.config.num_layers; ++l)
    for (const LinearRole r : arch_info(m.config.arch).roles)
      if (name == hf_linear_name(m.config.arch, l, r) + ".weight") return true;
  return false;
}

TEST_P(FamilyPrune, EveryLinearHasTheSparsityAndTheRestIsUntouched) {
  const PruneCase& p = GetParam();
  const Model dense = load_model(fixture(p.family));
  Model m = load_model(fixture(p.family));
  PruneOptions opt;
  opt.method = p.method;
  opt.target = p.target == "2:4" ? parse_nm(p.target) : parse_sparsity(p.target);
  const PruneResult r = prune_model(m, calibration(m.config.vocab_size), opt);
  ASSERT_EQ(r.linears.size(), static_cast<size_t>(m.config.num_layers) * arch_info(m.config.arch).roles.size());
  for (const LinearPruneResult& l : r.linears) {
    const Tensor& w = m.blocks[static_cast<size_t>(l.layer)].linear(l.role).weight;
    const double pruned = static_cast<double>(l.mask.count()) / static_cast<double>(w.numel());
    if (opt.target.is_nm()) {
      EXPECT_TRUE(mask_is_nm(l.mask, 2, 4)) << l.name;
      EXPECT_DOUBLE_EQ(pruned, 0.5) << l.name;
    } else {  // Wanda: exactly half of each row; SparseGPT: half of each block, ties included
      EXPECT_NEAR(pruned, 0.5, p.method == PruneMethod::kWanda ? 0.0 : 0.01) << l.name;
    }
    for (size_t i = 0; i < w.numel(); ++i)
      if (l.mask.pruned[i]) ASSERT_EQ(w.data[i], 0.0f) << l.name << " [" << i << "]";
  }
  // norms, q/k norms, biases, embeddings, positions, projections: never pruned, never updated
  const auto before = hf_tensors(dense), after = hf_tensors(static_cast<const Model&>(m));
  ASSERT_EQ(before.size(), after.size());
  int untouched = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (is_linear_weight(m, before[i].name)) continue;
    EXPECT_EQ(before[i].tensor->data, after[i].tensor->data) << before[i].name;
    ++untouched;
  }
  EXPECT_GE(untouched, 3);

  // Written back (fp32, so SparseGPT's updated weights are kept exactly) and reloaded: the same logits.
  test::TempDir tmp;
  save_pruned_checkpoint(m, fixture(p.family), tmp.path(), DType::F32);
  const Model back = load_model(tmp.path());
  const TensorI32 tokens = load_reference(p.family).tokens;
  EXPECT_EQ(cpu_logits(m, tokens).data, cpu_logits(back, tokens).data);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FamilyPrune, ::testing::ValuesIn(prune_cases()), prune_case_name);

// ---- the CLI ----

TEST(FamilyCli, EvalReportsTransformersPerplexity) {
  const std::string family = "gemma3";
  const auto r = test::run_sparsa({"eval", "--model", fixture(family).string(), "--eval-tokens",
                                   (fixture(family) / "reference.safetensors").string(), "--eval-key", "tokens", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double ppl = json::parse(r.out)["ppl"].get<double>(), want = reference_info(family)["perplexity"].get<double>();
  EXPECT_LE(std::fabs(ppl - want) / want, 1e-5) << ppl << " vs " << want;
}

TEST(FamilyCli, UnsupportedFeatureIsOneLineExitTwo) {
  test::TempDir tmp;
  fs::copy(fixture("llama3"), tmp.path(), fs::copy_options::recursive);
  json j = fixture_config("llama3");
  j["rope_parameters"]["rope_type"] = "yarn";
  test::write_file(tmp / "config.json", j.dump());
  const auto r = test::run_sparsa({"eval", "--model", tmp.path().string(), "--eval-tokens",
                                   (tmp / "reference.safetensors").string(), "--eval-key", "tokens"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("'yarn'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sparsa
