// One LLaMA-family block on the GPU: cuBLAS GEMMs for the linears and for attention's two
// products (batched over heads), the fused RMSNorm / RoPE / SwiGLU kernels of sparsa/cuda.h, and
// the causal softmax kernel. The residual stream and every op's output are fp32; in the half
// modes each GEMM multiplies a rounded copy of its input, as a half-precision model does.
#ifdef SPARSA_WITH_CUDA

#include "gpu/gpu_forward.h"

#include <cmath>
#include <numeric>

#include "cuda/convert.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/softmax.cuh"
#include "gpu/gpu_context.h"
#include "gpu/gpu_types.h"
#include "sparsa/error.h"

namespace sparsa::gpu {
namespace {

size_t count(int64_t a, int64_t b) { return static_cast<size_t>(a * b); }

template <typename T>
void ensure(DeviceBuffer<T>& buf, size_t n) {
  if (buf.size() != n) buf = DeviceBuffer<T>(n);
}

}  // namespace

void DeviceMatrix::upload(const Tensor& m, GpuPrecision p, HostStaging& staging) {
  rows = m.rank() == 2 ? m.dim(0) : 1;
  cols = m.rank() == 2 ? m.dim(1) : m.dim(0);
  ensure(bytes, m.numel() * element_bytes(p));
  staging.upload(m.ptr(), static_cast<int64_t>(m.numel()), bytes.data(), p);
}

void GpuBlock::upload(const Block& b, GpuPrecision p, HostStaging& staging) {
  ensure(attn_norm, b.attn_norm.numel());
  attn_norm.upload(b.attn_norm.data);
  ensure(mlp_norm, b.mlp_norm.numel());
  mlp_norm.upload(b.mlp_norm.data);
  for (int r = 0; r < kNumLinearRoles; ++r) {
    const Linear& src = b.linears[static_cast<size_t>(r)];
    GpuLinear& dst = linears[static_cast<size_t>(r)];
    if (src.weight.numel() == 0) continue;
    dst.weight.upload(src.weight, p, staging);
    ensure(dst.bias, src.bias.numel());
    if (src.bias.numel()) dst.bias.upload(src.bias.data);
  }
}

size_t GpuBlock::packed_bytes(const Block& b, GpuPrecision p) {
  size_t total = 0;
  for (const Linear& l : b.linears) total += l.weight.numel() * element_bytes(p);
  return total;
}

void GpuBlock::pack(const Block& b, GpuPrecision p, void* packed) {
  auto* at = static_cast<uint8_t*>(packed);
  for (const Linear& l : b.linears) {
    convert_from_f32(l.weight.ptr(), static_cast<int64_t>(l.weight.numel()), at, p);
    at += l.weight.numel() * element_bytes(p);
  }
}

void GpuBlock::upload_packed(const Block& b, GpuPrecision p, const void* packed) {
  ensure(attn_norm, b.attn_norm.numel());
  attn_norm.upload(b.attn_norm.data);
  ensure(mlp_norm, b.mlp_norm.numel());
  mlp_norm.upload(b.mlp_norm.data);
  const auto* at = static_cast<const uint8_t*>(packed);
  for (int r = 0; r < kNumLinearRoles; ++r) {
    const Linear& src = b.linears[static_cast<size_t>(r)];
    GpuLinear& dst = linears[static_cast<size_t>(r)];
    if (src.weight.numel() == 0) continue;
    const size_t bytes = src.weight.numel() * element_bytes(p);
    dst.weight.rows = src.weight.dim(0);
    dst.weight.cols = src.weight.dim(1);
    ensure(dst.weight.bytes, bytes);
    copy_to_device(dst.weight.bytes.data(), at, bytes);
    at += bytes;
    ensure(dst.bias, src.bias.numel());
    if (src.bias.numel()) dst.bias.upload(src.bias.data);
  }
}

void linear_cuda(const GpuLinear& l, GpuPrecision p, const float* x32, const void* xh, float* y, int64_t n,
                 float beta) {
  const float alpha = 1.0f;
  const int out = static_cast<int>(l.weight.rows), in = static_cast<int>(l.weight.cols);
  const cudaDataType_t t = cuda_type(p);
  const void* x = is_half(p) ? xh : x32;
  // Row-major y [n, out] = x [n, in] · Wᵀ is column-major yᵀ = W · xᵀ with W stored as Wᵀ.
  SPARSA_CUBLAS_CHECK(cublasGemmEx(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, static_cast<int>(n), in, &alpha,
                                   l.weight.bytes.data(), t, in, x, t, in, &beta, y, CUDA_R_32F, out,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (l.bias.size()) cuda::launch_add_bias(y, l.bias.data(), n, out);
}

GpuForward::GpuForward(const ModelConfig& c, GpuPrecision p, int64_t max_samples, int64_t seqlen)
    : c_(c), p_(p), max_samples_(max_samples), seqlen_(seqlen) {
  check_gpu_supported(c);
  const int64_t T = max_samples * seqlen, d = c.hidden_size, ff = c.intermediate_size;
  const int64_t H = c.num_heads, group = c.num_heads / c.num_kv_heads, hd = c.head_dim;
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(t % seqlen);
  positions_ = DeviceBuffer<int32_t>(pos);
  normed_ = DeviceBuffer<float>(count(T, d));
  q_ = DeviceBuffer<float>(count(T, c.q_dim()));
  k_ = DeviceBuffer<float>(count(T, c.kv_dim()));
  v_ = DeviceBuffer<float>(count(T, c.kv_dim()));
  attn_ = DeviceBuffer<float>(count(T, c.q_dim()));
  gate_ = DeviceBuffer<float>(count(T, ff));
  up_ = DeviceBuffer<float>(count(T, ff));
  const size_t eb = element_bytes(p);
  if (is_half(p)) {
    normed_h_ = DeviceBuffer<uint8_t>(count(T, d) * eb);
    q_h_ = DeviceBuffer<uint8_t>(count(T, c.q_dim()) * eb);
    k_h_ = DeviceBuffer<uint8_t>(count(T, c.kv_dim()) * eb);
    v_h_ = DeviceBuffer<uint8_t>(count(T, c.kv_dim()) * eb);
    attn_h_ = DeviceBuffer<uint8_t>(count(T, c.q_dim()) * eb);
    up_h_ = DeviceBuffer<uint8_t>(count(T, ff) * eb);
  }
  scores_ = DeviceBuffer<float>(count(H * seqlen, seqlen));
  probs_ = DeviceBuffer<uint8_t>(count(H * seqlen, seqlen) * eb);

  // Per (sample, head): the operands of scores_h = Q_h K_gᵀ and out_h = P_h V_g (g = h / group).
  const auto* qb = is_half(p) ? static_cast<const uint8_t*>(q_h_.data()) : reinterpret_cast<const uint8_t*>(q_.data());
  const auto* kb = is_half(p) ? static_cast<const uint8_t*>(k_h_.data()) : reinterpret_cast<const uint8_t*>(k_.data());
  const auto* vb = is_half(p) ? static_cast<const uint8_t*>(v_h_.data()) : reinterpret_cast<const uint8_t*>(v_.data());
  std::vector<const void*> kp, qp, vp, pp;
  std::vector<void*> sp, op;
  for (int64_t s = 0; s < max_samples; ++s)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t row0 = s * seqlen;
      qp.push_back(qb + (row0 * c.q_dim() + h * hd) * static_cast<int64_t>(eb));
      kp.push_back(kb + (row0 * c.kv_dim() + (h / group) * hd) * static_cast<int64_t>(eb));
      vp.push_back(vb + (row0 * c.kv_dim() + (h / group) * hd) * static_cast<int64_t>(eb));
      pp.push_back(probs_.data() + h * seqlen * seqlen * static_cast<int64_t>(eb));
      sp.push_back(scores_.data() + h * seqlen * seqlen);
      op.push_back(attn_.data() + row0 * c.q_dim() + h * hd);
    }
  k_ptrs_ = DeviceBuffer<const void*>(kp);
  q_ptrs_ = DeviceBuffer<const void*>(qp);
  v_ptrs_ = DeviceBuffer<const void*>(vp);
  p_ptrs_ = DeviceBuffer<const void*>(pp);
  s_ptrs_ = DeviceBuffer<void*>(sp);
  o_ptrs_ = DeviceBuffer<void*>(op);
}

const void* GpuForward::to_half(const float* x32, DeviceBuffer<uint8_t>& h, int64_t n) {
  if (!is_half(p_)) return nullptr;
  cuda::launch_to_half(x32, h.data(), n, is_bf16(p_));
  return h.data();
}

void GpuForward::attention(int64_t n_samples) {
  const int64_t L = seqlen_, H = c_.num_heads, hd = c_.head_dim;
  const cudaDataType_t t = cuda_type(p_);
  const float one = 1.0f, zero = 0.0f;
  const int Li = static_cast<int>(L), hdi = static_cast<int>(hd);
  const int qld = static_cast<int>(c_.q_dim()), kvld = static_cast<int>(c_.kv_dim());
  for (int64_t s = 0; s < n_samples; ++s) {
    const int64_t at = s * H;
    // Column-major scoresᵀ [keys, queries] = K_g [keys, hd] · Q_hᵀ, per head.
    SPARSA_CUBLAS_CHECK(cublasGemmBatchedEx(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, Li, Li, hdi, &one,
                                            k_ptrs_.data() + at, t, kvld, q_ptrs_.data() + at, t, qld, &zero,
                                            s_ptrs_.data() + at, CUDA_R_32F, Li, static_cast<int>(H),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    cuda::launch_causal_softmax(scores_.data(), probs_.data(), H * L, L, 1.0f / std::sqrt(static_cast<float>(hd)),
                                is_half(p_), is_bf16(p_));
    // Column-major outᵀ [hd, queries] = V_gᵀ · Pᵀ, per head, into attn_ [n, n_heads * hd].
    SPARSA_CUBLAS_CHECK(cublasGemmBatchedEx(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, hdi, Li, Li, &one,
                                            v_ptrs_.data() + at, t, kvld, p_ptrs_.data() + at, t, Li, &zero,
                                            o_ptrs_.data() + at, CUDA_R_32F, qld, static_cast<int>(H),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void GpuForward::block(const GpuBlock& b, float* x, int64_t n_samples, GpuObserver* obs, bool stop_at_down_input) {
  SPARSA_ASSERT(n_samples >= 1 && n_samples <= max_samples_);
  const int64_t T = n_samples * seqlen_, d = c_.hidden_size, ff = c_.intermediate_size;
  auto notify = [&](ObsPoint pt, const float* x32, const void* xh, int64_t dim) {
    if (obs) obs->observe(pt, x32, xh, T, dim);
  };

  // attention: x += o_proj(attn(rope(q), rope(k), v))
  rmsnorm_cuda(x, b.attn_norm.data(), normed_.data(), T, d, c_.norm_eps);
  const void* nh = to_half(normed_.data(), normed_h_, T * d);
  notify(ObsPoint::kAttnIn, normed_.data(), nh, d);
  linear_cuda(b.linear(LinearRole::kQ), p_, normed_.data(), nh, q_.data(), T, 0.0f);
  linear_cuda(b.linear(LinearRole::kK), p_, normed_.data(), nh, k_.data(), T, 0.0f);
  linear_cuda(b.linear(LinearRole::kV), p_, normed_.data(), nh, v_.data(), T, 0.0f);
  rope_cuda(q_.data(), positions_.data(), T, c_.num_heads, c_.head_dim, c_.rope.theta);
  rope_cuda(k_.data(), positions_.data(), T, c_.num_kv_heads, c_.head_dim, c_.rope.theta);
  to_half(q_.data(), q_h_, T * c_.q_dim());
  to_half(k_.data(), k_h_, T * c_.kv_dim());
  to_half(v_.data(), v_h_, T * c_.kv_dim());
  attention(n_samples);
  const void* ah = to_half(attn_.data(), attn_h_, T * c_.q_dim());
  notify(ObsPoint::kOIn, attn_.data(), ah, c_.q_dim());
  linear_cuda(b.linear(LinearRole::kO), p_, attn_.data(), ah, x, T, 1.0f);

  // MLP: x += down(silu(gate(h)) * up(h))
  rmsnorm_cuda(x, b.mlp_norm.data(), normed_.data(), T, d, c_.norm_eps);
  const void* mh = to_half(normed_.data(), normed_h_, T * d);
  notify(ObsPoint::kMlpIn, normed_.data(), mh, d);
  linear_cuda(b.linear(LinearRole::kGate), p_, normed_.data(), mh, gate_.data(), T, 0.0f);
  linear_cuda(b.linear(LinearRole::kUp), p_, normed_.data(), mh, up_.data(), T, 0.0f);
  silu_mul_cuda(gate_.data(), up_.data(), up_.data(), T, ff);
  const void* uh = to_half(up_.data(), up_h_, T * ff);
  notify(ObsPoint::kDownIn, up_.data(), uh, ff);
  if (stop_at_down_input) return;
  linear_cuda(b.linear(LinearRole::kDown), p_, up_.data(), uh, x, T, 1.0f);
}

}  // namespace sparsa::gpu

#endif  // SPARSA_WITH_CUDA
