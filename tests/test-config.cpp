// load_hf_config: the demo config, the spellings real checkpoints use (rope_theta at the top level
// or under rope_parameters; llama, mistral, qwen2; opt), and bad configs: Error(kBadInput) with one line
// naming the file and the field, and through the CLI exit code 2 with one line on stderr.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::read_file;
using test::repo_dir;
using test::run_sparsa;
using test::TempDir;
using test::write_file;

fs::path demo_model_dir() { return repo_dir() / "models" / "tiny-llama-15m"; }
json demo_config() { return json::parse(read_file(demo_model_dir() / "config.json")); }


// Writes `j` as config.json in `tmp` and loads it.
ModelConfig load(const TempDir& tmp, const json& j) {
  write_file(tmp / "config.json", j.dump(2));
  return load_hf_config(tmp / "config.json");
}

// Writes `text` as config.json, expects Error(kBadInput) and returns its message.
std::string bad_config_message(const TempDir& tmp, const std::string& text) {
  const auto path = tmp / "config.json";
  write_file(path, text);
  try {
    load_hf_config(path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    EXPECT_NE(msg.find(path.string()), std::string::npos) << "does not name the file: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than sparsa::Error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no error for config: " << text;
  return {};
}

TEST(HfConfig, DemoConfig) {
  const ModelConfig c = load_hf_config(demo_model_dir() / "config.json");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 8192);
  EXPECT_EQ(c.hidden_size, 384);
  EXPECT_EQ(c.intermediate_size, 1024);
  EXPECT_EQ(c.num_layers, 6);
  EXPECT_EQ(c.num_heads, 6);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_position, 512);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope.theta, 10000.0f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.q_dim(), 384);
  EXPECT_EQ(c.kv_dim(), 128);
}

// The demo config only has rope_parameters.rope_theta; a different value there must be read
// from there (10000 is also the default, so the demo alone cannot tell).
TEST(HfConfig, RopeThetaFromRopeParameters) {
  TempDir tmp;
  json j = demo_config();
  ASSERT_FALSE(j.contains("rope_theta"));
  j["rope_parameters"]["rope_theta"] = 1000000.0;
  EXPECT_FLOAT_EQ(load(tmp, j).rope.theta, 1000000.0f);
}

TEST(HfConfig, RopeThetaAtTopLevel) {
  TempDir tmp;
  json j = demo_config();
  j.erase("rope_parameters");
  j["rope_theta"] = 500000.0;
  EXPECT_FLOAT_EQ(load(tmp, j).rope.theta, 500000.0f);
  j["rope_theta"] = 500000;  // an integer is a number too
  EXPECT_FLOAT_EQ(load(tmp, j).rope.theta, 500000.0f);
  j["rope_scaling"] = nullptr;  // what older checkpoints write when there is no scaling
  EXPECT_FLOAT_EQ(load(tmp, j).rope.theta, 500000.0f);
  j.erase("rope_theta");
  j.erase("rope_scaling");
  EXPECT_FLOAT_EQ(load(tmp, j).rope.theta, 10000.0f);  // the LLaMA default
}

TEST(HfConfig, RopeThetaNotANumber) {
  TempDir tmp;
  json j = demo_config();
  j["rope_parameters"]["rope_theta"] = "1e4";
  EXPECT_NE(bad_config_message(tmp, j.dump()).find("rope_theta"), std::string::npos);
  j.erase("rope_parameters");
  j["rope_theta"] = "1e4";
  EXPECT_NE(bad_config_message(tmp, j.dump()).find("rope_theta"), std::string::npos);
}

// llama3 and linear scaling are read (tests/test-families.cpp checks them against transformers);
// a scaling without its fields, or a type sparsa does not compute, is refused naming it.
TEST(HfConfig, ScaledRopeIsReadOrRefusedNotComputedWrongly) {
  TempDir tmp;
  json j = demo_config();
  j["rope_parameters"]["rope_type"] = "llama3";
  std::string msg = bad_config_message(tmp, j.dump());
  EXPECT_NE(msg.find("llama3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rope_parameters.factor"), std::string::npos) << msg;

  j["rope_parameters"]["rope_type"] = "linear";
  j["rope_parameters"]["factor"] = 2.0;
  const ModelConfig c = load(tmp, j);
  EXPECT_EQ(c.rope.type, RopeType::kLinear);
  EXPECT_FLOAT_EQ(c.rope.factor, 2.0f);

  j = demo_config();
  j.erase("rope_parameters");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  msg = bad_config_message(tmp, j.dump());
  EXPECT_NE(msg.find("yarn"), std::string::npos) << msg;
}

