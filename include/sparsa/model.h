// sparsa/model.h — decoder-only transformer models on the CPU: configuration, the one table
// that maps Hugging Face tensor names to roles, weights, and the forward pass with named
// observation points.
//
// Conventions: weights are fp32 row-major [out, in] like nn.Linear; activations are
// [n_tokens, features]. A Model is immutable during forward() and may be shared by threads
// that each own their ForwardBuffers; pruning code mutates Linear::weight between passes.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparsa/device.h"
#include "sparsa/tensor.h"

namespace sparsa {

// ---- configuration ----

// The model families sparsa runs. Everything that differs between them is in one table
// (ArchInfo, below): tensor names, the norm, the positions, the MLP and the extra norms.
// kLlama also runs Mistral and Qwen2 (their differences are config fields: sliding window,
// q/k/v biases); kQwen3 adds per-head q/k norms; kGemma3 is Gemma 3's text decoder.
enum class Arch : uint8_t { kLlama, kOpt, kQwen3, kGemma3 };

// How the RoPE inverse frequencies are derived from theta (transformers' rope_type).
// kDefault: inv_freq[i] = theta^(-2i/head_dim). kLinear: inv_freq / factor. kLlama3: Llama 3.1's
// frequency-dependent scaling (low frequencies / factor, high ones unchanged, a smooth blend
// between; see rope_inv_freq).
enum class RopeType : uint8_t { kDefault, kLinear, kLlama3 };

struct RopeParams {
  RopeType type = RopeType::kDefault;
  float theta = 10000.0f;
  float factor = 1.0f;                 // kLinear, kLlama3
  float low_freq_factor = 1.0f;        // kLlama3
  float high_freq_factor = 4.0f;       // kLlama3
  int64_t original_max_position = 0;   // kLlama3: original_max_position_embeddings
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string model_type;        // "llama", "mistral", "qwen2", "qwen3", "gemma3_text", "opt" (HF) or "llama2c"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;       // d_model
  int64_t intermediate_size = 0; // d_ff (OPT: ffn_dim)
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;      // GQA: num_heads % num_kv_heads == 0
  int64_t head_dim = 0;          // usually hidden_size / num_heads
  int64_t max_position = 0;      // context length
  int64_t embed_dim = 0;         // width of the token embeddings and lm_head (OPT: word_embed_proj_dim;
                                 // project_in / project_out map it to d_model when it differs)
  float norm_eps = 1e-6f;        // eps of every RMSNorm / LayerNorm
  RopeParams rope;               // RoPE of the full-attention layers (of every layer outside Gemma 3)
  RopeParams local_rope;         // RoPE of the sliding-window layers (Gemma 3: its own theta); else = rope
  int64_t sliding_window = 0;    // > 0: a sliding layer's query at i sees keys j with i - window < j <= i
  std::vector<uint8_t> sliding_layers;  // [num_layers] 1 = that layer uses sliding_window; empty = none
  float query_pre_attn_scalar = 0;      // > 0: attention scale query_pre_attn_scalar^-0.5 (Gemma 3);
                                        // 0: head_dim^-0.5
  float attn_logit_softcap = 0;  // > 0: scores -> cap * tanh(scores / cap) before the softmax (Gemma)
  float final_logit_softcap = 0; // > 0: logits -> cap * tanh(logits / cap)
  bool post_layer_norm = false;  // OPT do_layer_norm_before false (opt-350m): each sub-layer is
                                 // x = norm(x + f(x)); no final norm
  bool tie_word_embeddings = false;
  bool attention_bias = false;   // q/k/v (and o when o_proj_bias) biases, Qwen2 style
  bool o_proj_bias = false;
  bool mlp_bias = false;         // biases on the MLP linears (OPT: fc1/fc2)
  bool norm_bias = false;        // LayerNorm biases (OPT)
  int32_t bos_token_id = 1;
  int32_t eos_token_id = 2;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  bool has_projections() const { return embed_dim != hidden_size; }
  bool has_final_norm() const { return !post_layer_norm; }
  bool is_sliding(int64_t layer) const {
    return !sliding_layers.empty() && sliding_layers[static_cast<size_t>(layer)] != 0;
  }
  const RopeParams& rope_for(int64_t layer) const { return is_sliding(layer) ? local_rope : rope; }
};

// The RoPE inverse frequencies [head_dim / 2] the way transformers computes them (fp32):
// default theta^(-2i/head_dim), then the type's scaling. For kLlama3, with wavelen = 2π / f:
// wavelen > original / low_freq_factor -> f / factor; wavelen < original / high_freq_factor -> f;
// else (1 - s) f / factor + s f with s = (original / wavelen - low) / (high - low).
std::vector<float> rope_inv_freq(const RopeParams& p, int64_t head_dim);

// Reads a Hugging Face config.json: the LLaMA family (llama incl. Llama 3.x, mistral, qwen2), qwen3,
// gemma3_text, or OPT (pre- and post-LN, with or without project_in/out). RoPE: rope_parameters
// (transformers 5; Gemma 3: one per layer type) or rope_theta + rope_scaling, of type default,
// linear or llama3; other types (yarn, dynamic, longrope, ...) are refused naming the type.
// Sliding windows: Mistral's sliding_window on every layer, Qwen's and Gemma 3's by layer_types.
// Throws Error(kBadInput) naming the file and field when a required field is missing or wrong, or
// when model_type or a feature is not supported, or when a numeric field is outside its sane range
// (rms_norm_eps in (0, 1], rope_theta in (1, 1e12], token ids below vocab_size, vocab_size below
// 2^31, sizes positive, heads dividing evenly).
ModelConfig load_hf_config(const std::filesystem::path& config_json);

// ---- roles and the architecture table ----

// The linears of a block by what they do; a family maps each role it has to its HF module
// (OPT: kO = out_proj, kUp = fc1, kDown = fc2, and no kGate).
enum class LinearRole : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLinearRoles = 7;

// Where activations are observed: the input of a group of linears in one block.
// kAttnIn: q/k/v; kOIn: o_proj / out_proj; kMlpIn: gate/up or fc1; kDownIn: down_proj or fc2.
enum class ObsPoint : uint8_t { kAttnIn, kOIn, kMlpIn, kDownIn };
inline constexpr int kNumObsPoints = 4;

struct LinearRoleInfo {
  LinearRole role;
  std::string_view short_name;  // "q", "k", ..., "down" (the role, the same in every family)
  ObsPoint input;               // the observation point that feeds it
};
const LinearRoleInfo& role_info(LinearRole r);
std::string_view obs_point_name(ObsPoint p);  // "attn_in", "o_in", "mlp_in", "down_in"
// The width of the activation seen at point p: d_model, q_dim, d_model, d_ff.
int64_t obs_point_dim(const ModelConfig& c, ObsPoint p);

// LayerNorm: weight and (optional) bias. kRMSNormUnitOffset: Gemma's x̂ · (1 + w).
enum class NormKind : uint8_t { kRMSNorm, kLayerNorm, kRMSNormUnitOffset };
enum class PositionKind : uint8_t { kRope, kLearned };      // learned: a table added to the embeddings
// down(silu(gate(x)) * up(x)), down(relu(up(x))) or down(gelu_tanh(gate(x)) * up(x)) (GeGLU)
enum class MlpKind : uint8_t { kGatedSilu, kRelu, kGatedGeluTanh };

// One row of the architecture table: everything that differs between families. Tensor names
// are "<decoder>.<name>" for model-level tensors and "<decoder>.layers.{i}.<name>" for block ones.
struct ArchInfo {
  Arch arch;
  std::string_view name;                 // "llama", "opt"
  std::string_view decoder;              // "model", "model.decoder"
  NormKind norm;
  PositionKind positions;
  int64_t position_offset;               // learned positions: position p reads row p + offset (OPT: 2)
  MlpKind mlp;
  std::string_view embed_tokens;         // "embed_tokens"
  std::string_view embed_positions;      // "embed_positions"; empty without learned positions
  std::string_view final_norm;           // "norm", "final_layer_norm"
  std::string_view project_in;           // "project_in" (used when embed_dim != d_model); empty if never
  std::string_view project_out;
  std::string_view attn_norm;            // per block: "input_layernorm", "self_attn_layer_norm"
  std::string_view mlp_norm;             // per block: "post_attention_layernorm", "final_layer_norm"
                                         // (Gemma 3: "pre_feedforward_layernorm")
  std::string_view post_attn_norm;       // per block, on the attention output before the residual
                                         // add (Gemma 3: "post_attention_layernorm"); empty if none
  std::string_view post_mlp_norm;        // the same for the MLP ("post_feedforward_layernorm")
  std::string_view q_norm;               // per block, RMSNorm over each head of q before RoPE
                                         // ("self_attn.q_norm", weight [head_dim]); empty if none
  std::string_view k_norm;
  bool scale_embeddings;                 // embeddings × sqrt(d_model) (Gemma)
  std::array<std::string_view, kNumLinearRoles> linear_module;  // by role; empty = the family has none
  std::vector<LinearRole> roles;         // the roles it has, in LinearRole order
};
const ArchInfo& arch_info(Arch a);
// "model.decoder.layers.3.fc2" — the HF module name of a linear (append ".weight", ".mask").
// SPARSA_ASSERT when the family has no such linear.
std::string hf_linear_name(Arch a, int64_t layer, LinearRole r);

// ---- weights ----

struct Linear {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], empty when the layer has none
  int64_t out_features() const { return weight.dim(0); }
  int64_t in_features() const { return weight.dim(1); }
};

