// sparsa/ops.h — the CPU reference ops of the forward pass. Each GPU op in src/cuda/ has the
// same signature with a _cuda suffix (device pointers) and a test comparing the two.
//
// All buffers are fp32, row-major; shapes are given in the comments. Ops parallelise over
// rows with OpenMP and are safe to call from one thread at a time per output buffer.
#pragma once

#include <cstdint>

namespace sparsa {

// y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight[:]
// x, y: [n_tokens, dim]; weight: [dim]. y may alias x.
void rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps);

// Gemma's RMSNorm: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * (1 + weight[:]).
// x, y: [n_tokens, dim]; weight: [dim]. y may alias x.
void rmsnorm_unit_offset(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps);

// y[t, :] = (x[t, :] - mean) / sqrt(var + eps) * weight[:] + bias[:] (torch.nn.LayerNorm: biased
// variance over the row). x, y: [n_tokens, dim]; weight: [dim]; bias: [dim] or nullptr (no bias).
// y may alias x.
void layernorm(const float* x, const float* weight, const float* bias, float* y, int64_t n_tokens, int64_t dim,
               float eps);

// x[i] = max(x[i], 0) for i < n. In place.
void relu(float* x, int64_t n);

// out[t, i] = silu(gate[t, i]) * up[t, i];  gate, up, out: [n_tokens, dim]. out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int64_t n_tokens, int64_t dim);

// out[t, i] = gelu_tanh(gate[t, i]) * up[t, i] (torch's gelu(approximate="tanh"): 0.5 g (1 +
// tanh(sqrt(2/pi) (g + 0.044715 g^3)))); gate, up, out: [n_tokens, dim]. out may alias gate or up.
void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n_tokens, int64_t dim);

// x[i] = cap * tanh(x[i] / cap) for i < n (Gemma's logit soft-capping). In place.
void softcap(float* x, int64_t n, float cap);

// Rotary position embedding, HF "rotate_half" layout: for each head, the pair (i, i + head_dim/2)
// is rotated by angle pos * theta^(-2i/head_dim).
// x: [n_tokens, n_heads, head_dim], positions: [n_tokens]. In place.
void rope(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
          float theta);
// inv_freq[i] = theta^(-2i/head_dim) for i < head_dim / 2 (fp32, as transformers computes it).
void rope_default_inv_freq(float theta, int64_t head_dim, float* inv_freq);

// The same with given inverse frequencies: the pair (i, i + head_dim/2) is rotated by
// pos * inv_freq[i]; inv_freq: [head_dim / 2] (sparsa/model.h rope_inv_freq for scaled RoPE).
void rope_with_freqs(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                     const float* inv_freq);

// What differs between families' attention; the defaults are plain causal attention.
struct AttentionOptions {
  float scale = 0;          // > 0: the scores' scale; 0: 1 / sqrt(head_dim)
  int64_t window = 0;       // > 0: the query at i sees keys j with i - window < j <= i only
  float softcap = 0;        // > 0: scaled scores s -> softcap * tanh(s / softcap) before the softmax
};

// Causal multi-head attention with grouped K/V heads (head h reads kv head h / (n_heads / n_kv_heads)):
// out_h = softmax(q_h k_g^T / sqrt(head_dim), causal) v_g over one window (positions 0..n-1),
// changed by `opt` (scale, sliding window, soft-capping).
// q, out: [n_tokens, n_heads * head_dim]; k, v: [n_tokens, n_kv_heads * head_dim].
void causal_attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, const AttentionOptions& opt = {});

// y[t, o] = beta * y[t, o] + sum_i x[t, i] * w[o, i] (+ bias[o] when bias != nullptr).
// x: [n_tokens, in]; w: [out, in] (nn.Linear layout); bias: [out] or nullptr; y: [n_tokens, out].
void linear(const float* x, const float* w, const float* bias, float* y, int64_t n_tokens, int64_t in,
            int64_t out, float beta);

}  // namespace sparsa
