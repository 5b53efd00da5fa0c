// config.json of the Hugging Face families sparsa runs: LLaMA (llama, mistral, qwen2), Qwen3,
// Gemma 3 (text) and OPT.
#include <algorithm>
#include <cmath>
#include <functional>
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

// The JSON value at `key` of `obj` as a float in (lo, hi], refused naming `field` otherwise.
float number_in(const std::filesystem::path& path, const json& obj, const char* key, const std::string& field,
                double lo, double hi, std::string_view range) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) bad_input("{}: missing required field '{}'", path.string(), field);
  if (!it->is_number()) bad_input("{}: field '{}' must be a number", path.string(), field);
  const double v = it->get<double>();
  const float f = to_float(v);
  if (!(f > lo && f <= hi) || !std::isfinite(f))
    bad_input("{}: field '{}' must be a number in {}, got {}", path.string(), field, range, it->dump());
  return f;
}

// One RoPE settings object (`where`: "rope_parameters", "rope_scaling",
// "rope_parameters.full_attention") -> RopeParams. theta is the object's rope_theta, else the
// top-level `theta_key` (rope_theta, rope_local_base_freq), else `default_theta`.
RopeParams read_rope_params(const std::filesystem::path& path, const json& j, const json* obj, const std::string& where,
                            const char* theta_key, float default_theta) {
  RopeParams p;
  std::string type = "default";
  if (obj != nullptr) {
    if (!obj->is_object()) bad_input("{}: field '{}' must be an object", path.string(), where);
    const auto t = obj->contains("rope_type") ? obj->find("rope_type") : obj->find("type");
    if (t != obj->end() && !t->is_null()) {
      if (!t->is_string()) bad_input("{}: field '{}.rope_type' must be a string", path.string(), where);
      type = t->get<std::string>();
    }
    const auto partial = obj->find("partial_rotary_factor");
    if (partial != obj->end() && !(partial->is_number() && partial->get<double>() == 1.0))
      bad_input("{}: {}.partial_rotary_factor {} is not supported (only 1)", path.string(), where, partial->dump());
  }
  if (obj != nullptr && obj->contains("rope_theta"))
    p.theta = number_in(path, *obj, "rope_theta", where + ".rope_theta", 1.0, 1e12, "(1, 1e12]");
  else if (j.contains(theta_key) && !j[theta_key].is_null())
    p.theta = number_in(path, j, theta_key, theta_key, 1.0, 1e12, "(1, 1e12]");
  else
    p.theta = default_theta;
  const auto factor = [&](const char* key) {
    if (!obj->contains(key))
      bad_input("{}: rope_type '{}' needs field '{}.{}'", path.string(), type, where, key);
    return number_in(path, *obj, key, where + "." + key, 0.0, 1e6, "(0, 1e6]");
  };
  if (type == "default") {
    p.type = RopeType::kDefault;
  } else if (type == "linear") {
    p.type = RopeType::kLinear;
    p.factor = factor("factor");
  } else if (type == "llama3") {
    p.type = RopeType::kLlama3;
    p.factor = factor("factor");
    p.low_freq_factor = factor("low_freq_factor");
    p.high_freq_factor = factor("high_freq_factor");
    p.original_max_position = static_cast<int64_t>(factor("original_max_position_embeddings"));
    if (!(p.high_freq_factor > p.low_freq_factor))
      bad_input("{}: {}.high_freq_factor ({}) must be greater than low_freq_factor ({})", path.string(), where,
                p.high_freq_factor, p.low_freq_factor);
  } else {
    bad_input("{}: {}.rope_type '{}' is not supported (supported: default, linear, llama3)", path.string(), where,
              type);
  }
  return p;
}

// The RoPE settings object of a config: rope_parameters (transformers 5) or rope_scaling, or null.
const json* rope_object(const json& j, std::string& where) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const auto it = j.find(key);
    if (it != j.end() && !it->is_null()) {
      where = key;
      return &*it;
    }
  }
  where = "rope_parameters";
  return nullptr;
}

// RoPE of every layer (LLaMA family, Qwen3): sliding layers share it.
void read_rope(const std::filesystem::path& path, const json& j, ModelConfig& c) {
  std::string where;
  const json* obj = rope_object(j, where);
  c.rope = read_rope_params(path, j, obj, where, "rope_theta", 10000.0f);
  c.local_rope = c.rope;
}