struct Block {
  Tensor attn_norm;                              // [d_model] input_layernorm / self_attn_layer_norm
  Tensor attn_norm_bias;                         // [d_model] LayerNorm bias; empty for RMSNorm
  Tensor mlp_norm;                               // [d_model] post_attention_layernorm / final_layer_norm
  Tensor mlp_norm_bias;                          // [d_model]; empty for RMSNorm
  Tensor post_attn_norm, post_mlp_norm;          // [d_model] Gemma 3; empty when the family has none
  Tensor q_norm, k_norm;                         // [head_dim] Qwen3, Gemma 3; empty when none
  std::array<Linear, kNumLinearRoles> linears;   // indexed by LinearRole; empty for roles the family lacks
  Linear& linear(LinearRole r) { return linears[static_cast<size_t>(r)]; }
  const Linear& linear(LinearRole r) const { return linears[static_cast<size_t>(r)]; }
};

struct Model {
  ModelConfig config;
  Tensor embed;            // [vocab, embed_dim]
  Tensor pos_embed;        // [max_position + position_offset, d_model] learned positions; empty for RoPE
  Tensor project_in;       // [d_model, embed_dim]; empty unless config.has_projections()
  std::vector<Block> blocks;
  Tensor final_norm;       // [d_model]; empty when !config.has_final_norm()
  Tensor final_norm_bias;  // [d_model]; empty for RMSNorm
  Tensor project_out;      // [embed_dim, d_model]; empty unless config.has_projections()
  Tensor lm_head;          // [vocab, embed_dim]; a copy of embed when the embeddings are tied
  std::filesystem::path source;  // where it was loaded from
};

