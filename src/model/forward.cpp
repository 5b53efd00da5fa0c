// The LLaMA-family forward pass on the CPU (fp32, OpenBLAS GEMMs), with observation points
// in front of every group of linears.
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

}  // namespace

void embed_tokens(const Model& m, const int32_t* tokens, int64_t n_tokens, Tensor& x) {
  const int64_t d = m.config.hidden_size;
  ensure_shape(x, {n_tokens, d});
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= m.config.vocab_size)
      bad_input("token id {} at position {} is outside the vocabulary (size {})", id, t, m.config.vocab_size);
    std::copy_n(m.embed.ptr() + id * d, d, x.ptr() + t * d);
  }
}

void block_forward(const Model& m, int64_t layer, Tensor& x, ForwardBuffers& buf, Observer* obs) {
  const ModelConfig& c = m.config;
  const Block& b = m.blocks.at(static_cast<size_t>(layer));
  const int64_t n = x.dim(0), d = c.hidden_size;

  // attention: x += o_proj(attn(rope(q), rope(k), v))
  ensure_shape(buf.normed, {n, d});                  // [n, d_model]
  rmsnorm(x.ptr(), b.attn_norm.ptr(), buf.normed.ptr(), n, d, c.rms_norm_eps);
  notify(obs, layer, ObsPoint::kAttnIn, buf.normed);
  ensure_shape(buf.q, {n, c.q_dim()});               // [n, n_heads * head_dim]
  ensure_shape(buf.k, {n, c.kv_dim()});              // [n, n_kv_heads * head_dim]
  ensure_shape(buf.v, {n, c.kv_dim()});
  apply(b.linear(LinearRole::kQ), buf.normed, buf.q.ptr(), 0.0f);
  apply(b.linear(LinearRole::kK), buf.normed, buf.k.ptr(), 0.0f);
  apply(b.linear(LinearRole::kV), buf.normed, buf.v.ptr(), 0.0f);
  std::vector<int32_t> positions(static_cast<size_t>(n));
  std::iota(positions.begin(), positions.end(), 0);
  rope(buf.q.ptr(), positions.data(), n, c.num_heads, c.head_dim, c.rope_theta);
  rope(buf.k.ptr(), positions.data(), n, c.num_kv_heads, c.head_dim, c.rope_theta);
  ensure_shape(buf.attn, {n, c.q_dim()});            // [n, n_heads * head_dim]
  causal_attention(buf.q.ptr(), buf.k.ptr(), buf.v.ptr(), buf.attn.ptr(), n, c.num_heads, c.num_kv_heads,
                   c.head_dim);
  notify(obs, layer, ObsPoint::kOIn, buf.attn);
  apply(b.linear(LinearRole::kO), buf.attn, x.ptr(), 1.0f);

  // MLP: x += down(silu(gate(h)) * up(h))
  rmsnorm(x.ptr(), b.mlp_norm.ptr(), buf.normed.ptr(), n, d, c.rms_norm_eps);
  notify(obs, layer, ObsPoint::kMlpIn, buf.normed);
  ensure_shape(buf.gate, {n, c.intermediate_size});  // [n, d_ff]
  ensure_shape(buf.up, {n, c.intermediate_size});
  apply(b.linear(LinearRole::kGate), buf.normed, buf.gate.ptr(), 0.0f);
  apply(b.linear(LinearRole::kUp), buf.normed, buf.up.ptr(), 0.0f);
  silu_mul(buf.gate.ptr(), buf.up.ptr(), buf.gate.ptr(), n, c.intermediate_size);
  notify(obs, layer, ObsPoint::kDownIn, buf.gate);
  apply(b.linear(LinearRole::kDown), buf.gate, x.ptr(), 1.0f);
}

void lm_logits(const Model& m, const Tensor& x, Tensor& logits, ForwardBuffers& buf) {
  const int64_t n = x.dim(0), d = m.config.hidden_size, vocab = m.config.vocab_size;
  ensure_shape(buf.normed, {n, d});
  rmsnorm(x.ptr(), m.final_norm.ptr(), buf.normed.ptr(), n, d, m.config.rms_norm_eps);
  ensure_shape(logits, {n, vocab});                  // [n, vocab]
  linear(buf.normed.ptr(), m.lm_head.ptr(), nullptr, logits.ptr(), n, d, vocab, 0.0f);
}

void forward(const Model& m, const int32_t* tokens, int64_t n_tokens, Tensor& logits, ForwardBuffers& buf,
             Observer* obs) {
  Tensor x;  // [n_tokens, d_model]
  embed_tokens(m, tokens, n_tokens, x);
  for (int64_t l = 0; l < m.config.num_layers; ++l) block_forward(m, l, x, buf, obs);
  lm_logits(m, x, logits, buf);
}

}  // namespace sparsa
