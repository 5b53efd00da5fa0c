// The forward pass on the CPU (fp32, OpenBLAS GEMMs) for every family of the architecture
// table, with observation points in front of every group of linears. The families share one
// block: the table picks the norm, the positions, the MLP and the extra norms; the config the
// RoPE scaling, sliding windows, soft-capping and post-LN.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/ops.h"

namespace sparsa {
namespace {

// Resizes t to `shape` without freeing capacity (buffers are reused across windows).
void ensure_shape(Tensor& t, std::vector<int64_t> shape) {
  t.data.resize(Tensor::count(shape));
  t.shape = std::move(shape);
}

void notify(Observer* obs, int64_t layer, ObsPoint p, Tensor& x) {
  if (obs) obs->observe(layer, p, x.ptr(), x.dim(0), x.dim(1));
}

// y = x · W^T + b (beta 0) or y += x · W^T + b (beta 1).
void apply(const Linear& l, const Tensor& x, float* y, float beta) {
  linear(x.ptr(), l.weight.ptr(), l.bias.numel() ? l.bias.ptr() : nullptr, y, x.dim(0), l.in_features(),
         l.out_features(), beta);
}

// y = norm(x) over rows of `dim` with the family's norm (RMSNorm, Gemma's (1 + w) RMSNorm, or
// LayerNorm with an optional bias). x, y: [rows, dim]; y may alias x.
void apply_norm(const ModelConfig& c, const Tensor& weight, const Tensor& bias, const float* x, float* y,
                int64_t rows, int64_t dim) {
  switch (arch_info(c.arch).norm) {
    case NormKind::kRMSNorm: rmsnorm(x, weight.ptr(), y, rows, dim, c.norm_eps); break;
    case NormKind::kRMSNormUnitOffset: rmsnorm_unit_offset(x, weight.ptr(), y, rows, dim, c.norm_eps); break;
    case NormKind::kLayerNorm:
      layernorm(x, weight.ptr(), bias.numel() ? bias.ptr() : nullptr, y, rows, dim, c.norm_eps);
      break;
  }
}

void apply_norm(const ModelConfig& c, const Tensor& weight, const Tensor& bias, const Tensor& x, float* y) {
  apply_norm(c, weight, bias, x.ptr(), y, x.dim(0), x.dim(1));
}

// normed = the input of a sub-layer: norm(x) (pre-norm), or x itself (post-LN: the block's input
// is already normed), so that an observer changing it leaves the residual stream alone.
void sublayer_input(const ModelConfig& c, const Tensor& norm, const Tensor& norm_bias, const Tensor& x,
                    Tensor& normed) {
  ensure_shape(normed, {x.dim(0), x.dim(1)});  // [n, d_model]
  if (c.post_layer_norm)
    std::copy(x.data.begin(), x.data.end(), normed.data.begin());
  else
    apply_norm(c, norm, norm_bias, x, normed.ptr());
}

// x += post_norm(w · h) (post_norm: Gemma 3's norm on a sub-layer's output, empty elsewhere), then
// x = norm(x) for post-LN OPT. scratch: a buffer for w · h when it is normed before the add.
void add_residual(const ModelConfig& c, const Linear& w, const Tensor& h, const Tensor& post_norm, const Tensor& norm,
                  const Tensor& norm_bias, Tensor& x, Tensor& scratch) {
  if (post_norm.numel()) {
    ensure_shape(scratch, {x.dim(0), x.dim(1)});  // [n, d_model]
    apply(w, h, scratch.ptr(), 0.0f);
    apply_norm(c, post_norm, Tensor{}, scratch, scratch.ptr());
    for (size_t i = 0; i < x.data.size(); ++i) x.data[i] += scratch.data[i];
  } else {
    apply(w, h, x.ptr(), 1.0f);
  }
  if (c.post_layer_norm) apply_norm(c, norm, norm_bias, x, x.ptr());
}

// q, k: [n, heads * head_dim] -> per-head norm (Qwen3, Gemma 3), then RoPE with the layer's
// frequencies where the family uses it.
void position_queries_and_keys(const Model& m, int64_t layer, const Block& b, ForwardBuffers& buf) {
  const ModelConfig& c = m.config;
  const int64_t n = buf.q.dim(0);
  if (b.q_norm.numel()) {
    apply_norm(c, b.q_norm, Tensor{}, buf.q.ptr(), buf.q.ptr(), n * c.num_heads, c.head_dim);
    apply_norm(c, b.k_norm, Tensor{}, buf.k.ptr(), buf.k.ptr(), n * c.num_kv_heads, c.head_dim);
  }
  if (arch_info(c.arch).positions != PositionKind::kRope) return;
  std::vector<int32_t> positions(static_cast<size_t>(n));
  std::iota(positions.begin(), positions.end(), 0);
  const std::vector<float> inv_freq = rope_inv_freq(c.rope_for(layer), c.head_dim);  // [head_dim / 2]
  rope_with_freqs(buf.q.ptr(), positions.data(), n, c.num_heads, c.head_dim, inv_freq.data());
  rope_with_freqs(buf.k.ptr(), positions.data(), n, c.num_kv_heads, c.head_dim, inv_freq.data());
}

AttentionOptions attention_options(const ModelConfig& c, int64_t layer) {
  AttentionOptions o;
  if (c.query_pre_attn_scalar > 0)  // transformers: query_pre_attn_scalar ** -0.5 in double, used as fp32
    o.scale = static_cast<float>(std::pow(static_cast<double>(c.query_pre_attn_scalar), -0.5));
  o.window = c.is_sliding(layer) ? c.sliding_window : 0;
  o.softcap = c.attn_logit_softcap;
  return o;
}

// x += o_proj(attn(q, k, v)) (pre-norm), with the family's q/k norms, RoPE and attention options.
void attention_sublayer(const Model& m, int64_t layer, Tensor& x, ForwardBuffers& buf, Observer* obs) {
  const ModelConfig& c = m.config;
  const Block& b = m.blocks.at(static_cast<size_t>(layer));
  const int64_t n = x.dim(0);
  sublayer_input(c, b.attn_norm, b.attn_norm_bias, x, buf.normed);  // [n, d_model]
  notify(obs, layer, ObsPoint::kAttnIn, buf.normed);
  ensure_shape(buf.q, {n, c.q_dim()});               // [n, n_heads * head_dim]
  ensure_shape(buf.k, {n, c.kv_dim()});              // [n, n_kv_heads * head_dim]
  ensure_shape(buf.v, {n, c.kv_dim()});
  apply(b.linear(LinearRole::kQ), buf.normed, buf.q.ptr(), 0.0f);
  apply(b.linear(LinearRole::kK), buf.normed, buf.k.ptr(), 0.0f);
  apply(b.linear(LinearRole::kV), buf.normed, buf.v.ptr(), 0.0f);
  position_queries_and_keys(m, layer, b, buf);
  ensure_shape(buf.attn, {n, c.q_dim()});            // [n, n_heads * head_dim]
  causal_attention(buf.q.ptr(), buf.k.ptr(), buf.v.ptr(), buf.attn.ptr(), n, c.num_heads, c.num_kv_heads,
                   c.head_dim, attention_options(c, layer));
  notify(obs, layer, ObsPoint::kOIn, buf.attn);
  add_residual(c, b.linear(LinearRole::kO), buf.attn, b.post_attn_norm, b.attn_norm, b.attn_norm_bias, x,
               buf.attn_out);
}

// x += down(act(gate(h)) * up(h)) (SwiGLU, GeGLU) or x += fc2(relu(fc1(h))) (fc1 = up, fc2 = down).
void mlp_sublayer(const Model& m, int64_t layer, Tensor& x, ForwardBuffers& buf, Observer* obs) {
  const ModelConfig& c = m.config;
  const Block& b = m.blocks.at(static_cast<size_t>(layer));
  const int64_t n = x.dim(0), f = c.intermediate_size;
  sublayer_input(c, b.mlp_norm, b.mlp_norm_bias, x, buf.normed);
  notify(obs, layer, ObsPoint::kMlpIn, buf.normed);
  ensure_shape(buf.up, {n, f});                      // [n, d_ff]
  apply(b.linear(LinearRole::kUp), buf.normed, buf.up.ptr(), 0.0f);
  const MlpKind kind = arch_info(c.arch).mlp;
  if (kind == MlpKind::kRelu) {
    relu(buf.up.ptr(), n * f);
  } else {
    ensure_shape(buf.gate, {n, f});
    apply(b.linear(LinearRole::kGate), buf.normed, buf.gate.ptr(), 0.0f);
    if (kind == MlpKind::kGatedSilu)
      silu_mul(buf.gate.ptr(), buf.up.ptr(), buf.up.ptr(), n, f);
    else
      gelu_tanh_mul(buf.gate.ptr(), buf.up.ptr(), buf.up.ptr(), n, f);
  }
  notify(obs, layer, ObsPoint::kDownIn, buf.up);
  add_residual(c, b.linear(LinearRole::kDown), buf.up, b.post_mlp_norm, b.mlp_norm, b.mlp_norm_bias, x,
               buf.attn_out);
}

}  // namespace

void embed_tokens(const Model& m, const int32_t* tokens, int64_t n_tokens, Tensor& x) {
  const ModelConfig& c = m.config;
  const ArchInfo& a = arch_info(c.arch);
  const int64_t d = c.hidden_size, e = c.embed_dim;
  Tensor looked_up;  // [n_tokens, embed_dim] when project_in maps it to d_model
  Tensor& rows = c.has_projections() ? looked_up : x;
  ensure_shape(rows, {n_tokens, e});
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= c.vocab_size)
      bad_input("token id {} at position {} is outside the vocabulary (size {})", id, t, c.vocab_size);
    std::copy_n(m.embed.ptr() + id * e, e, rows.ptr() + t * e);
  }
  if (a.scale_embeddings) {  // Gemma: × sqrt(d_model) rounded to the (fp32) weights' dtype
    const auto scale = static_cast<float>(std::sqrt(static_cast<double>(d)));
    for (float& v : rows.data) v *= scale;
  }
  if (c.has_projections()) {
    ensure_shape(x, {n_tokens, d});
    linear(looked_up.ptr(), m.project_in.ptr(), nullptr, x.ptr(), n_tokens, e, d, 0.0f);
  }
  if (a.positions == PositionKind::kLearned) {
    if (n_tokens > c.max_position)
      bad_input("{} tokens are more than the model's {} learned positions", n_tokens, c.max_position);
    const float* pos = m.pos_embed.ptr() + a.position_offset * d;  // position t reads row t + offset
    for (int64_t i = 0; i < n_tokens * d; ++i) x.data[static_cast<size_t>(i)] += pos[i];
  }
}