// Every tensor a Model holds under its Hugging Face name, with the shape its config implies
// (`tensor` points into `m`; m.blocks must already have config.num_layers entries). The tied
// lm_head is left out (it is the embeddings). One list serves the loader and the checkpoint
// writer, so the two cannot disagree on names.
struct HfTensor {
  std::string name;              // "model.decoder.layers.0.fc1.bias"
  std::vector<int64_t> shape;
  Tensor* tensor;
};
struct HfConstTensor {
  std::string name;
  std::vector<int64_t> shape;
  const Tensor* tensor;
};
std::vector<HfTensor> hf_tensors(Model& m);
std::vector<HfConstTensor> hf_tensors(const Model& m);

// The index of the first NaN or ±Inf among v[0, n), or -1 when every value is finite.
int64_t first_non_finite(const float* v, size_t n);
// "'<name>' holds nan at [r, c]" for the first non-finite value of t (the position in t's shape),
// or "" when every value is finite.
std::string non_finite_where(const std::string& name, const Tensor& t);
// Error(kBadInput) "<source>: tensor '<name>' holds nan at [r, c]; ..." for the first tensor of
// `m` that holds a NaN or Inf. The loaders call it: no command computes with non-finite weights.
void check_finite_weights(const Model& m);

// Loads a Hugging Face folder (config.json + safetensors) or a llama2.c .bin checkpoint
// (chosen by whether `path` is a folder). Weights are converted to fp32 and checked to be finite
// (check_finite_weights).
Model load_model(const std::filesystem::path& path);
Model load_hf_model(const std::filesystem::path& folder);
Model load_llama2c_model(const std::filesystem::path& bin_file);

