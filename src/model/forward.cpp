// The forward pass on the CPU (fp32, OpenBLAS GEMMs) for every family of the architecture
// table, with observation points in front of every group of linears. The families share the
// pre-norm block; the table picks the norm, the positions and the MLP.
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

// y = norm(x) with the family's norm (RMSNorm, or LayerNorm with an optional bias).
void apply_norm(const ModelConfig& c, const Tensor& weight, const Tensor& bias, const Tensor& x, float* y) {
  const int64_t n = x.dim(0), d = x.dim(1);
  if (arch_info(c.arch).norm == NormKind::kRMSNorm)
    rmsnorm(x.ptr(), weight.ptr(), y, n, d, c.norm_eps);
  else
    layernorm(x.ptr(), weight.ptr(), bias.numel() ? bias.ptr() : nullptr, y, n, d, c.norm_eps);
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
  const ModelConfig& c = m.config;
  const ArchInfo& a = arch_info(c.arch);
  const Block& b = m.blocks.at(static_cast<size_t>(layer));
  const int64_t n = x.dim(0), d = c.hidden_size;

  // attention: x += o_proj(attn(q, k, v)), with RoPE on q and k where the family uses it
  ensure_shape(buf.normed, {n, d});                  // [n, d_model]
  apply_norm(c, b.attn_norm, b.attn_norm_bias, x, buf.normed.ptr());
  notify(obs, layer, ObsPoint::kAttnIn, buf.normed);
  ensure_shape(buf.q, {n, c.q_dim()});               // [n, n_heads * head_dim]
  ensure_shape(buf.k, {n, c.kv_dim()});              // [n, n_kv_heads * head_dim]
  ensure_shape(buf.v, {n, c.kv_dim()});
  apply(b.linear(LinearRole::kQ), buf.normed, buf.q.ptr(), 0.0f);
  apply(b.linear(LinearRole::kK), buf.normed, buf.k.ptr(), 0.0f);
  apply(b.linear(LinearRole::kV), buf.normed, buf.v.ptr(), 0.0f);
  if (a.positions == PositionKind::kRope) {
    std::vector<int32_t> positions(static_cast<size_t>(n));
    std::iota(positions.begin(), positions.end(), 0);
    rope(buf.q.ptr(), positions.data(), n, c.num_heads, c.head_dim, c.rope_theta);
    rope(buf.k.ptr(), positions.data(), n, c.num_kv_heads, c.head_dim, c.rope_theta);
  }
  ensure_shape(buf.attn, {n, c.q_dim()});            // [n, n_heads * head_dim]
  causal_attention(buf.q.ptr(), buf.k.ptr(), buf.v.ptr(), buf.attn.ptr(), n, c.num_heads, c.num_kv_heads,
                   c.head_dim);
  notify(obs, layer, ObsPoint::kOIn, buf.attn);
  apply(b.linear(LinearRole::kO), buf.attn, x.ptr(), 1.0f);

  // MLP: x += down(silu(gate(h)) * up(h)), or x += fc2(relu(fc1(h))) (fc1 = up, fc2 = down)
  apply_norm(c, b.mlp_norm, b.mlp_norm_bias, x, buf.normed.ptr());
  notify(obs, layer, ObsPoint::kMlpIn, buf.normed);
  ensure_shape(buf.up, {n, c.intermediate_size});    // [n, d_ff]
  apply(b.linear(LinearRole::kUp), buf.normed, buf.up.ptr(), 0.0f);
  if (a.mlp == MlpKind::kGatedSilu) {
    ensure_shape(buf.gate, {n, c.intermediate_size});
    apply(b.linear(LinearRole::kGate), buf.normed, buf.gate.ptr(), 0.0f);
    silu_mul(buf.gate.ptr(), buf.up.ptr(), buf.up.ptr(), n, c.intermediate_size);
  } else {
    relu(buf.up.ptr(), n * c.intermediate_size);
  }
  notify(obs, layer, ObsPoint::kDownIn, buf.up);
  apply(b.linear(LinearRole::kDown), buf.up, x.ptr(), 1.0f);
}

void lm_logits(const Model& m, const Tensor& x, Tensor& logits, ForwardBuffers& buf) {
  const ModelConfig& c = m.config;
  const int64_t n = x.dim(0), d = c.hidden_size, e = c.embed_dim;
  ensure_shape(buf.normed, {n, d});
  apply_norm(c, m.final_norm, m.final_norm_bias, x, buf.normed.ptr());
  const float* h = buf.normed.ptr();                 // [n, embed_dim] entering lm_head
  if (c.has_projections()) {
    ensure_shape(buf.attn, {n, e});
    linear(buf.normed.ptr(), m.project_out.ptr(), nullptr, buf.attn.ptr(), n, d, e, 0.0f);
    h = buf.attn.ptr();
  }
  ensure_shape(logits, {n, c.vocab_size});           // [n, vocab]
  linear(h, m.lm_head.ptr(), nullptr, logits.ptr(), n, e, c.vocab_size, 0.0f);
}

void forward(const Model& m, const int32_t* tokens, int64_t n_tokens, Tensor& logits, ForwardBuffers& buf,
             Observer* obs) {
  Tensor x;  // [n_tokens, d_model]
  embed_tokens(m, tokens, n_tokens, x);
  for (int64_t l = 0; l < m.config.num_layers; ++l) block_forward(m, l, x, buf, obs);
  lm_logits(m, x, logits, buf);
}

}  // namespace sparsa
