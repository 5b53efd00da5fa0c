// config.json of the Hugging Face families sparsa runs: LLaMA (llama, mistral, qwen2) and OPT.
#include <cmath>
#include <limits>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"
#include "sparsa/model.h"

namespace sparsa {
namespace {
using json = nlohmann::json;

class ConfigReader {
 public:
  ConfigReader(const std::filesystem::path& path, const json& j) : path_(path), j_(j) {}

  int64_t required_int(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) bad_input("{}: missing required field '{}'", path_.string(), key);
    return positive_int(key, *it);
  }
  int64_t optional_int(const char* key, int64_t fallback) const {
    const auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? fallback : positive_int(key, *it);
  }
  double optional_number(const char* key, double fallback) const {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_number()) bad_input("{}: field '{}' must be a number", path_.string(), key);
    return it->get<double>();
  }
  bool optional_bool(const char* key, bool fallback) const {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) bad_input("{}: field '{}' must be true or false", path_.string(), key);
    return it->get<bool>();
  }
  int32_t optional_token_id(const char* key, int32_t fallback) const {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    const json& id = it->is_array() && !it->empty() ? (*it)[0] : *it;
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max())
      bad_input("{}: field '{}' must be a token id (an integer >= 0), got {}", path_.string(), key, it->dump());
    return id.get<int32_t>();
  }

 private:
  int64_t positive_int(const char* key, const json& v) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      bad_input("{}: field '{}' must be a positive integer", path_.string(), key);
    return v.get<int64_t>();
  }
  const std::filesystem::path& path_;
  const json& j_;
};

// v as a float, ±inf beyond the float range (a plain conversion would be undefined there); the
// range check then refuses it.
float to_float(double v) {
  if (std::fabs(v) > std::numeric_limits<float>::max()) return std::copysign(std::numeric_limits<float>::infinity(), v);
  return static_cast<float>(v);
}

// RoPE theta: `rope_theta` (most checkpoints) or `rope_parameters.rope_theta` (recent
// transformers). Scaled RoPE variants are refused rather than computed wrongly.
float read_rope_theta(const std::filesystem::path& path, const json& j) {
  const auto params = j.find("rope_parameters");
  if (params != j.end() && params->is_object()) {
    const auto type = params->value("rope_type", std::string("default"));
    if (type != "default") bad_input("{}: rope_parameters.rope_type '{}' is not supported (only 'default')", path.string(), type);
    const auto theta = params->find("rope_theta");
    if (theta != params->end()) {
      if (!theta->is_number()) bad_input("{}: field 'rope_parameters.rope_theta' must be a number", path.string());
      return to_float(theta->get<double>());
    }
  }
  const auto scaling = j.find("rope_scaling");
  if (scaling != j.end() && !scaling->is_null()) {
    const auto type = scaling->is_object() ? scaling->value("rope_type", scaling->value("type", std::string())) : "";
    if (type != "default") bad_input("{}: rope_scaling '{}' is not supported", path.string(), type);
  }
  const auto theta = j.find("rope_theta");
  if (theta != j.end()) {
    if (!theta->is_number()) bad_input("{}: field 'rope_theta' must be a number", path.string());
    return to_float(theta->get<double>());
  }
  return 10000.0f;
}

// The LLaMA family: RMSNorm, RoPE, gated SiLU MLP.
void read_llama(const std::filesystem::path& path, const json& j, const ConfigReader& r, ModelConfig& c) {
  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") bad_input("{}: hidden_act '{}' is not supported (only 'silu')", path.string(), act);
  c.arch = Arch::kLlama;
  c.intermediate_size = r.required_int("intermediate_size");
  c.num_kv_heads = r.optional_int("num_key_value_heads", c.num_heads);
  c.head_dim = r.optional_int("head_dim", c.hidden_size / c.num_heads);
  c.norm_eps = to_float(r.optional_number("rms_norm_eps", 1e-6));
  c.rope_theta = read_rope_theta(path, j);
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", false);
  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
  } else {
    c.attention_bias = r.optional_bool("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
  }
  c.mlp_bias = r.optional_bool("mlp_bias", false);

  if (c.num_heads % c.num_kv_heads != 0)
    bad_input("{}: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})", path.string(),
              c.num_heads, c.num_kv_heads);
  if (c.head_dim == 0)  // hidden_size < num_attention_heads and no head_dim given
    bad_input("{}: hidden_size ({}) / num_attention_heads ({}) gives head_dim 0; set head_dim", path.string(),
              c.hidden_size, c.num_heads);
  if (c.head_dim % 2 != 0) bad_input("{}: head_dim ({}) must be even for RoPE", path.string(), c.head_dim);
}