TEST(HfConfig, OptionalFieldsHaveTheirDefaults) {
  TempDir tmp;
  json j = demo_config();
  for (const char* k : {"num_key_value_heads", "head_dim", "rms_norm_eps", "tie_word_embeddings", "attention_bias",
                        "mlp_bias", "bos_token_id", "eos_token_id", "hidden_act"})
    j.erase(k);
  const ModelConfig c = load(tmp, j);
  EXPECT_EQ(c.num_kv_heads, 6);  // no GQA unless stated
  EXPECT_EQ(c.head_dim, 64);     // hidden_size / num_attention_heads
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
}

TEST(HfConfig, EosAsAListTakesTheFirst) {
  TempDir tmp;
  json j = demo_config();
  j["eos_token_id"] = {7, 9};
  j["tie_word_embeddings"] = true;
  const ModelConfig c = load(tmp, j);
  EXPECT_EQ(c.eos_token_id, 7);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(HfConfig, Mistral) {
  TempDir tmp;
  json j = demo_config();
  j["model_type"] = "mistral";
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = nullptr;
  j.erase("attention_bias");
  j.erase("mlp_bias");
  j.erase("rope_parameters");
  j["rope_theta"] = 1000000.0;
  const ModelConfig c = load(tmp, j);
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_FLOAT_EQ(c.rope.theta, 1000000.0f);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
}

TEST(HfConfig, Qwen2HasQkvBiasesButNoneOnO) {
  TempDir tmp;
  json j = demo_config();
  j["model_type"] = "qwen2";
  j.erase("attention_bias");  // Qwen2 configs do not write it: the biases are always there
  j["tie_word_embeddings"] = true;
  const ModelConfig c = load(tmp, j);
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(HfConfig, LlamaAttentionBiasCoversO) {
  TempDir tmp;
  json j = demo_config();
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  const ModelConfig c = load(tmp, j);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.o_proj_bias);
  EXPECT_TRUE(c.mlp_bias);
}

// ---- bad configs ----

TEST(HfConfig, MissingRequiredFieldNamesTheFieldAndFile) {
  for (const char* field : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "max_position_embeddings", "model_type"}) {
    SCOPED_TRACE(field);
    TempDir tmp;
    json j = demo_config();
    j.erase(field);
    const std::string msg = bad_config_message(tmp, j.dump());
    EXPECT_NE(msg.find(std::string("'") + field + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
    // null is as good as missing
    j = demo_config();
    j[field] = nullptr;
    const std::string msg2 = bad_config_message(tmp, j.dump());
    EXPECT_NE(msg2.find(field), std::string::npos) << msg2;
  }
}

TEST(HfConfig, FieldOfTheWrongTypeOrRangeNamesTheField) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"hidden_size", "384"},   {"hidden_size", 0},          {"hidden_size", -384},
      {"vocab_size", 8192.5},   {"num_hidden_layers", true}, {"num_key_value_heads", 0},
      {"head_dim", "64"},       {"rms_norm_eps", "1e-5"},    {"tie_word_embeddings", "false"},
      {"attention_bias", 0},    {"eos_token_id", "</s>"},
      {"intermediate_size", json::array({1024})},
  };
  for (const auto& [field, value] : cases) {
    SCOPED_TRACE(field + " = " + value.dump());
    TempDir tmp;
    json j = demo_config();
    j[field] = value;
    const std::string msg = bad_config_message(tmp, j.dump());
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
  }
}