void block_forward(const Model& m, int64_t layer, Tensor& x, ForwardBuffers& buf, Observer* obs) {
  attention_sublayer(m, layer, x, buf, obs);
  mlp_sublayer(m, layer, x, buf, obs);
}

void lm_logits(const Model& m, const Tensor& x, Tensor& logits, ForwardBuffers& buf) {
  const ModelConfig& c = m.config;
  const int64_t n = x.dim(0), d = c.hidden_size, e = c.embed_dim;
  const float* h = x.ptr();                          // [n, d_model] after the final norm (if any)
  if (c.has_final_norm()) {
    ensure_shape(buf.normed, {n, d});
    apply_norm(c, m.final_norm, m.final_norm_bias, x, buf.normed.ptr());
    h = buf.normed.ptr();
  }
  if (c.has_projections()) {                         // -> [n, embed_dim] entering lm_head
    ensure_shape(buf.attn, {n, e});
    linear(h, m.project_out.ptr(), nullptr, buf.attn.ptr(), n, d, e, 0.0f);
    h = buf.attn.ptr();
  }
  ensure_shape(logits, {n, c.vocab_size});           // [n, vocab]
  linear(h, m.lm_head.ptr(), nullptr, logits.ptr(), n, e, c.vocab_size, 0.0f);
  if (c.final_logit_softcap > 0) softcap(logits.ptr(), n * c.vocab_size, c.final_logit_softcap);
}

void forward(const Model& m, const int32_t* tokens, int64_t n_tokens, Tensor& logits, ForwardBuffers& buf,
             Observer* obs) {
  Tensor x;  // [n_tokens, d_model]
  embed_tokens(m, tokens, n_tokens, x);
  for (int64_t l = 0; l < m.config.num_layers; ++l) block_forward(m, l, x, buf, obs);
  lm_logits(m, x, logits, buf);
}

}  // namespace sparsa