// OPT (transformers' OPTForCausalLM): pre-LayerNorm with biases, learned positions, ReLU
// fc1/fc2, optional project_in/project_out. Post-LN checkpoints (OPT-350m) are refused.
void read_opt(const std::filesystem::path& path, const json& j, const ConfigReader& r, ModelConfig& c) {
  const std::string act = j.value("activation_function", std::string("relu"));
  if (act != "relu") bad_input("{}: activation_function '{}' is not supported (only 'relu')", path.string(), act);
  if (!r.optional_bool("do_layer_norm_before", true))
    bad_input("{}: do_layer_norm_before is false (post-LayerNorm OPT, e.g. opt-350m); only pre-LayerNorm OPT is "
              "supported", path.string());
  if (r.optional_bool("_remove_final_layer_norm", false))
    bad_input("{}: _remove_final_layer_norm is true; OPT without the final layer norm is not supported", path.string());
  if (!r.optional_bool("layer_norm_elementwise_affine", true))
    bad_input("{}: layer_norm_elementwise_affine is false; OPT without LayerNorm weights is not supported", path.string());
  c.arch = Arch::kOpt;
  c.intermediate_size = r.required_int("ffn_dim");
  c.num_kv_heads = c.num_heads;
  if (c.hidden_size % c.num_heads != 0)
    bad_input("{}: hidden_size ({}) is not divisible by num_attention_heads ({})", path.string(), c.hidden_size,
              c.num_heads);
  c.head_dim = c.hidden_size / c.num_heads;
  c.embed_dim = r.optional_int("word_embed_proj_dim", c.hidden_size);
  c.norm_eps = 1e-5f;  // torch.nn.LayerNorm's default, which OPT uses
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", true);
  const bool bias = r.optional_bool("enable_bias", true);
  c.attention_bias = c.o_proj_bias = c.mlp_bias = c.norm_bias = bias;
}

// The sane range of every numeric field of a parsed config, one line naming the file and the
// field (the JSON value as written) otherwise. Sizes against memory and the weights' files are
// the loader's checks; here: norm epsilons and RoPE theta that compute garbage quietly, token ids
// outside the vocabulary.
void check_config_ranges(const std::filesystem::path& path, const json& j, const ModelConfig& c) {
  const auto refuse = [&](std::string_view field, const json* raw, std::string_view range) {
    bad_input("{}: field '{}' must be {}, got {}", path.string(), field, range, raw ? raw->dump() : "nothing");
  };
  const auto raw = [&](const char* key) -> const json* {
    const auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  };
  if (c.vocab_size > std::numeric_limits<int32_t>::max())
    refuse("vocab_size", raw("vocab_size"), "at most 2147483647 (token ids are 32-bit)");
  for (const auto& [field, id] : {std::pair{"bos_token_id", c.bos_token_id}, std::pair{"eos_token_id", c.eos_token_id}})
    if (raw(field) && !raw(field)->is_null() && id >= c.vocab_size)
      refuse(field, raw(field), fmt::format("a token id below vocab_size ({})", c.vocab_size));
  if (c.arch != Arch::kLlama) return;  // OPT's LayerNorm eps is fixed and it has no RoPE
  if (!(c.norm_eps > 0.0f && c.norm_eps <= 1.0f) || !std::isfinite(c.norm_eps))
    refuse("rms_norm_eps", raw("rms_norm_eps"), "a number in (0, 1] (as a 32-bit float)");
  if (!(c.rope_theta > 1.0f && c.rope_theta <= 1e12f)) {
    const auto params = j.find("rope_parameters");
    const bool nested = params != j.end() && params->is_object() && params->contains("rope_theta");
    refuse(nested ? "rope_parameters.rope_theta" : "rope_theta", nested ? &(*params)["rope_theta"] : raw("rope_theta"),
           "a number in (1, 1e12]");
  }
}

}  // namespace

ModelConfig load_hf_config(const std::filesystem::path& path) {
  const std::string text = InputFile(path).read_all(kMaxJsonFileBytes, "JSON file");
  json j;
  try {
    j = parse_json_bounded(text, path);
  } catch (const json::exception& e) {
    bad_input("{}: not valid JSON: {}", path.string(), e.what());
  }
  if (!j.is_object()) bad_input("{}: not a JSON object", path.string());
  const auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) bad_input("{}: missing required field 'model_type'", path.string());

  ModelConfig c;
  c.model_type = mt->get<std::string>();
  const bool llama = c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2";
  if (!llama && c.model_type != "opt")
    bad_input("{}: model_type '{}' is not supported (supported: llama, mistral, qwen2, opt)", path.string(),
              c.model_type);

  const ConfigReader r(path, j);
  c.vocab_size = r.required_int("vocab_size");
  c.hidden_size = r.required_int("hidden_size");
  c.num_layers = r.required_int("num_hidden_layers");
  c.num_heads = r.required_int("num_attention_heads");
  c.max_position = r.required_int("max_position_embeddings");
  c.bos_token_id = r.optional_token_id("bos_token_id", 1);
  c.eos_token_id = r.optional_token_id("eos_token_id", 2);
  c.embed_dim = c.hidden_size;
  if (llama)
    read_llama(path, j, r, c);
  else
    read_opt(path, j, r, c);
  check_config_ranges(path, j, c);
  return c;
}

}  // namespace sparsa
