// Causal grouped-query attention on the CPU: per (head, block of query rows) work items,
// each a pair of single-threaded sgemms over only the keys the rows may see.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/vec_math.h"
#include "sparsa/ops.h"
#include "sparsa/parallel.h"

namespace sparsa {
namespace {

constexpr int64_t kRowBlock = 64;

// scores: [rows, ld] where row r (absolute position r0 + r) sees keys 0..r0 + r, or only the last
// opt.window of them. Replaces each row by its softmax over the visible keys (soft-capped first
// when opt.softcap > 0) and zeroes the rest.
void causal_softmax_rows(float* scores, int64_t rows, int64_t ld, int64_t r0, float scale,
                         const AttentionOptions& opt) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * ld;
    const int64_t end = r0 + r + 1, first = opt.window > 0 ? std::max<int64_t>(0, end - opt.window) : 0;
    float* s = row + first;
    const int64_t visible = end - first;
    float exp_scale = scale;
    if (opt.softcap > 0) {
      for (int64_t j = 0; j < visible; ++j) s[j] = opt.softcap * std::tanh(s[j] * scale / opt.softcap);
      exp_scale = 1.0f;
    }
    float mx = -INFINITY;
    for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, s[j]);
    const float sum = sum_exp(s, visible, mx, exp_scale, s);
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < visible; ++j) s[j] *= inv;
    std::fill(row, s, 0.0f);
    std::fill(row + end, row + ld, 0.0f);
  }
}

}  // namespace

void causal_attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens,
                      int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, const AttentionOptions& opt) {
  const int64_t q_ld = n_heads * head_dim, kv_ld = n_kv_heads * head_dim;
  const int64_t group = n_heads / n_kv_heads;
  const int64_t n_blocks = (n_tokens + kRowBlock - 1) / kRowBlock;
  const float scale = opt.scale > 0 ? opt.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int64_t n_items = n_heads * n_blocks;

  ParallelFailure failure;
#pragma omp parallel
  {
    std::vector<float> scores;  // [kRowBlock, n_tokens]
    failure.run([&] { scores.resize(static_cast<size_t>(kRowBlock * n_tokens)); });
    // Later blocks see more keys: hand out the largest items first for balance.
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      if (failure.failed()) continue;
      const int64_t blk = n_blocks - 1 - item / n_heads, h = item % n_heads, g = h / group;
      const int64_t r0 = blk * kRowBlock, rows = std::min(kRowBlock, n_tokens - r0), keys = r0 + rows;
      // scores[rows, keys] = q_h[r0 : r0+rows] · k_g[0 : keys]^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(keys),
                  static_cast<int>(head_dim), 1.0f, q + r0 * q_ld + h * head_dim, static_cast<int>(q_ld),
                  k + g * head_dim, static_cast<int>(kv_ld), 0.0f, scores.data(), static_cast<int>(keys));
      causal_softmax_rows(scores.data(), rows, keys, r0, scale, opt);
      // out_h[r0 : r0+rows] = P[rows, keys] · v_g[0 : keys]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(head_dim),
                  static_cast<int>(keys), 1.0f, scores.data(), static_cast<int>(keys), v + g * head_dim,
                  static_cast<int>(kv_ld), 0.0f, out + r0 * q_ld + h * head_dim, static_cast<int>(q_ld));
    }
  }
  failure.rethrow_if_any([&] {
    return fmt::format("computing attention scores [{}, {}] per thread ({} tokens)", kRowBlock, n_tokens, n_tokens);
  });
}

}  // namespace sparsa
