// Every GPU op launcher of src/cuda against its CPU reference, after llama.cpp's test-backend-ops:
// one table of ops, each with a generator of random non-zero inputs (odd sizes included), the
// launcher(s), the reference and a tolerance. GpuOps.EveryLauncherIsInTheTable reads the
// launchers declared in src/cuda/*.cuh (every top-level function declaration there) and fails when
// one has no case here, so a new op cannot land untested; GpuOps.DriversHoldNoKernels keeps
// kernels out of src/gpu. Both run in every build. The op cases skip without a CUDA device
// (CPU-only builds, CI).
//
// Tolerances, per element |gpu - ref| <= atol + rtol * |ref|, are stated in each case: exact (0, 0)
// where the GPU computes the reference's expression element by element; fp32 rounding-order
// bounds where it reduces in another order; one bf16 ulp where results are rounded to bf16.
#include "gemv_test_support.h"
#include "test_support.h"

#include "sparsa/cuda.h"
#include "sparsa/ops.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/sparse_gemv_2to4.h"
#include "sparsa/sparse_gemv_blocks.h"
#include "sparsa/sparse_gemv_masked.h"
#include "sparsa/tensor.h"

#ifdef SPARSA_WITH_CUDA
#include "cuda/argmax.cuh"
#include "cuda/convert.cuh"
#include "cuda/decode_attention.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/fill_random.cuh"
#include "cuda/gelu_tanh_mul.cuh"
#include "cuda/get_rows.cuh"
#include "cuda/layernorm.cuh"
#include "cuda/nll.cuh"
#include "cuda/read_bandwidth.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/rope.cuh"
#include "cuda/silu_mul.cuh"
#include "cuda/softmax.cuh"
#include "cuda/sparsegpt.cuh"
#include "cuda/sqsum.cuh"
#include "cuda/wanda_select.cuh"
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numbers>
#include <numeric>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace sparsa {
namespace {

// One row of the table: the op, the launchers of src/cuda/*.cuh it checks, and the check
// (generate, launch, reference, compare). `check` is null in CPU-only builds.
struct OpCase {
  std::string name;
  std::vector<std::string> launchers;
  void (*check)();
};

// ---- helpers ----

struct Tol {
  double atol, rtol;
};

// Expects got ≈ want element-wise within `tol`; names `what` and the first mismatch.
template <typename T>
void expect_close(const std::vector<T>& want, const std::vector<T>& got, Tol tol, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  size_t bad = 0, first = 0;
  double worst = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double w = static_cast<double>(want[i]), err = std::abs(static_cast<double>(got[i]) - w);
    worst = std::max(worst, err);
    if (!(err <= tol.atol + tol.rtol * std::abs(w)) && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " outside tolerance; first at " << first
                     << ": ref " << static_cast<double>(want[first]) << " gpu " << static_cast<double>(got[first])
                     << "; worst abs err " << worst;
}

// n values with |v| uniform in [lo, hi) (lo > 0) and a random sign: never zero.
std::vector<float> nonzero(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(lo, hi);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> v(n);
  for (float& x : v) x = negative(rng) ? -mag(rng) : mag(rng);
  return v;
}

std::vector<float> positive(size_t n, float lo, float hi, uint32_t seed) {
  return test::random_uniform(n, lo, hi, seed);
}

std::vector<int32_t> random_ids(size_t n, int32_t below, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, below - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = id(rng);
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
  return h;
}

std::vector<float> from_bf16(const std::vector<uint16_t>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); ++i) v[i] = bf16_to_f32(h[i]);
  return v;
}

// v rounded to bf16 and back.
std::vector<float> bf16_rounded(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }

constexpr Tol kExact{0.0, 0.0};
constexpr Tol kBf16Ulp{1e-6, 8e-3};  // one bf16 ulp (2^-7 relative) of a value computed in fp32

#ifdef SPARSA_WITH_CUDA

std::vector<float> run_rmsnorm_ref(std::vector<float> x, const std::vector<float>& w, int64_t n, int64_t dim,
                                   float eps) {
  std::vector<float> y(x.size());
  rmsnorm(x.data(), w.data(), y.data(), n, dim, eps);
  return y;
}

// ---- rmsnorm.cuh ----