// Gemma 3: full-attention layers and sliding layers each have their RoPE. transformers 5 writes
// rope_parameters {full_attention: {...}, sliding_attention: {...}}; older configs rope_theta +
// rope_scaling (global layers) and rope_local_base_freq (sliding layers, unscaled).
void read_gemma3_rope(const std::filesystem::path& path, const json& j, ModelConfig& c) {
  const auto params = j.find("rope_parameters");
  if (params != j.end() && params->is_object() && params->contains("full_attention")) {
    for (const char* type : {"full_attention", "sliding_attention"})
      if (!params->contains(type))
        bad_input("{}: missing required field 'rope_parameters.{}'", path.string(), type);
    c.rope = read_rope_params(path, j, &(*params)["full_attention"], "rope_parameters.full_attention", "rope_theta",
                              1000000.0f);
    c.local_rope = read_rope_params(path, j, &(*params)["sliding_attention"], "rope_parameters.sliding_attention",
                                    "rope_local_base_freq", 10000.0f);
    return;
  }
  std::string where;
  const json* obj = rope_object(j, where);
  c.rope = read_rope_params(path, j, obj, where, "rope_theta", 1000000.0f);
  c.local_rope = read_rope_params(path, j, nullptr, where, "rope_local_base_freq", 10000.0f);
}

// The per-layer attention kinds: `layer_types` ("full_attention" / "sliding_attention", one per
// layer) when present, else `fallback(layer)` (1 = sliding). Needs c.sliding_window > 0 for any
// sliding layer.
void read_layer_types(const std::filesystem::path& path, const json& j, ModelConfig& c,
                      const std::function<bool(int64_t)>& fallback) {
  c.sliding_layers.assign(static_cast<size_t>(c.num_layers), 0);
  const auto types = j.find("layer_types");
  if (types != j.end() && !types->is_null()) {
    if (!types->is_array() || static_cast<int64_t>(types->size()) != c.num_layers)
      bad_input("{}: field 'layer_types' must be a list of num_hidden_layers ({}) strings", path.string(),
                c.num_layers);
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const json& t = (*types)[static_cast<size_t>(l)];
      const std::string name = t.is_string() ? t.get<std::string>() : t.dump();
      if (name != "full_attention" && name != "sliding_attention")
        bad_input("{}: layer_types[{}] '{}' is not supported (supported: full_attention, sliding_attention)",
                  path.string(), l, name);
      c.sliding_layers[static_cast<size_t>(l)] = name == "sliding_attention";
    }
  } else {
    for (int64_t l = 0; l < c.num_layers; ++l) c.sliding_layers[static_cast<size_t>(l)] = fallback(l);
  }
  const bool any = std::find(c.sliding_layers.begin(), c.sliding_layers.end(), 1) != c.sliding_layers.end();
  if (any && c.sliding_window <= 0)
    bad_input("{}: layer_types has sliding_attention layers but no sliding_window", path.string());
  if (!any) c.sliding_layers.clear();
}

// Sliding-window attention: Mistral on every layer when sliding_window is set; Qwen2/Qwen3 only
// with use_sliding_window (layers from max_window_layers on, or by layer_types).
void read_sliding_window(const std::filesystem::path& path, const json& j, const ConfigReader& r, ModelConfig& c) {
  if (c.model_type == "mistral") {
    c.sliding_window = r.optional_int("sliding_window", 0);
    if (c.sliding_window > 0) c.sliding_layers.assign(static_cast<size_t>(c.num_layers), 1);
  } else if ((c.model_type == "qwen2" || c.model_type == "qwen3") && r.optional_bool("use_sliding_window", false)) {
    c.sliding_window = r.required_int("sliding_window");
    const int64_t from = r.optional_int("max_window_layers", c.num_layers);
    read_layer_types(path, j, c, [from](int64_t l) { return l >= from; });
  }
}

// What the LLaMA-like families share: heads, head_dim, RMSNorm eps, tied embeddings.
void read_heads_and_norm(const std::filesystem::path& path, const ConfigReader& r, ModelConfig& c) {
  c.intermediate_size = r.required_int("intermediate_size");
  c.num_kv_heads = r.optional_int("num_key_value_heads", c.num_heads);
  c.head_dim = r.optional_int("head_dim", c.hidden_size / c.num_heads);
  c.norm_eps = to_float(r.optional_number("rms_norm_eps", 1e-6));
  if (c.num_heads % c.num_kv_heads != 0)
    bad_input("{}: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})", path.string(),
              c.num_heads, c.num_kv_heads);
  if (c.head_dim == 0)  // hidden_size < num_attention_heads and no head_dim given
    bad_input("{}: hidden_size ({}) / num_attention_heads ({}) gives head_dim 0; set head_dim", path.string(),
              c.hidden_size, c.num_heads);
  if (c.head_dim % 2 != 0) bad_input("{}: head_dim ({}) must be even for RoPE", path.string(), c.head_dim);
}

