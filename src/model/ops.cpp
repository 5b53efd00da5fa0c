#include "sparsa/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "sparsa/model.h"

namespace sparsa {

namespace {

// RMSNorm with the weight w (kUnitOffset false) or 1 + w (Gemma).
template <bool kUnitOffset>
void rmsnorm_rows(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xr = x + t * dim;
    float* yr = y + t * dim;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * scale * (kUnitOffset ? 1.0f + weight[i] : weight[i]);
  }
}

}  // namespace

void rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps) {
  rmsnorm_rows<false>(x, weight, y, n_tokens, dim, eps);
}

void rmsnorm_unit_offset(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t dim, float eps) {
  rmsnorm_rows<true>(x, weight, y, n_tokens, dim, eps);
}

void layernorm(const float* x, const float* weight, const float* bias, float* y, int64_t n_tokens, int64_t dim,
               float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xr = x + t * dim;
    float* yr = y + t * dim;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const float mean = sum / static_cast<float>(dim);
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mean) * scale * weight[i] + (bias ? bias[i] : 0.0f);
  }
}

void relu(float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n_tokens, int64_t dim) {
  const int64_t n = n_tokens * dim;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n_tokens, int64_t dim) {
  const int64_t n = n_tokens * dim;
  constexpr float kBeta = 0.7978845608028654f;  // sqrt(2 / pi)
  constexpr float kKappa = 0.044715f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(kBeta * (g + kKappa * g * g * g))) * up[i];
  }
}

void softcap(float* x, int64_t n, float cap) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void rope_default_inv_freq(float theta, int64_t head_dim, float* inv_freq) {
  for (int64_t i = 0; i < head_dim / 2; ++i)
    inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
}

std::vector<float> rope_inv_freq(const RopeParams& p, int64_t head_dim) {
  std::vector<float> f(static_cast<size_t>(head_dim / 2));  // [head_dim / 2]
  rope_default_inv_freq(p.theta, head_dim, f.data());
  if (p.type == RopeType::kLinear) {
    for (float& v : f) v /= p.factor;
  } else if (p.type == RopeType::kLlama3) {
    const float original = static_cast<float>(p.original_max_position);
    const float low_wavelen = original / p.low_freq_factor, high_wavelen = original / p.high_freq_factor;
    const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
    for (float& v : f) {  // torch computes scalar / tensor as reciprocal(tensor) * scalar
      const float wavelen = (1.0f / v) * two_pi;
      const float scaled = wavelen > low_wavelen ? v / p.factor : v;
      const float smooth = ((1.0f / wavelen) * original - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      v = medium ? (1.0f - smooth) * scaled / p.factor + smooth * scaled : scaled;
    }
  }
  return f;
}

void rope(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
          float theta) {
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));  // [head_dim / 2]
  rope_default_inv_freq(theta, head_dim, inv_freq.data());
  rope_with_freqs(x, positions, n_tokens, n_heads, head_dim, inv_freq.data());
}

void rope_with_freqs(float* x, const int32_t* positions, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                     const float* inv_freq) {
  const int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float pos = static_cast<float>(positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_dim;
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

void linear(const float* x, const float* w, const float* bias, float* y, int64_t n_tokens, int64_t in,
            int64_t out, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(out),
              static_cast<int>(in), 1.0f, x, static_cast<int>(in), w, static_cast<int>(in), beta, y,
              static_cast<int>(out));
  if (bias) {
#pragma omp parallel for schedule(static) if (n_tokens * out > 65536)
    for (int64_t t = 0; t < n_tokens; ++t)
#pragma omp simd
      for (int64_t o = 0; o < out; ++o) y[t * out + o] += bias[o];
  }
}

}  // namespace sparsa