void check_rmsnorm() {
  for (const auto [n, dim] : {std::pair<int64_t, int64_t>{5, 1031}, {3, 7}}) {
    const auto x = nonzero(static_cast<size_t>(n * dim), 0.01f, 3.0f, 1);  // [n, dim]
    const auto w = positive(static_cast<size_t>(dim), 0.5f, 1.5f, 2);      // [dim]
    DeviceBuffer<float> dx(x), dw(w), dy(x.size());
    cuda::launch_rmsnorm(dx.data(), dw.data(), dy.data(), n, dim, 1e-5f);
    // The sum of squares is reduced in another order: a few fp32 ulp.
    expect_close(run_rmsnorm_ref(x, w, n, dim, 1e-5f), dy.download(), Tol{1e-6, 1e-5},
                 "rmsnorm " + std::to_string(dim));
  }
  // The fused residual form: x += delta (exact fp32 adds), then y = rmsnorm(x); and without delta.
  const int64_t n = 2, dim = 2053;
  const auto x = nonzero(static_cast<size_t>(n * dim), 0.01f, 3.0f, 3), delta = nonzero(x.size(), 0.01f, 1.0f, 4);
  const auto w = positive(static_cast<size_t>(dim), 0.5f, 1.5f, 5);
  std::vector<float> sum(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + delta[i];
  DeviceBuffer<float> dx(x), dd(delta), dw(w), dy(x.size());
  cuda::launch_residual_rmsnorm(dx.data(), dd.data(), dw.data(), dy.data(), n, dim, 1e-6f, nullptr);
  expect_close(sum, dx.download(), kExact, "residual_rmsnorm x + delta");
  expect_close(run_rmsnorm_ref(sum, w, n, dim, 1e-6f), dy.download(), Tol{1e-6, 1e-5}, "residual_rmsnorm y");
  cuda::launch_residual_rmsnorm(dx.data(), nullptr, dw.data(), dy.data(), n, dim, 1e-6f, nullptr);
  expect_close(sum, dx.download(), kExact, "residual_rmsnorm without delta keeps x");
  expect_close(run_rmsnorm_ref(sum, w, n, dim, 1e-6f), dy.download(), Tol{1e-6, 1e-5}, "residual_rmsnorm no delta");
}

// ---- rope.cuh ----

// sin/cos differ from glibc's by a few ulp; at position ~1000 that is ~1e-4 of the angle's
// period, hence the looser bound than test-cuda-ops' small positions.
constexpr Tol kRopeTol{1e-5, 1e-4};

void check_rope() {
  const int64_t n = 4, heads = 3, hd = 10;
  const float theta = 10000.0f;
  const std::vector<int32_t> positions = {0, 7, 1000, 31};
  const auto x = nonzero(static_cast<size_t>(n * heads * hd), 0.01f, 2.0f, 6);  // [n, heads, hd]
  std::vector<float> want = x;
  rope(want.data(), positions.data(), n, heads, hd, theta);
  DeviceBuffer<float> dx(x);
  DeviceBuffer<int32_t> dp(positions);
  cuda::launch_rope(dx.data(), dp.data(), n, heads, hd, cuda::rope_freqs(hd, theta));
  expect_close(want, dx.download(), kRopeTol, "rope");
}

// q | k | v of one token at position `pos`; RoPE on q and k, k and v appended to the caches.
void check_rope_append_elem(cuda::Elem e) {
  const int64_t heads = 4, kv_heads = 2, hd = 64, max_seq = 16, q_dim = heads * hd, kv_dim = kv_heads * hd;
  const int32_t pos = 5;
  const float theta = 500000.0f;
  const auto qkv = nonzero(static_cast<size_t>(q_dim + 2 * kv_dim), 0.01f, 2.0f, 7);
  std::vector<float> q(qkv.begin(), qkv.begin() + q_dim), k(qkv.begin() + q_dim, qkv.begin() + q_dim + kv_dim),
      v(qkv.begin() + q_dim + kv_dim, qkv.end());
  rope(q.data(), &pos, 1, heads, hd, theta);
  rope(k.data(), &pos, 1, kv_heads, hd, theta);
  const bool bf16 = e == cuda::Elem::kBf16;
  const size_t cache_bytes = static_cast<size_t>(max_seq * kv_dim) * (bf16 ? 2 : 4);
  DeviceBuffer<float> dqkv(qkv);
  DeviceBuffer<uint8_t> kc(std::vector<uint8_t>(cache_bytes, 0)), vc(std::vector<uint8_t>(cache_bytes, 0));
  DeviceBuffer<int32_t> dpos(std::vector<int32_t>{pos});
  cuda::launch_rope_append(dqkv.data(), kc.data(), vc.data(), e, dpos.data(), heads, kv_heads, hd,
                           cuda::rope_freqs(hd, theta), nullptr);
  const auto got = dqkv.download();
  expect_close(q, std::vector<float>(got.begin(), got.begin() + q_dim), kRopeTol, "rope_append q");
  // Row `pos` of each cache, widened.
  auto cache_row = [&](const DeviceBuffer<uint8_t>& c) {
    const auto bytes = c.download();
    std::vector<float> row(static_cast<size_t>(kv_dim));
    for (int64_t i = 0; i < kv_dim; ++i) {
      const size_t at = static_cast<size_t>(pos * kv_dim + i);
      if (bf16) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + at * 2, 2);
        row[static_cast<size_t>(i)] = bf16_to_f32(h);
      } else {
        std::memcpy(&row[static_cast<size_t>(i)], bytes.data() + at * 4, 4);
      }
    }
    return row;
  };
  expect_close(bf16 ? bf16_rounded(k) : k, cache_row(kc), bf16 ? Tol{kRopeTol.atol, 8e-3} : kRopeTol,
               "rope_append k cache");
  expect_close(bf16 ? bf16_rounded(v) : v, cache_row(vc), kExact, "rope_append v cache");
}

void check_rope_append() {
  check_rope_append_elem(cuda::Elem::kF32);
  check_rope_append_elem(cuda::Elem::kBf16);
}

// ---- silu_mul.cuh ----

void check_silu_mul() {
  const int64_t n = 4 * 1001 + 3;  // the float4 body and a scalar tail
  const auto g = nonzero(static_cast<size_t>(n), 0.01f, 6.0f, 8), u = nonzero(static_cast<size_t>(n), 0.01f, 2.0f, 9);
  std::vector<float> want(g.size());
  silu_mul(g.data(), u.data(), want.data(), 1, n);
  DeviceBuffer<float> dg(g), du(u), dout(g.size());
  cuda::launch_silu_mul(dg.data(), du.data(), dout.data(), n);
  expect_close(want, dout.download(), Tol{1e-7, 4e-6}, "silu_mul");  // CUDA expf: 2 ulp
}

// ---- gelu_tanh_mul.cuh ----

void check_gelu_tanh_mul() {
  const int64_t n = 4 * 1001 + 3;
  const auto g = nonzero(static_cast<size_t>(n), 0.01f, 6.0f, 40), u = nonzero(static_cast<size_t>(n), 0.01f, 2.0f, 41);
  std::vector<float> want(g.size());
  gelu_tanh_mul(g.data(), u.data(), want.data(), 1, n);
  DeviceBuffer<float> dg(g), du(u), dout(g.size());
  cuda::launch_gelu_tanh_mul(dg.data(), du.data(), dout.data(), n);
  // CUDA tanhf: 2 ulp; near g ≈ -3 the product 0.5 g (1 + tanh) cancels, hence the absolute term.
  expect_close(want, dout.download(), Tol{1e-6, 1e-5}, "gelu_tanh_mul");
}

// ---- layernorm.cuh ----

void check_layernorm() {
  for (const auto [n, dim] : {std::pair<int64_t, int64_t>{5, 1031}, {3, 7}}) {
    // An offset mean, as OPT's residual stream has: the centring must not lose it.
    auto x = nonzero(static_cast<size_t>(n * dim), 0.01f, 3.0f, 42);
    for (float& v : x) v += 1.5f;
    const auto w = positive(static_cast<size_t>(dim), 0.5f, 1.5f, 43), b = nonzero(static_cast<size_t>(dim), 0.01f, 0.5f, 44);
    for (const bool with_bias : {true, false}) {
      std::vector<float> want(x.size());
      layernorm(x.data(), w.data(), with_bias ? b.data() : nullptr, want.data(), n, dim, 1e-5f);
      DeviceBuffer<float> dx(x), dw(w), db(b);
      cuda::launch_layernorm(dx.data(), dw.data(), with_bias ? db.data() : nullptr, dx.data(), n, dim, 1e-5f);
      // Mean and variance reduced in another order: a few fp32 ulp.
      expect_close(want, dx.download(), Tol{1e-5, 1e-5},
                   "layernorm in place " + std::to_string(dim) + (with_bias ? " with bias" : ""));
    }
  }
}

// ---- convert.cuh ----

void check_convert() {
  const auto x = nonzero(1003, 1e-3f, 100.0f, 10);
  for (const bool bf16 : {true, false}) {
    std::vector<uint16_t> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = bf16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
    DeviceBuffer<float> dx(x), back(x.size());
    DeviceBuffer<uint16_t> dh(x.size());
    cuda::launch_to_half(dx.data(), dh.data(), static_cast<int64_t>(x.size()), bf16);
    EXPECT_EQ(want, dh.download()) << (bf16 ? "to bf16" : "to f16");
    cuda::launch_from_half(dh.data(), back.data(), static_cast<int64_t>(x.size()), bf16);
    std::vector<float> widened(x.size());
    for (size_t i = 0; i < x.size(); ++i) widened[i] = bf16 ? bf16_to_f32(want[i]) : f16_to_f32(want[i]);
    expect_close(widened, back.download(), kExact, bf16 ? "from bf16" : "from f16");
  }
}

// ---- elementwise.cuh ----