TEST(HfConfig, UnsupportedModelTypeIsNamed) {
  for (const char* type : {"gpt2", "opt_but_not_really", ""}) {
    SCOPED_TRACE(type);
    TempDir tmp;
    json j = demo_config();
    j["model_type"] = type;
    const std::string msg = bad_config_message(tmp, j.dump());
    EXPECT_NE(msg.find(std::string("'") + type + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not supported"), std::string::npos) << msg;
  }
  TempDir tmp;
  json j = demo_config();
  j["model_type"] = 7;
  EXPECT_NE(bad_config_message(tmp, j.dump()).find("model_type"), std::string::npos);
}

TEST(HfConfig, UnsupportedActivationIsNamed) {
  TempDir tmp;
  json j = demo_config();
  j["hidden_act"] = "gelu";
  EXPECT_NE(bad_config_message(tmp, j.dump()).find("gelu"), std::string::npos);
}

TEST(HfConfig, HeadsNotAMultipleOfKvHeads) {
  TempDir tmp;
  json j = demo_config();
  j["num_key_value_heads"] = 4;  // 6 heads
  std::string msg = bad_config_message(tmp, j.dump());
  EXPECT_NE(msg.find("num_attention_heads"), std::string::npos) << msg;
  EXPECT_NE(msg.find("num_key_value_heads"), std::string::npos) << msg;
  j["num_key_value_heads"] = 12;  // more KV heads than heads
  msg = bad_config_message(tmp, j.dump());
  EXPECT_NE(msg.find("num_key_value_heads"), std::string::npos) << msg;
}

TEST(HfConfig, ZeroHeadDimIsRefused) {
  TempDir tmp;
  json j = demo_config();
  j.erase("head_dim");
  j["hidden_size"] = 4;  // 4 / 6 heads = 0
  j["num_key_value_heads"] = 6;
  EXPECT_NE(bad_config_message(tmp, j.dump()).find("head_dim"), std::string::npos);
}

TEST(HfConfig, OddHeadDimIsRefused) {
  TempDir tmp;
  json j = demo_config();
  j["head_dim"] = 63;
  EXPECT_NE(bad_config_message(tmp, j.dump()).find("head_dim"), std::string::npos);
}

TEST(HfConfig, NotJsonOrNotAnObject) {
  TempDir tmp;
  EXPECT_NE(bad_config_message(tmp, "{\"model_type\": \"llama\",").find("JSON"), std::string::npos);
  EXPECT_NE(bad_config_message(tmp, "").find("JSON"), std::string::npos);
  EXPECT_NE(bad_config_message(tmp, "[1, 2]").find("object"), std::string::npos);
  EXPECT_NE(bad_config_message(tmp, "\"llama\"").find("object"), std::string::npos);
  // A line break inside the broken text must not reach the message.
  const std::string msg = bad_config_message(tmp, "{\n\n\"a\":\n");
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(HfConfig, MissingFileIsBadInput) {
  TempDir tmp;
  const auto path = tmp / "config.json";
  try {
    load_hf_config(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

// ---- through the CLI: a model folder whose config.json is broken ----

// The demo model's folder with its config replaced by `config_text` (shards linked, not copied).
fs::path model_with_config(const TempDir& tmp, const std::string& config_text) {
  const fs::path dir = tmp / "model";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(demo_model_dir())) {
    const auto name = e.path().filename().string();
    if (name != "config.json") fs::create_symlink(e.path(), dir / name);
  }
  write_file(dir / "config.json", config_text);
  return dir;
}

void expect_eval_fails_naming_config(const fs::path& dir, const std::string& what) {
  const auto r = run_sparsa({"eval", "--model", dir.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << "stderr is not one line: " << r.err;
  EXPECT_NE(r.err.find((dir / "config.json").string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(HfConfigCli, MissingFieldExitsTwoNamingConfigAndField) {
  TempDir tmp;
  json j = demo_config();
  j.erase("hidden_size");
  expect_eval_fails_naming_config(model_with_config(tmp, j.dump(2)), "hidden_size");
}

TEST(HfConfigCli, UnsupportedModelTypeExitsTwo) {
  TempDir tmp;
  json j = demo_config();
  j["model_type"] = "gpt2";
  expect_eval_fails_naming_config(model_with_config(tmp, j.dump(2)), "gpt2");
}

TEST(HfConfigCli, NotJsonExitsTwo) {
  TempDir tmp;
  expect_eval_fails_naming_config(model_with_config(tmp, "{\n  \"model_type\": \"llama\",\n"), "JSON");
}

TEST(HfConfigCli, KvHeadsExitTwo) {
  TempDir tmp;
  json j = demo_config();
  j["num_key_value_heads"] = 4;
  expect_eval_fails_naming_config(model_with_config(tmp, j.dump(2)), "num_key_value_heads");
}

// A config that parses but does not match the weights: the shape error names the tensor.
TEST(HfConfigCli, ConfigThatDoesNotMatchTheWeightsExitsTwo) {
  TempDir tmp;
  json j = demo_config();
  j["intermediate_size"] = 1000;
  const fs::path dir = model_with_config(tmp, j.dump(2));
  const auto r = run_sparsa({"eval", "--model", dir.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("mlp"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(dir.string()), std::string::npos) << r.err;
}

TEST(HfConfigCli, FolderWithoutConfigExitsTwo) {
  TempDir tmp;
  const fs::path dir = model_with_config(tmp, "{}");
  fs::remove(dir / "config.json");
  const auto r = run_sparsa({"eval", "--model", dir.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(dir.string()), std::string::npos) << r.err;
}

// The fields of facebook/opt-125m's config.json that sparsa reads, OPT-350m's projections added.
json opt_config() {
  return json::parse(R"({"model_type": "opt", "vocab_size": 50272, "hidden_size": 768, "ffn_dim": 3072,
    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 2048,
    "word_embed_proj_dim": 512, "activation_function": "relu", "do_layer_norm_before": true,
    "enable_bias": true, "bos_token_id": 2, "eos_token_id": 2})");
}

TEST(HfConfig, Opt) {
  TempDir tmp;
  const ModelConfig c = load(tmp, opt_config());
  EXPECT_EQ(c.arch, Arch::kOpt);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.num_kv_heads, 12);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.embed_dim, 512);
  EXPECT_TRUE(c.has_projections());
  EXPECT_TRUE(c.tie_word_embeddings);  // OPT's default
  EXPECT_TRUE(c.attention_bias && c.o_proj_bias && c.mlp_bias && c.norm_bias);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.bos_token_id, 2);
}

TEST(HfConfig, OptDefaultsAndWithoutBias) {
  TempDir tmp;
  json j = opt_config();
  for (const char* k : {"word_embed_proj_dim", "activation_function", "do_layer_norm_before"}) j.erase(k);
  j["enable_bias"] = false;
  const ModelConfig c = load(tmp, j);
  EXPECT_EQ(c.embed_dim, 768);
  EXPECT_FALSE(c.has_projections());
  EXPECT_FALSE(c.attention_bias || c.o_proj_bias || c.mlp_bias || c.norm_bias);
}

TEST(HfConfig, OptBadConfigsNameTheField) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"ffn_dim", nullptr},
      {"num_attention_heads", 7},  // 768 % 7 != 0
      {"_remove_final_layer_norm", true},  // with pre-LN: no final norm is not supported
      {"layer_norm_elementwise_affine", false},
      {"activation_function", "gelu"},
      {"enable_bias", "yes"},
  };
  for (const auto& [field, value] : cases) {
    SCOPED_TRACE(field + " = " + value.dump());
    TempDir tmp;
    json j = opt_config();
    if (value.is_null())
      j.erase(field);
    else
      j[field] = value;
    const std::string msg = bad_config_message(tmp, j.dump());
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
  }
}

// Values that parse but compute garbage quietly (rms_norm_eps 0 divides by zero on a zero row,
// rope_theta 1e300 is +inf as a float and leaves positions unrotated) are refused, naming the
// file, the field and the value as written; in-range values still load.
TEST(HfConfig, NumericFieldsOutsideTheirRangeNameTheField) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"rms_norm_eps", 0},         {"rms_norm_eps", -1e-6},     {"rms_norm_eps", 1e-300},
      {"rms_norm_eps", 2.0},       {"rms_norm_eps", 1e300},     {"rope_theta", 0},
      {"rope_theta", -10000.0},    {"rope_theta", 1.0},         {"rope_theta", 1e300},
      {"rope_theta", 1e13},        {"vocab_size", 4294967296LL}, {"bos_token_id", 8192},
      {"eos_token_id", -1},        {"eos_token_id", 4294967298LL}, {"eos_token_id", json::array({9000})},
      {"num_key_value_heads", 12},  // more kv heads than heads (6)
      {"max_position_embeddings", 0}, {"intermediate_size", -1}, {"head_dim", 3},
  };
  for (const auto& [field, value] : cases) {
    SCOPED_TRACE(field + " = " + value.dump());
    TempDir tmp;
    json j = demo_config();
    if (field == "rope_theta") j.erase("rope_parameters");
    j[field] = value;
    const std::string msg = bad_config_message(tmp, j.dump());
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
  }
  TempDir tmp;
  json j = demo_config();
  j["rope_parameters"]["rope_theta"] = 1e300;
  const std::string nested = bad_config_message(tmp, j.dump());
  EXPECT_NE(nested.find("'rope_parameters.rope_theta' must be a number in (1, 1e12], got 1e+300"), std::string::npos)
      << nested;
  j = demo_config();
  j.erase("rope_parameters");
  j["rope_theta"] = 1e6;
  j["rms_norm_eps"] = 1e-6;
  const ModelConfig c = load(tmp, j);
  EXPECT_FLOAT_EQ(c.rope.theta, 1e6f);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
}

TEST(HfConfig, OptTokenIdsOutsideTheVocabularyAreRefused) {
  TempDir tmp;
  json j = opt_config();
  j["eos_token_id"] = j["vocab_size"];
  EXPECT_NE(bad_config_message(tmp, j.dump()).find("eos_token_id"), std::string::npos);
}

TEST(HfConfigCli, OutOfRangeRopeThetaExitsTwo) {
  TempDir tmp;
  json j = demo_config();
  j["rope_parameters"]["rope_theta"] = -1;
  expect_eval_fails_naming_config(model_with_config(tmp, j.dump()), "rope_parameters.rope_theta");
}

}  // namespace
}  // namespace sparsa