// ---- forward pass ----

// Called at every observation point with the activations about to enter that point's linears.
// x: [n_tokens, dim], row-major, writable: an observer may change it in place (e.g. to zero
// small activations), and the linears then see the changed values.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void observe(int64_t layer, ObsPoint point, float* x, int64_t n_tokens, int64_t dim) = 0;
  // True when observe() may be called from several threads at once (each with its own x);
  // perplexity() then evaluates windows in parallel.
  virtual bool concurrent() const { return false; }
};

// Scratch buffers of one forward pass; reuse across calls to avoid reallocation.
struct ForwardBuffers {
  Tensor normed, q, k, v, attn, attn_out, gate, up, scores;
};

// x: [n_tokens, d_model] in/out: the hidden state entering block `layer`, replaced by its
// output. Positions are 0..n_tokens-1 (one causal window).
void block_forward(const Model& m, int64_t layer, Tensor& x, ForwardBuffers& buf, Observer* obs = nullptr);

// tokens: [n_tokens] -> x: [n_tokens, d_model]: embedding lookup (then project_in, plus the
// learned positions 0..n_tokens-1 where the family has them). Throws Error(kBadInput) for a
// token id outside the vocabulary.
void embed_tokens(const Model& m, const int32_t* tokens, int64_t n_tokens, Tensor& x);

// x: [n_tokens, d_model] -> logits: [n_tokens, vocab] (final norm, project_out, lm_head).
void lm_logits(const Model& m, const Tensor& x, Tensor& logits, ForwardBuffers& buf);

// The whole window: tokens [n_tokens] -> logits [n_tokens, vocab].
void forward(const Model& m, const int32_t* tokens, int64_t n_tokens, Tensor& logits,
             ForwardBuffers& buf, Observer* obs = nullptr);

// ---- perplexity ----

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;
  int64_t predicted_tokens = 0;  // windows * (seqlen - 1)
  int64_t windows = 0;
  double seconds = 0;
};

// Perplexity the reference way: each row of `windows` [n_windows, seqlen] is one causal window;
// positions 1..seqlen-1 are predicted from the window's own prefix; ppl = exp(mean NLL).
// `progress(done, total)` is called after each window when given.
// A result is always finite: a window whose loss is NaN or Inf (outputs that overflow), or a mean
// loss whose exp overflows, is Error(kRuntime) (check_perplexity_finite), never a perplexity.
// std::bad_alloc inside becomes OutOfMemory (sparsa/parallel.h) saying what was being computed.
PerplexityResult perplexity(const Model& m, const TensorI32& windows, Observer* obs = nullptr,
                            const std::function<void(int64_t, int64_t)>& progress = {});
// Error(kRuntime) naming the mean loss unless r.ppl is finite.
void check_perplexity_finite(const PerplexityResult& r);
// The same on the device `device` picks (sparsa/device.h): the CPU path above without an
// observer, or with Device::kCuda the GPU (sparsa/gpu.h: same windows, same definition; every
// block resident, windows in chunks of device.chunk_tokens, GPU 0).
PerplexityResult perplexity(const Model& m, const TensorI32& windows, const DeviceOptions& device,
                            const std::function<void(int64_t, int64_t)>& progress = {});

// Error(kBadInput) unless `c` can run token windows [n, seqlen] (rank 2, checked by the caller):
// seqlen within the context length and every id in the vocabulary. The messages say
// "<prefix>seqlen ..." and "<prefix>token id ... at <row> w, position p": the evaluation and
// activation windows' ("", "window"), the calibration samples' ("calibration ", "sample").
void check_window_tokens(const ModelConfig& c, const TensorI32& windows, std::string_view prefix = "",
                         std::string_view row = "window");

// Cuts a token stream into non-overlapping windows of `seqlen` (the tail that does not fill a
// window is dropped) -> [n_windows, seqlen].
TensorI32 make_windows(const std::vector<int32_t>& tokens, int64_t seqlen);

}  // namespace sparsa