void check_elementwise() {
  const int64_t rows = 7, cols = 33, n = rows * cols;
  const auto w = nonzero(static_cast<size_t>(n), 0.01f, 1.0f, 11);
  std::vector<uint8_t> mask(w.size());
  std::mt19937 rng(12);
  for (uint8_t& m : mask) m = static_cast<uint8_t>(rng() % 2);
  std::vector<float> masked = w;
  for (size_t i = 0; i < w.size(); ++i)
    if (mask[i]) masked[i] = 0.0f;
  DeviceBuffer<float> dw(w);
  DeviceBuffer<uint8_t> dm(mask);
  cuda::launch_apply_mask(dw.data(), dm.data(), n, 4);
  expect_close(masked, dw.download(), kExact, "apply_mask fp32");
  DeviceBuffer<uint16_t> dh(to_bf16(w));
  cuda::launch_apply_mask(dh.data(), dm.data(), n, 2);
  expect_close(bf16_rounded(masked), from_bf16(dh.download()), kExact, "apply_mask bf16");

  const auto b = nonzero(static_cast<size_t>(cols), 0.01f, 1.0f, 13);
  std::vector<float> biased = w;
  for (int64_t i = 0; i < n; ++i) biased[static_cast<size_t>(i)] += b[static_cast<size_t>(i % cols)];
  DeviceBuffer<float> dy(w), db(b);
  cuda::launch_add_bias(dy.data(), db.data(), rows, cols);
  expect_close(biased, dy.download(), kExact, "add_bias");

  std::vector<float> scaled = w;
  for (float& v : scaled) v *= 0.37f;
  DeviceBuffer<float> ds(w);
  cuda::launch_scale(ds.data(), ds.data(), 0.37f, n);
  expect_close(scaled, ds.download(), kExact, "scale in place");

  std::vector<float> sum = w, rectified = w, capped = w;
  for (size_t i = 0; i < w.size(); ++i) sum[i] += b[i % static_cast<size_t>(cols)];
  std::vector<float> bias_rows(w.size());
  for (size_t i = 0; i < w.size(); ++i) bias_rows[i] = b[i % static_cast<size_t>(cols)];
  DeviceBuffer<float> da(w), dr(bias_rows);
  cuda::launch_add(da.data(), dr.data(), n);
  expect_close(sum, da.download(), kExact, "add");
  std::vector<float> zeroed = w;
  for (float& v : zeroed) v = std::fabs(v) <= 0.4f ? 0.0f : v;
  DeviceBuffer<float> dzs(w);
  cuda::launch_zero_small(dzs.data(), n, 0.4f);
  expect_close(zeroed, dzs.download(), kExact, "zero_small");
  cuda::launch_zero_small(dzs.data(), n, -1.0f);  // dense: nothing changes
  expect_close(zeroed, dzs.download(), kExact, "zero_small dense");
  relu(rectified.data(), n);
  DeviceBuffer<float> dz(w);
  cuda::launch_relu(dz.data(), n);
  expect_close(rectified, dz.download(), kExact, "relu");
  std::vector<float> big = w;
  for (float& v : big) v *= 40.0f;  // past the cap, where tanh bends
  capped = big;
  softcap(capped.data(), n, 30.0f);
  DeviceBuffer<float> dc(big);
  cuda::launch_softcap(dc.data(), n, 30.0f);
  expect_close(capped, dc.download(), Tol{1e-6, 1e-6}, "softcap");  // CUDA tanhf: 2 ulp
}

// ---- get_rows.cuh ----

void check_get_rows() {
  const int64_t vocab = 50, dim = 37, n = 9;
  const auto table = nonzero(static_cast<size_t>(vocab * dim), 0.01f, 1.0f, 14);
  const auto tokens = random_ids(static_cast<size_t>(n), static_cast<int32_t>(vocab), 15);
  std::vector<float> want;
  for (int32_t t : tokens) want.insert(want.end(), table.begin() + t * dim, table.begin() + (t + 1) * dim);
  DeviceBuffer<float> dt(table), dx(static_cast<size_t>(n * dim));
  DeviceBuffer<int32_t> dtok(tokens);
  cuda::launch_gather_rows(dt.data(), dtok.data(), dx.data(), n, dim);
  expect_close(want, dx.download(), kExact, "gather_rows");

  // Learned positions (OPT: offset 2): windows of 4 tokens, each from position 0.
  const int64_t seqlen = 4, offset = 2, n_pos = seqlen + offset;
  const auto pos_table = nonzero(static_cast<size_t>(n_pos * dim), 0.01f, 1.0f, 45);
  std::vector<float> with_pos = want;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dim; ++i)
      with_pos[static_cast<size_t>(t * dim + i)] += pos_table[static_cast<size_t>((t % seqlen + offset) * dim + i)];
  DeviceBuffer<float> dpt(pos_table);
  cuda::launch_add_position_rows(dpt.data(), offset, seqlen, dx.data(), n, dim);
  expect_close(with_pos, dx.download(), kExact, "add_position_rows");

  // The decoder's lookup: the token at device position 2, from a bf16 table.
  const auto table16 = to_bf16(table);
  DeviceBuffer<uint16_t> dt16(table16);
  DeviceBuffer<int32_t> dpos(std::vector<int32_t>{2});
  DeviceBuffer<float> drow(static_cast<size_t>(dim));
  cuda::launch_embed_row(dt16.data(), cuda::Elem::kBf16, dtok.data(), dpos.data(), drow.data(), dim, nullptr);
  const auto row = from_bf16(std::vector<uint16_t>(table16.begin() + tokens[2] * dim,
                                                   table16.begin() + (tokens[2] + 1) * dim));
  expect_close(row, drow.download(), kExact, "embed_row");
}

// ---- softmax.cuh ----

// The CPU attention's softmax (src/model/attention.cpp) in double: rows of `seqlen` keys, row r
// the query at position r % seqlen, window and soft-capping as AttentionOptions.
std::vector<float> causal_softmax_ref(const std::vector<float>& scores, int64_t rows, int64_t seqlen,
                                      const cuda::CausalSoftmaxOptions& o) {
  std::vector<float> want(scores.size(), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scores.data() + r * seqlen;
    const int64_t end = r % seqlen + 1, first = o.window > 0 ? std::max<int64_t>(0, end - o.window) : 0;
    std::vector<double> v(static_cast<size_t>(end - first));
    for (int64_t j = first; j < end; ++j) {
      const double x = s[j];
      v[static_cast<size_t>(j - first)] = o.softcap > 0 ? o.softcap * std::tanh(x * o.scale / o.softcap) : x * o.scale;
    }
    const double mx = *std::max_element(v.begin(), v.end());
    double sum = 0.0;
    for (double x : v) sum += std::exp(x - mx);
    for (int64_t j = first; j < end; ++j)
      want[static_cast<size_t>(r * seqlen + j)] = static_cast<float>(std::exp(v[static_cast<size_t>(j - first)] - mx) / sum);
  }
  return want;
}

