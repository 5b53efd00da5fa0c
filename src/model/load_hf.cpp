// Loading a Hugging Face LLaMA-family checkpoint folder into fp32 weights.
#include <filesystem>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"

namespace sparsa {
namespace {

// [out, in] of each role's weight.
std::vector<int64_t> linear_shape(const ModelConfig& c, LinearRole r) {
  switch (r) {
    case LinearRole::kQ: return {c.q_dim(), c.hidden_size};
    case LinearRole::kK:
    case LinearRole::kV: return {c.kv_dim(), c.hidden_size};
    case LinearRole::kO: return {c.hidden_size, c.q_dim()};
    case LinearRole::kGate:
    case LinearRole::kUp: return {c.intermediate_size, c.hidden_size};
    case LinearRole::kDown: return {c.hidden_size, c.intermediate_size};
  }
  SPARSA_ASSERT(false);
  return {};
}

bool has_bias(const ModelConfig& c, LinearRole r) {
  switch (r) {
    case LinearRole::kQ:
    case LinearRole::kK:
    case LinearRole::kV: return c.attention_bias;
    case LinearRole::kO: return c.o_proj_bias;
    default: return c.mlp_bias;
  }
}

}  // namespace

Model load_hf_model(const std::filesystem::path& folder) {
  const auto config_path = folder / "config.json";
  if (!std::filesystem::exists(config_path)) bad_input("{}: no config.json in the model folder", folder.string());
  Model m;
  m.source = folder;
  m.config = load_hf_config(config_path);
  const ModelConfig& c = m.config;
  const auto store = TensorStore::open(folder);

  m.embed = store->load_f32("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  m.final_norm = store->load_f32("model.norm.weight", {c.hidden_size});
  if (c.tie_word_embeddings || !store->contains("lm_head.weight")) {
    if (!c.tie_word_embeddings) bad_input("{}: no lm_head.weight and tie_word_embeddings is false", folder.string());
    m.lm_head = m.embed;
  } else {
    m.lm_head = store->load_f32("lm_head.weight", {c.vocab_size, c.hidden_size});
  }

  m.blocks.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    Block& b = m.blocks[static_cast<size_t>(l)];
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    b.attn_norm = store->load_f32(prefix + "input_layernorm.weight", {c.hidden_size});
    b.mlp_norm = store->load_f32(prefix + "post_attention_layernorm.weight", {c.hidden_size});
    for (int r = 0; r < kNumLinearRoles; ++r) {
      const auto role = static_cast<LinearRole>(r);
      const auto shape = linear_shape(c, role);
      const std::string name = hf_linear_name(l, role);
      b.linear(role).weight = store->load_f32(name + ".weight", shape);
      if (has_bias(c, role)) b.linear(role).bias = store->load_f32(name + ".bias", {shape[0]});
    }
  }
  return m;
}

Model load_model(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) return load_hf_model(path);
  if (!std::filesystem::exists(path)) bad_input("{}: no such model file or folder", path.string());
  if (path.extension() == ".safetensors")
    bad_input("{}: pass the checkpoint folder (with config.json), not one of its .safetensors files", path.string());
  return load_llama2c_model(path);
}

}  // namespace sparsa
