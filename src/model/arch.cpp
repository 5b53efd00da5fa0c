// The architecture table: per family, the Hugging Face tensor names and the operations that
// differ (norm, positions, MLP); and the list of a model's tensors under those names.
#include <cmath>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "sparsa/model.h"

namespace sparsa {
namespace {

constexpr LinearRoleInfo kRoles[kNumLinearRoles] = {
    {LinearRole::kQ, "q", ObsPoint::kAttnIn},   {LinearRole::kK, "k", ObsPoint::kAttnIn},
    {LinearRole::kV, "v", ObsPoint::kAttnIn},   {LinearRole::kO, "o", ObsPoint::kOIn},
    {LinearRole::kGate, "gate", ObsPoint::kMlpIn}, {LinearRole::kUp, "up", ObsPoint::kMlpIn},
    {LinearRole::kDown, "down", ObsPoint::kDownIn},
};

constexpr std::string_view kObsNames[kNumObsPoints] = {"attn_in", "o_in", "mlp_in", "down_in"};

// The LLaMA-style linears, shared by llama, qwen3 and gemma3_text.
constexpr std::array<std::string_view, kNumLinearRoles> kLlamaLinears = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
const std::vector<LinearRole> kLlamaRoles = {LinearRole::kQ,    LinearRole::kK,  LinearRole::kV,   LinearRole::kO,
                                             LinearRole::kGate, LinearRole::kUp, LinearRole::kDown};

// LLaMA-1/2/3, Mistral, Qwen2: pre-RMSNorm, RoPE, SwiGLU.
const ArchInfo kLlamaInfo = {
    .arch = Arch::kLlama,
    .name = "llama",
    .decoder = "model",
    .norm = NormKind::kRMSNorm,
    .positions = PositionKind::kRope,
    .position_offset = 0,
    .mlp = MlpKind::kGatedSilu,
    .embed_tokens = "embed_tokens",
    .embed_positions = "",
    .final_norm = "norm",
    .project_in = "",
    .project_out = "",
    .attn_norm = "input_layernorm",
    .mlp_norm = "post_attention_layernorm",
    .post_attn_norm = "",
    .post_mlp_norm = "",
    .q_norm = "",
    .k_norm = "",
    .scale_embeddings = false,
    .linear_module = kLlamaLinears,
    .roles = kLlamaRoles};

// Qwen3: LLaMA plus an RMSNorm over each head of q and k before RoPE.
ArchInfo qwen3_info() {
  ArchInfo a = kLlamaInfo;
  a.arch = Arch::kQwen3;
  a.name = "qwen3";
  a.q_norm = "self_attn.q_norm";
  a.k_norm = "self_attn.k_norm";
  return a;
}

// Gemma 3 (text): (1 + w) RMSNorm, GeGLU, q/k norms, norms before and after each sub-layer,
// embeddings × sqrt(d_model).
ArchInfo gemma3_info() {
  ArchInfo a = qwen3_info();
  a.arch = Arch::kGemma3;
  a.name = "gemma3_text";
  a.norm = NormKind::kRMSNormUnitOffset;
  a.mlp = MlpKind::kGatedGeluTanh;
  a.mlp_norm = "pre_feedforward_layernorm";
  a.post_attn_norm = "post_attention_layernorm";
  a.post_mlp_norm = "post_feedforward_layernorm";
  a.scale_embeddings = true;
  return a;
}

const ArchInfo kArchs[] = {
    kLlamaInfo,
    {.arch = Arch::kOpt,
     .name = "opt",
     .decoder = "model.decoder",
     .norm = NormKind::kLayerNorm,
     .positions = PositionKind::kLearned,
     .position_offset = 2,  // transformers' OPTLearnedPositionalEmbedding
     .mlp = MlpKind::kRelu,
     .embed_tokens = "embed_tokens",
     .embed_positions = "embed_positions",
     .final_norm = "final_layer_norm",
     .project_in = "project_in",
     .project_out = "project_out",
     .attn_norm = "self_attn_layer_norm",
     .mlp_norm = "final_layer_norm",
     .post_attn_norm = "",
     .post_mlp_norm = "",
     .q_norm = "",
     .k_norm = "",
     .scale_embeddings = false,
     .linear_module = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "", "fc1",
                       "fc2"},
     .roles = {LinearRole::kQ, LinearRole::kK, LinearRole::kV, LinearRole::kO, LinearRole::kUp, LinearRole::kDown}},
    qwen3_info(),
    gemma3_info(),
};

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

const LinearRoleInfo& role_info(LinearRole r) {
  const auto i = static_cast<size_t>(r);
  SPARSA_ASSERT(i < kNumLinearRoles);
  return kRoles[i];
}

std::string_view obs_point_name(ObsPoint p) {
  const auto i = static_cast<size_t>(p);
  SPARSA_ASSERT(i < kNumObsPoints);
  return kObsNames[i];
}

int64_t obs_point_dim(const ModelConfig& c, ObsPoint p) {
  switch (p) {
    case ObsPoint::kAttnIn:
    case ObsPoint::kMlpIn: return c.hidden_size;
    case ObsPoint::kOIn: return c.q_dim();
    case ObsPoint::kDownIn: return c.intermediate_size;
  }
  SPARSA_ASSERT(false);
  return 0;
}

const ArchInfo& arch_info(Arch a) {
  const auto i = static_cast<size_t>(a);
  SPARSA_ASSERT(i < std::size(kArchs));
  return kArchs[i];
}

std::string hf_linear_name(Arch a, int64_t layer, LinearRole r) {
  const ArchInfo& info = arch_info(a);
  const std::string_view module = info.linear_module[static_cast<size_t>(r)];
  SPARSA_ASSERT(!module.empty() && "the family has no linear of this role");
  return fmt::format("{}.layers.{}.{}", info.decoder, layer, module);
}

namespace {

// Every tensor of `m` (a Model or a const Model) as Entry (HfTensor or HfConstTensor):
// model-level tensors, then block by block.
template <class ModelT, class Entry>
std::vector<Entry> list_tensors(ModelT& m) {
  const ModelConfig& c = m.config;
  const ArchInfo& a = arch_info(c.arch);
  SPARSA_ASSERT(static_cast<int64_t>(m.blocks.size()) == c.num_layers);
  const int64_t d = c.hidden_size;
  const bool norm_bias = a.norm == NormKind::kLayerNorm && c.norm_bias;
  std::vector<Entry> out;
  const auto add = [&](std::string name, std::vector<int64_t> shape, auto& t) {
    out.push_back({std::move(name), std::move(shape), &t});
  };
  const auto top = [&](std::string_view name, std::string_view suffix) {
    return fmt::format("{}.{}.{}", a.decoder, name, suffix);
  };

  add(top(a.embed_tokens, "weight"), {c.vocab_size, c.embed_dim}, m.embed);
  if (a.positions == PositionKind::kLearned)
    add(top(a.embed_positions, "weight"), {c.max_position + a.position_offset, d}, m.pos_embed);
  if (c.has_projections()) {
    add(top(a.project_in, "weight"), {d, c.embed_dim}, m.project_in);
    add(top(a.project_out, "weight"), {c.embed_dim, d}, m.project_out);
  }
  if (c.has_final_norm()) {
    add(top(a.final_norm, "weight"), {d}, m.final_norm);
    if (norm_bias) add(top(a.final_norm, "bias"), {d}, m.final_norm_bias);
  }
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, c.embed_dim}, m.lm_head);

  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto& b = m.blocks[static_cast<size_t>(l)];
    const std::string prefix = fmt::format("{}.layers.{}.", a.decoder, l);
    const std::string attn_norm = prefix + std::string(a.attn_norm), mlp_norm = prefix + std::string(a.mlp_norm);
    add(attn_norm + ".weight", {d}, b.attn_norm);
    if (norm_bias) add(attn_norm + ".bias", {d}, b.attn_norm_bias);
    add(mlp_norm + ".weight", {d}, b.mlp_norm);
    if (norm_bias) add(mlp_norm + ".bias", {d}, b.mlp_norm_bias);
    const auto optional = [&](std::string_view module, int64_t dim, auto& t) {
      if (!module.empty()) add(prefix + std::string(module) + ".weight", {dim}, t);
    };
    optional(a.post_attn_norm, d, b.post_attn_norm);
    optional(a.post_mlp_norm, d, b.post_mlp_norm);
    optional(a.q_norm, c.head_dim, b.q_norm);
    optional(a.k_norm, c.head_dim, b.k_norm);
    for (const LinearRole role : a.roles) {
      const auto shape = linear_shape(c, role);
      const std::string name = hf_linear_name(c.arch, l, role);
      add(name + ".weight", shape, b.linear(role).weight);
      if (has_bias(c, role)) add(name + ".bias", {shape[0]}, b.linear(role).bias);
    }
  }
  return out;
}

}  // namespace

std::vector<HfTensor> hf_tensors(Model& m) { return list_tensors<Model, HfTensor>(m); }
std::vector<HfConstTensor> hf_tensors(const Model& m) { return list_tensors<const Model, HfConstTensor>(m); }

}  // namespace sparsa