void check_causal_softmax() {
  const int64_t heads = 3, seqlen = 19, rows = heads * seqlen;
  const auto scores = nonzero(static_cast<size_t>(rows * seqlen), 0.01f, 8.0f, 16);
  cuda::CausalSoftmaxOptions plain, window, capped;
  plain.scale = window.scale = capped.scale = 0.3f;
  window.window = 5;  // shorter than the window of 19: rows past position 4 drop their first keys
  capped.softcap = 1.5f;
  for (const auto& [o, what] : {std::pair{plain, "causal"}, std::pair{window, "sliding window 5"},
                                std::pair{capped, "soft-capped"}}) {
    const std::vector<float> want = causal_softmax_ref(scores, rows, seqlen, o);
    DeviceBuffer<float> ds(scores), dp(scores.size());
    cuda::launch_causal_softmax(ds.data(), dp.data(), rows, seqlen, o, false, false);
    expect_close(want, dp.download(), Tol{1e-7, 1e-5}, std::string("causal_softmax fp32 ") + what);
    DeviceBuffer<uint16_t> dh(scores.size());
    cuda::launch_causal_softmax(ds.data(), dh.data(), rows, seqlen, o, true, true);
    expect_close(want, from_bf16(dh.download()), kBf16Ulp, std::string("causal_softmax bf16 ") + what);
  }
}

// ---- nll.cuh ----

void check_row_nll() {
  const int64_t n = 8, vocab = 1001;
  auto logits = nonzero(static_cast<size_t>(n * vocab), 0.01f, 5.0f, 17);
  auto targets = random_ids(static_cast<size_t>(n), static_cast<int32_t>(vocab), 18);
  // Greedy rows: row 5's target is its maximum; rows 6 and 7 hold the maximum twice, at 300 and
  // 700 (row 6's target is the first, row 7's the second: not greedy, as numpy's argmax says).
  logits[5 * vocab + targets[5]] = 9.0f;
  logits[6 * vocab + 300] = logits[6 * vocab + 700] = 9.0f, targets[6] = 300;
  logits[7 * vocab + 300] = logits[7 * vocab + 700] = 9.0f, targets[7] = 700;
  std::vector<double> want(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    const float* row = logits.data() + t * vocab;
    const float mx = *std::max_element(row, row + vocab);
    double sum = 0.0;
    for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
    want[static_cast<size_t>(t)] = mx + std::log(sum) - row[targets[static_cast<size_t>(t)]];
  }
  DeviceBuffer<float> dl(logits);
  DeviceBuffer<int32_t> dt(targets);
  DeviceBuffer<double> dnll(static_cast<size_t>(n));
  cuda::launch_row_nll(dl.data(), dt.data(), dnll.data(), n, vocab);
  expect_close(want, dnll.download(), Tol{1e-5, 1e-6}, "row_nll");  // fp32 sum of exp
  std::vector<uint8_t> want_greedy(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    const float* row = logits.data() + t * vocab;
    want_greedy[static_cast<size_t>(t)] = std::max_element(row, row + vocab) - row == targets[static_cast<size_t>(t)];
  }
  EXPECT_EQ(want_greedy, (std::vector<uint8_t>{0, 0, 0, 0, 0, 1, 1, 0})) << "the cases above";
  DeviceBuffer<uint8_t> dgreedy(static_cast<size_t>(n));
  DeviceBuffer<double> dnll2(static_cast<size_t>(n));
  cuda::launch_row_nll(dl.data(), dt.data(), dnll2.data(), n, vocab, dgreedy.data());
  expect_close(want, dnll2.download(), Tol{1e-5, 1e-6}, "row_nll with greedy");
  EXPECT_EQ(want_greedy, dgreedy.download()) << "row_nll greedy flags";
}

// ---- sqsum.cuh ----

void check_sqsum() {
  const int64_t n_tokens = 600, cols = 37, samples = 3;  // two full slices and a partial one
  const auto x = nonzero(static_cast<size_t>(n_tokens * cols), 0.01f, 2.0f, 19);
  const auto acc0 = positive(static_cast<size_t>(cols), 1.0f, 2.0f, 20);
  for (const bool bf16 : {false, true}) {
    const std::vector<float> seen = bf16 ? bf16_rounded(x) : x;
    std::vector<double> want(acc0.begin(), acc0.end());
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t c = 0; c < cols; ++c) {
        const double v = seen[static_cast<size_t>(t * cols + c)];
        want[static_cast<size_t>(c)] += v * v;
      }
    DeviceBuffer<double> acc(std::vector<double>(acc0.begin(), acc0.end()));
    DeviceBuffer<float> partial(static_cast<size_t>((n_tokens + cuda::kSqsumSlice - 1) / cuda::kSqsumSlice * cols));
    DeviceBuffer<float> dx(x);
    DeviceBuffer<uint16_t> dh(to_bf16(x));
    if (bf16)
      cuda::launch_col_sqsum(nullptr, dh.data(), true, acc.data(), partial.data(), n_tokens, cols);
    else
      cuda::launch_col_sqsum(dx.data(), nullptr, false, acc.data(), partial.data(), n_tokens, cols);
    const auto got = acc.download();
    expect_close(want, got, Tol{0.0, 3e-5}, bf16 ? "col_sqsum bf16" : "col_sqsum fp32");  // fp32 slices
    std::vector<float> norm(static_cast<size_t>(cols));
    for (size_t c = 0; c < norm.size(); ++c)
      norm[c] = std::sqrt(static_cast<float>(got[c] / static_cast<double>(samples)));
    DeviceBuffer<float> dnorm(static_cast<size_t>(cols));
    cuda::launch_mean_sqrt(acc.data(), dnorm.data(), cols, samples);
    expect_close(norm, dnorm.download(), kExact, "mean_sqrt");
  }
}

// ---- wanda_select.cuh ----

// 1 for the k lowest of scores[idx...] in (score, position) order.
void mark_lowest(const std::vector<float>& score, int64_t from, int64_t width, int64_t k, uint8_t* mask) {
  std::vector<int64_t> order(static_cast<size_t>(width));
  std::iota(order.begin(), order.end(), 0);
  const float* s = score.data() + from;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
  for (int64_t i = 0; i < k; ++i) mask[from + order[static_cast<size_t>(i)]] = 1;
}