// The LLaMA family (llama incl. Llama 3.x, mistral, qwen2) and Qwen3: RMSNorm, RoPE, gated SiLU MLP.
void read_llama(const std::filesystem::path& path, const json& j, const ConfigReader& r, ModelConfig& c) {
  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") bad_input("{}: hidden_act '{}' is not supported (only 'silu')", path.string(), act);
  c.arch = c.model_type == "qwen3" ? Arch::kQwen3 : Arch::kLlama;
  read_heads_and_norm(path, r, c);
  read_rope(path, j, c);
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", false);
  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
  } else {
    c.attention_bias = r.optional_bool("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
  }
  c.mlp_bias = r.optional_bool("mlp_bias", false);
  read_sliding_window(path, j, r, c);
}

// An optional soft-capping value: null or absent = none, else a number in (0, 1e6].
float read_softcap(const std::filesystem::path& path, const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return 0.0f;
  return number_in(path, j, key, key, 0.0, 1e6, "(0, 1e6] or null");
}

// Gemma 3's text decoder (Gemma3ForCausalLM, model_type gemma3_text).
void read_gemma3(const std::filesystem::path& path, const json& j, const ConfigReader& r, ModelConfig& c) {
  const std::string act = j.value("hidden_activation", j.value("hidden_act", std::string("gelu_pytorch_tanh")));
  if (act != "gelu_pytorch_tanh")
    bad_input("{}: hidden_activation '{}' is not supported (only 'gelu_pytorch_tanh')", path.string(), act);
  if (r.optional_bool("use_bidirectional_attention", false))
    bad_input("{}: use_bidirectional_attention is true; only causal Gemma 3 is supported", path.string());
  c.arch = Arch::kGemma3;
  read_heads_and_norm(path, r, c);
  read_gemma3_rope(path, j, c);
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", true);
  c.attention_bias = c.o_proj_bias = r.optional_bool("attention_bias", false);
  c.query_pre_attn_scalar = static_cast<float>(r.optional_int("query_pre_attn_scalar", 256));
  c.attn_logit_softcap = read_softcap(path, j, "attn_logit_softcapping");
  c.final_logit_softcap = read_softcap(path, j, "final_logit_softcapping");
  c.sliding_window = r.optional_int("sliding_window", 4096);
  const int64_t pattern = r.optional_int("sliding_window_pattern", r.optional_int("_sliding_window_pattern", 6));
  read_layer_types(path, j, c, [pattern](int64_t l) { return (l + 1) % pattern != 0; });
}

// OPT (transformers' OPTForCausalLM): LayerNorm with biases, learned positions, ReLU fc1/fc2,
// optional project_in/project_out; pre-LN, or post-LN without a final norm (OPT-350m).
void read_opt(const std::filesystem::path& path, const json& j, const ConfigReader& r, ModelConfig& c) {
  const std::string act = j.value("activation_function", std::string("relu"));
  if (act != "relu") bad_input("{}: activation_function '{}' is not supported (only 'relu')", path.string(), act);
  c.post_layer_norm = !r.optional_bool("do_layer_norm_before", true);
  if (!c.post_layer_norm && r.optional_bool("_remove_final_layer_norm", false))
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
  if (c.arch == Arch::kOpt) return;  // OPT's LayerNorm eps is fixed; RoPE thetas are checked as read
  if (!(c.norm_eps > 0.0f && c.norm_eps <= 1.0f) || !std::isfinite(c.norm_eps))
    refuse("rms_norm_eps", raw("rms_norm_eps"), "a number in (0, 1] (as a 32-bit float)");
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
  const bool llama = c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2" ||
                     c.model_type == "qwen3";
  if (c.model_type == "gemma3")
    bad_input("{}: model_type 'gemma3' is the multimodal Gemma 3 (text_config + vision tower); only its text "
              "decoder is supported (model_type gemma3_text, e.g. google/gemma-3-1b)", path.string());
  if (!llama && c.model_type != "opt" && c.model_type != "gemma3_text")
    bad_input("{}: model_type '{}' is not supported (supported: llama, mistral, qwen2, qwen3, gemma3_text, opt)",
              path.string(), c.model_type);

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
  else if (c.model_type == "gemma3_text")
    read_gemma3(path, j, r, c);
  else
    read_opt(path, j, r, c);
  check_config_ranges(path, j, c);
  return c;
}

}  // namespace sparsa