void check_wanda_select() {
  const int64_t rows = 9, cols = 1028, k = 514;
  const auto w = nonzero(static_cast<size_t>(rows * cols), 1e-3f, 1.0f, 21);
  const auto norm = positive(static_cast<size_t>(cols), 0.1f, 3.0f, 22);
  std::vector<float> score(w.size());
  for (size_t i = 0; i < w.size(); ++i) score[i] = std::abs(w[i]) * norm[i % static_cast<size_t>(cols)];
  std::vector<uint8_t> want_u(w.size(), 0), want_nm(w.size(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    mark_lowest(score, r * cols, cols, k, want_u.data());
    for (int64_t g = 0; g < cols; g += 4) mark_lowest(score, r * cols + g, 4, 2, want_nm.data());
  }
  DeviceBuffer<float> dw(w), dn(norm);
  DeviceBuffer<uint8_t> dm(w.size());
  cuda::launch_row_lowest(dw.data(), dn.data(), dm.data(), rows, cols, k);
  EXPECT_EQ(want_u, dm.download()) << "row_lowest";
  cuda::launch_nm_lowest(dw.data(), dn.data(), dm.data(), rows, cols, 2, 4);
  EXPECT_EQ(want_nm, dm.download()) << "nm_lowest 2:4";
}

// ---- sparsegpt.cuh ----

void check_sparsegpt_prepare() {
  const int64_t rows = 6, cols = 40;
  const float percdamp = 0.01f;
  auto h = positive(static_cast<size_t>(cols * cols), 0.1f, 1.0f, 23);
  h[3 * cols + 3] = 0.0f;  // dead inputs 3 and 17
  h[17 * cols + 17] = 0.0f;
  auto w = nonzero(static_cast<size_t>(rows * cols), 0.01f, 1.0f, 24);
  std::vector<float> want_h = h, want_w = w;
  double diag = 0.0;
  for (int64_t j = 0; j < cols; ++j) {
    float& d = want_h[static_cast<size_t>(j * cols + j)];
    if (d == 0.0f) {
      d = 1.0f;
      for (int64_t r = 0; r < rows; ++r) want_w[static_cast<size_t>(r * cols + j)] = 0.0f;
    }
    diag += d;
  }
  const float damp = percdamp * static_cast<float>(diag / static_cast<double>(cols));
  for (int64_t j = 0; j < cols; ++j) want_h[static_cast<size_t>(j * cols + j)] += damp;
  DeviceBuffer<float> dh(h), dw(w);
  cuda::launch_sparsegpt_prepare(dh.data(), dw.data(), rows, cols, percdamp);
  expect_close(want_h, dh.download(), Tol{0.0, 1e-6}, "sparsegpt_prepare h");  // the mean's sum order
  expect_close(want_w, dw.download(), kExact, "sparsegpt_prepare w");

  std::vector<float> upper = h;
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < i; ++j) upper[static_cast<size_t>(i * cols + j)] = 0.0f;
  DeviceBuffer<float> dz(h);
  cuda::launch_zero_lower(dz.data(), cols);
  expect_close(upper, dz.download(), kExact, "zero_lower");
}

// The fused column block [i1, i1 + count) of every row, as sparsegpt_prune's inner loop computes it.
struct BlockResult {
  std::vector<float> w, err;
  std::vector<uint8_t> mask;
};
BlockResult sparsegpt_block_ref(std::vector<float> w, const std::vector<float>& hinv, int64_t rows, int64_t cols,
                                int64_t i1, int64_t count, float thresh, int n, int m) {
  BlockResult out{{}, std::vector<float>(static_cast<size_t>(rows * count)), std::vector<uint8_t>(w.size(), 0)};
  auto h = [&](int64_t a, int64_t b) { return hinv[static_cast<size_t>((i1 + a) * cols + i1 + b)]; };
  auto score = [&](float v, int64_t c) { return v * v / (h(c, c) * h(c, c)); };
  for (int64_t r = 0; r < rows; ++r) {
    float* row = w.data() + r * cols + i1;
    std::vector<uint8_t> pruned(static_cast<size_t>(count), 0);
    if (n == 0)
      for (int64_t c = 0; c < count; ++c) pruned[static_cast<size_t>(c)] = score(row[c], c) <= thresh;
    for (int64_t i = 0; i < count; ++i) {
      if (n > 0 && i % m == 0) {
        const int64_t width = std::min<int64_t>(m, count - i);
        std::vector<float> s(static_cast<size_t>(width));
        for (int64_t a = 0; a < width; ++a) s[static_cast<size_t>(a)] = score(row[i + a], i + a);
        std::vector<uint8_t> low(static_cast<size_t>(width), 0);
        mark_lowest(s, 0, width, std::min<int64_t>(n, width), low.data());
        std::copy(low.begin(), low.end(), pruned.begin() + i);
      }
      const float q = pruned[static_cast<size_t>(i)] ? 0.0f : row[i];
      const float e = (row[i] - q) / h(i, i);
      for (int64_t c = i + 1; c < count; ++c) row[c] -= e * h(i, c);
      row[i] = q;
      out.err[static_cast<size_t>(r * count + i)] = e;
    }
    std::copy(pruned.begin(), pruned.end(), out.mask.begin() + r * cols + i1);
  }
  out.w = std::move(w);
  return out;
}

void check_sparsegpt_block() {
  const int64_t rows = 5, cols = 48, i1 = 8;
  const auto w = nonzero(static_cast<size_t>(rows * cols), 0.01f, 1.0f, 25);
  // An upper-triangular Hinv with a dominant diagonal, like a Cholesky factor.
  auto hinv = nonzero(static_cast<size_t>(cols * cols), 0.001f, 0.05f, 26);
  for (int64_t j = 0; j < cols; ++j) hinv[static_cast<size_t>(j * cols + j)] = 0.5f + 0.01f * static_cast<float>(j);

  const int64_t count = 33;  // odd, more than a warp
  std::vector<float> scores(static_cast<size_t>(rows * count));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < count; ++c) {
      const float v = w[static_cast<size_t>(r * cols + i1 + c)];
      const float d = hinv[static_cast<size_t>((i1 + c) * cols + i1 + c)];
      scores[static_cast<size_t>(r * count + c)] = v * v / (d * d);
    }
  DeviceBuffer<float> dw(w), dh(hinv), dscore(scores.size());
  cuda::launch_block_scores(dw.data(), dh.data(), dscore.data(), rows, cols, i1, count);
  expect_close(scores, dscore.download(), kExact, "block_scores");

  // kth_smallest: the threshold the driver takes for the unstructured block.
  std::vector<float> sorted = scores;
  std::sort(sorted.begin(), sorted.end());
  const int64_t k = static_cast<int64_t>(scores.size()) / 2;
  DeviceBuffer<float> dsorted(scores.size());
  const size_t temp_bytes = cuda::kth_smallest_temp_bytes(static_cast<int64_t>(scores.size()));
  DeviceBuffer<uint8_t> temp(temp_bytes);
  const float thresh = cuda::kth_smallest_device(dscore.data(), dsorted.data(), temp.data(), temp_bytes,
                                                 static_cast<int64_t>(scores.size()), k);
  EXPECT_EQ(sorted[static_cast<size_t>(k)], thresh) << "kth_smallest";

  for (const auto [n, m, cnt] : {std::tuple<int, int, int64_t>{0, 0, count}, {2, 4, 32}}) {
    const BlockResult want = sparsegpt_block_ref(w, hinv, rows, cols, i1, cnt, thresh, n, m);
    DeviceBuffer<float> bw(w), err(static_cast<size_t>(rows * cnt));
    DeviceBuffer<uint8_t> mask(std::vector<uint8_t>(w.size(), 0));
    cuda::launch_sparsegpt_block(bw.data(), dh.data(), mask.data(), err.data(), rows, cols, i1, cnt, thresh, n, m);
    const std::string what = n == 0 ? "sparsegpt_block unstructured" : "sparsegpt_block 2:4";
    EXPECT_EQ(want.mask, mask.download()) << what << " mask";
    // The GPU may fuse w - e * h into one rounding: a few ulp per column of the block.
    expect_close(want.w, bw.download(), Tol{1e-5, 1e-4}, what + " w");
    expect_close(want.err, err.download(), Tol{1e-5, 1e-4}, what + " err");
  }
}

// ---- decode_attention.cuh ----

// out [heads * hd] for q over cache rows 0..pos (fp64 softmax of q·k / sqrt(hd)).
std::vector<float> decode_attention_ref(const std::vector<float>& q, const std::vector<float>& kc,
                                        const std::vector<float>& vc, int64_t heads, int64_t kv_heads, int64_t hd,
                                        int64_t pos, int64_t window = 0) {
  const int64_t kv_dim = kv_heads * hd, group = heads / kv_heads;
  const int64_t first = window > 0 ? std::max<int64_t>(0, pos + 1 - window) : 0;  // keys first..pos
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<float> out(static_cast<size_t>(heads * hd));
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kvh = h / group;
    const float* qh = q.data() + h * hd;
    std::vector<double> s(static_cast<size_t>(pos + 1 - first));  // s[j - first]
    for (int64_t j = first; j <= pos; ++j) {
      const float* kj = kc.data() + j * kv_dim + kvh * hd;
      double dot = 0.0;
      for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(qh[i]) * kj[i];
      s[static_cast<size_t>(j - first)] = dot * scale;
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double sum = 0.0;
    for (double& v : s) sum += v = std::exp(v - mx);
    for (int64_t i = 0; i < hd; ++i) {
      double o = 0.0;
      for (int64_t j = first; j <= pos; ++j)
        o += s[static_cast<size_t>(j - first)] * vc[static_cast<size_t>(j * kv_dim + kvh * hd + i)];
      out[static_cast<size_t>(h * hd + i)] = static_cast<float>(o / sum);
    }
  }
  return out;
}

void check_decode_attention() {
  const int64_t heads = 4, kv_heads = 2, max_seq = 40, pos = 29;
  for (const auto [hd, e] : {std::pair<int64_t, cuda::Elem>{64, cuda::Elem::kF32}, {36, cuda::Elem::kBf16},
                             {64, cuda::Elem::kBf16}}) {
    const bool bf16 = e == cuda::Elem::kBf16;
    const auto q = nonzero(static_cast<size_t>(heads * hd), 0.01f, 1.0f, 27);
    auto kc = nonzero(static_cast<size_t>(max_seq * kv_heads * hd), 0.01f, 1.0f, 28);
    auto vc = nonzero(kc.size(), 0.01f, 1.0f, 29);
    if (bf16) {
      kc = bf16_rounded(kc);
      vc = bf16_rounded(vc);
    }
    DeviceBuffer<float> dq(q), dout(q.size()), dk32(kc), dv32(vc);
    DeviceBuffer<uint16_t> dk16(to_bf16(kc)), dv16(to_bf16(vc));
    DeviceBuffer<int32_t> dpos(std::vector<int32_t>{static_cast<int32_t>(pos)});
    const void* k = bf16 ? static_cast<const void*>(dk16.data()) : dk32.data();
    const void* v = bf16 ? static_cast<const void*>(dv16.data()) : dv32.data();
    // window 0: every key; 7: keys 23..29 (split unevenly over the cluster); 30 and 1000: all again.
    for (const int64_t window : {int64_t{0}, int64_t{7}, int64_t{30}, int64_t{1000}}) {
      cuda::launch_decode_attention(dq.data(), k, v, e, dpos.data(), dout.data(), heads, kv_heads, hd, max_seq, window,
                                    nullptr);
      expect_close(decode_attention_ref(q, kc, vc, heads, kv_heads, hd, pos, window), dout.download(), Tol{1e-5, 1e-4},
                   "decode_attention hd " + std::to_string(hd) + (bf16 ? " bf16" : " fp32") + " window " +
                       std::to_string(window));
    }
  }
}

// ---- argmax.cuh ----

void check_argmax_advance() {
  const int64_t vocab = 1001;
  auto logits = nonzero(static_cast<size_t>(vocab), 0.01f, 5.0f, 30);
  logits[100] = logits[700] = 9.0f;  // a tie: the first index wins
  DeviceBuffer<float> dl(logits);
  for (const int32_t prompt_len : {2, 10}) {
    DeviceBuffer<int32_t> tokens(std::vector<int32_t>(12, -1)), pos(std::vector<int32_t>{3}),
        plen(std::vector<int32_t>{prompt_len});
    cuda::launch_argmax_advance(dl.data(), vocab, tokens.data(), pos.data(), plen.data(), nullptr);
    std::vector<int32_t> want(12, -1);
    if (prompt_len <= 4) want[4] = 100;  // position 4 is past the prompt: the argmax is written
    EXPECT_EQ(want, tokens.download()) << "argmax_advance, prompt of " << prompt_len;
    EXPECT_EQ(std::vector<int32_t>{4}, pos.download()) << "argmax_advance advances the position";
  }
}

// ---- read_bandwidth.cuh ----

// The probe reads every word once: its XOR equals the host's, for sizes that are and are not a
// multiple of its unrolled stride; read_bandwidth_cuda refuses a buffer the L2 would hold.
void check_read_xor() {
  for (const int64_t words : {int64_t{1}, int64_t{4097}, int64_t{1} << 20}) {
    std::vector<uint32_t> host(static_cast<size_t>(words * 4));
    std::mt19937 g(static_cast<uint32_t>(words));
    for (uint32_t& v : host) v = g();
    uint32_t want = 0;
    for (uint32_t v : host) want ^= v;
    DeviceBuffer<uint32_t> data(host), out(1);
    cuda::launch_read_xor(data.data(), words, out.data(), nullptr);
    EXPECT_EQ(out.download()[0], want) << "read_xor over " << words << " words";
  }
  EXPECT_NE(test::bad_input_message([] { read_bandwidth_cuda(1 << 20, 4); }).find("64 MiB"), std::string::npos);
  const double bw = read_bandwidth_cuda(int64_t{256} << 20, 5);
  std::printf("read bandwidth (256 MiB, median of 5): %.0f GB/s\n", bw / 1e9);
  EXPECT_GT(bw, 1e11);  // any datacentre GPU reads far more than 100 GB/s
}

// ---- fill_random.cuh ----

uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void check_fill_random() {
  const int64_t n = 1001;
  const uint32_t seed = 7;
  std::vector<float> uniform(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t z = splitmix64_mix((static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull + seed);
    const float u = static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
    uniform[static_cast<size_t>(i)] = u == 0.0f ? 0.5f : u;
  }
  DeviceBuffer<float> d32(static_cast<size_t>(n));
  cuda::launch_fill_uniform(d32.data(), cuda::Elem::kF32, n, seed, nullptr);
  expect_close(uniform, d32.download(), kExact, "fill_uniform fp32");
  DeviceBuffer<uint16_t> d16(static_cast<size_t>(n));
  cuda::launch_fill_uniform(d16.data(), cuda::Elem::kBf16, n, seed, nullptr);
  expect_close(bf16_rounded(uniform), from_bf16(d16.download()), kExact, "fill_uniform bf16");

  const uint64_t nseed = 42;
  const float stddev = 0.02f;
  const uint64_t key = splitmix64_mix(nseed + 0x9e3779b97f4a7c15ull);
  std::vector<float> normal(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = splitmix64_mix((key ^ static_cast<uint64_t>(i)) + 0x9e3779b97f4a7c15ull);
    // The uniforms in fp32 as the kernel forms them; log, sqrt and cos in fp64.
    const float u1 = (static_cast<float>(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
    const float u2 = (static_cast<float>(h & 0xffffffull) + 0.5f) * (1.0f / 16777216.0f);
    normal[static_cast<size_t>(i)] = static_cast<float>(stddev * std::sqrt(-2.0 * std::log(static_cast<double>(u1))) *
                                                        std::cos(2.0 * std::numbers::pi * u2));
  }
  cuda::launch_fill_normal(d32.data(), cuda::Elem::kF32, n, nseed, stddev, nullptr);
  expect_close(normal, d32.download(), Tol{1e-7, 2e-5}, "fill_normal fp32");  // logf, cospif: a few ulp
}

// ---- the sparse GEMVs (sparse_gemv*.cuh), through their public plans ----

struct GemvData {
  GemvShape shape;
  test::RandomWeights w;
  std::vector<float> x;
  float threshold;
};

GemvData gemv_data(DType type, int64_t batch, int64_t in, int64_t out, uint32_t seed) {
  GemvData d{{type, batch, in, out}, test::random_weights(type, in, out, seed), {}, 0.0f};
  d.x = nonzero(static_cast<size_t>(batch * in), 0.01f, 2.0f, seed + 1);
  d.threshold = sparsity_threshold(d.x, 0.5f);
  return d;
}

std::vector<float> gemv_ref(const GemvData& d, const void* wt) {
  std::vector<float> y(static_cast<size_t>(d.shape.batch * d.shape.out));
  sparse_gemv(d.shape, wt, d.x.data(), y.data(), d.threshold);
  return y;
}

// fp32 accumulation on the GPU against fp64 in the reference (test-sparse-gemv's bound).
void expect_gemv_close(const std::vector<float>& want, const std::vector<float>& got, const std::string& what) {
  EXPECT_LE(test::relative_l2_error(want, got), 1e-5) << what;
}

void check_sparse_gemv() {
  const GemvData d = gemv_data(DType::BF16, 2, 1003, 300, 31);
  DeviceBuffer<uint8_t> wt(d.w.raw);
  DeviceBuffer<float> x(d.x), y(static_cast<size_t>(d.shape.batch * d.shape.out));
  SparseGemvCuda(d.shape, default_gemv_config(d.shape)).run(wt.data(), x.data(), y.data(), d.threshold);
  expect_gemv_close(gemv_ref(d, d.w.raw.data()), y.download(), "sparse_gemv");

  // A fused launch of two parts sharing x.
  const GemvData d2 = gemv_data(DType::BF16, 2, 1003, 136, 33);
  const GemvFusedShape fs{DType::BF16, 2, 1003, {300, 136}};
  DeviceBuffer<uint8_t> wt2(d2.w.raw);
  DeviceBuffer<float> y2(static_cast<size_t>(2 * 136));
  const GemvPart parts[] = {{wt.data(), y.data(), d.threshold}, {wt2.data(), y2.data(), d.threshold}};
  SparseGemvFusedCuda(fs, default_gemv_config(fs)).run(parts, x.data());
  GemvData d2x = d2;
  d2x.x = d.x;
  d2x.threshold = d.threshold;
  expect_gemv_close(gemv_ref(d, d.w.raw.data()), y.download(), "sparse_gemv fused part 0");
  expect_gemv_close(gemv_ref(d2x, d2.w.raw.data()), y2.download(), "sparse_gemv fused part 1");
}

// A mask [in, out] keeping `keep` of every 4 consecutive inputs per column (keep 2: 2:4).
std::vector<uint8_t> group_mask(int64_t in, int64_t out, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> mask(static_cast<size_t>(in * out), 0);
  for (int64_t g = 0; g < in; g += 4)
    for (int64_t o = 0; o < out; ++o) {
      int idx[4] = {0, 1, 2, 3};
      std::shuffle(idx, idx + 4, rng);
      for (int k = 0; k < 2; ++k) mask[static_cast<size_t>((g + idx[k]) * out + o)] = 1;
    }
  return mask;
}

// The dense Wᵀ with the weights outside `mask` set to zero, as raw bytes of the shape's type.
std::vector<uint8_t> pruned_raw(const GemvData& d, const std::vector<uint8_t>& mask) {
  std::vector<uint8_t> raw = d.w.raw;
  const size_t bytes = dtype_size(d.shape.weight_type);
  for (size_t i = 0; i < mask.size(); ++i)
    if (!mask[i]) std::fill_n(raw.begin() + static_cast<std::ptrdiff_t>(i * bytes), bytes, uint8_t{0});
  return raw;
}

void check_sparse_gemv_2to4() {
  const GemvData d = gemv_data(DType::BF16, 2, 1004, 300, 35);
  const auto mask = group_mask(d.shape.in, d.shape.out, 36);
  const Gemv2to4Weights p = pack_gemv_2to4(DType::BF16, d.shape.in, d.shape.out, d.w.raw.data(), mask.data());
  DeviceBuffer<uint8_t> values(p.values);
  DeviceBuffer<uint32_t> indices(p.indices);
  DeviceBuffer<float> x(d.x), y(static_cast<size_t>(d.shape.batch * d.shape.out));
  SparseGemv2to4Cuda(d.shape).run(values.data(), indices.data(), x.data(), y.data(), d.threshold);
  std::vector<float> want(y.size());
  sparse_gemv_2to4(d.shape, p.values.data(), p.indices.data(), d.x.data(), want.data(), d.threshold);
  expect_gemv_close(want, y.download(), "sparse_gemv_2to4");
  expect_gemv_close(gemv_ref(d, pruned_raw(d, mask).data()), want, "sparse_gemv_2to4 reference vs dense pruned");
}

void check_sparse_gemv_masked() {
  const GemvData d = gemv_data(DType::F16, 3, 517, 300, 37);
  std::mt19937 rng(38);
  std::vector<uint8_t> mask(static_cast<size_t>(d.shape.in * d.shape.out));
  for (uint8_t& m : mask) m = static_cast<uint8_t>(rng() % 2);
  const GemvMaskedWeights p = pack_gemv_masked(DType::F16, d.shape.in, d.shape.out, d.w.raw.data(), mask.data());
  DeviceBuffer<uint8_t> values(p.values), masks(p.masks);
  DeviceBuffer<uint32_t> offsets(p.offsets);
  DeviceBuffer<float> x(d.x), y(static_cast<size_t>(d.shape.batch * d.shape.out));
  SparseGemvMaskedCuda(d.shape).run(values.data(), masks.data(), offsets.data(), x.data(), y.data(), d.threshold);
  std::vector<float> want(y.size());
  sparse_gemv_masked(d.shape, p.values.data(), p.masks.data(), p.offsets.data(), d.x.data(), want.data(), d.threshold);
  expect_gemv_close(want, y.download(), "sparse_gemv_masked");
}

void check_sparse_gemv_blocks() {
  const GemvData d = gemv_data(DType::F32, 1, 999, 200, 39);
  DeviceBuffer<uint8_t> wt(d.w.raw);
  DeviceBuffer<float> x(d.x), y(static_cast<size_t>(d.shape.batch * d.shape.out));
  SparseGemvBlockCuda(d.shape, 8).run(wt.data(), x.data(), y.data(), d.threshold);
  expect_gemv_close(gemv_ref(d, d.w.raw.data()), y.download(), "sparse_gemv_blocks");
}

#define OP_CHECK(f) f
#else
#define OP_CHECK(f) nullptr
#endif  // SPARSA_WITH_CUDA

// The table: every function a src/cuda/*.cuh declares appears in exactly one row.
const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> table = {
      {"rmsnorm", {"launch_rmsnorm", "launch_residual_rmsnorm"}, OP_CHECK(check_rmsnorm)},
      {"rope", {"launch_rope", "rope_freqs"}, OP_CHECK(check_rope)},
      {"rope_append", {"launch_rope_append"}, OP_CHECK(check_rope_append)},
      {"silu_mul", {"launch_silu_mul"}, OP_CHECK(check_silu_mul)},
      {"gelu_tanh_mul", {"launch_gelu_tanh_mul"}, OP_CHECK(check_gelu_tanh_mul)},
      {"layernorm", {"launch_layernorm"}, OP_CHECK(check_layernorm)},
      {"convert", {"launch_to_half", "launch_from_half"}, OP_CHECK(check_convert)},
      {"elementwise",
       {"launch_apply_mask", "launch_add_bias", "launch_scale", "launch_add", "launch_zero_small", "launch_relu",
        "launch_softcap"},
       OP_CHECK(check_elementwise)},
      {"get_rows", {"launch_gather_rows", "launch_add_position_rows", "launch_embed_row"}, OP_CHECK(check_get_rows)},
      {"causal_softmax", {"launch_causal_softmax"}, OP_CHECK(check_causal_softmax)},
      {"row_nll", {"launch_row_nll"}, OP_CHECK(check_row_nll)},
      {"sqsum", {"launch_col_sqsum", "launch_mean_sqrt"}, OP_CHECK(check_sqsum)},
      {"wanda_select", {"launch_row_lowest", "launch_nm_lowest"}, OP_CHECK(check_wanda_select)},
      {"sparsegpt_prepare", {"launch_sparsegpt_prepare", "launch_zero_lower"}, OP_CHECK(check_sparsegpt_prepare)},
      {"sparsegpt_block",
       {"launch_block_scores", "launch_sparsegpt_block", "kth_smallest_temp_bytes", "kth_smallest_device"},
       OP_CHECK(check_sparsegpt_block)},
      {"decode_attention", {"launch_decode_attention"}, OP_CHECK(check_decode_attention)},
      {"argmax_advance", {"launch_argmax_advance"}, OP_CHECK(check_argmax_advance)},
      {"fill_random", {"launch_fill_uniform", "launch_fill_normal"}, OP_CHECK(check_fill_random)},
      {"read_bandwidth", {"launch_read_xor"}, OP_CHECK(check_read_xor)},
      {"sparse_gemv", {"launch_sparse_gemv"}, OP_CHECK(check_sparse_gemv)},
      {"sparse_gemv_2to4", {"launch_sparse_gemv_2to4"}, OP_CHECK(check_sparse_gemv_2to4)},
      {"sparse_gemv_masked", {"launch_sparse_gemv_masked"}, OP_CHECK(check_sparse_gemv_masked)},
      {"sparse_gemv_blocks", {"launch_sparse_gemv_blocks"}, OP_CHECK(check_sparse_gemv_blocks)},
  };
  return table;
}

// Function name -> header, for every top-level non-template function declaration in
// src/cuda/*.cuh: a line that starts with a return type and a name followed by '(', not after a
// `template` line (inline helpers, device functions, templates and indented code do not match).
std::map<std::string, std::string> declared_launchers() {
  const std::filesystem::path dir = std::filesystem::path(SPARSA_SOURCE_DIR) / "src" / "cuda";
  const std::regex declaration(R"(^[A-Za-z_][\w:]*\s+(\w+)\()");
  std::map<std::string, std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".cuh") continue;
    std::ifstream in(entry.path());
    std::string line, previous;
    std::smatch m;
    while (std::getline(in, line)) {
      if (previous.rfind("template", 0) != 0 && std::regex_search(line, m, declaration))
        found[m[1]] = entry.path().filename().string();
      if (!line.empty()) previous = line;
    }
  }
  return found;
}

TEST(GpuOps, EveryLauncherIsInTheTable) {
  std::set<std::string> covered;
  for (const OpCase& c : op_table())
    for (const std::string& l : c.launchers) EXPECT_TRUE(covered.insert(l).second) << l << " is in two rows";
  const auto declared = declared_launchers();
  ASSERT_GE(declared.size(), 20u) << "src/cuda/*.cuh not found under " << SPARSA_SOURCE_DIR;
  for (const auto& [name, header] : declared)
    EXPECT_TRUE(covered.count(name)) << "src/cuda/" << header << " declares " << name
                                     << ", which has no case in test-gpu-ops's table";
  for (const std::string& name : covered)
    EXPECT_TRUE(declared.count(name)) << "the table names " << name << ", which no src/cuda/*.cuh declares";
}

// The border: src/gpu holds model-level drivers only; every kernel is an op of src/cuda.
TEST(GpuOps, DriversHoldNoKernels) {
  const std::filesystem::path dir = std::filesystem::path(SPARSA_SOURCE_DIR) / "src" / "gpu";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string(), ext = entry.path().extension().string();
    EXPECT_TRUE(ext != ".cu" && ext != ".cuh") << "src/gpu/" << name << ": CUDA sources belong in src/cuda";
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text.find("__global__"), std::string::npos) << "src/gpu/" << name << " defines a kernel";
  }
}

class GpuOp : public ::testing::TestWithParam<size_t> {};

TEST_P(GpuOp, MatchesCpuReference) {
  SKIP_WITHOUT_GPU();
  const OpCase& c = op_table()[GetParam()];
  ASSERT_NE(c.check, nullptr) << c.name;
  c.check();
  cuda_synchronize();  // surfaces an error the last kernel raised
}

INSTANTIATE_TEST_SUITE_P(Table, GpuOp, ::testing::Range<size_t>(0, op_table().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) { return op_table()[info.param].name; });

}  // namespace
}  // namespace sparsa
