// The model on the GPU, every family: cuBLAS GEMMs for the linears and for attention's two
// products (batched over heads), the norm / RoPE / activation kernels of src/cuda, and the causal
// softmax kernel (windows, soft-capping). The residual stream and every op's output are fp32; in the half
// modes each GEMM multiplies a rounded copy of its input, as a half-precision model does.
#ifdef SPARSA_WITH_CUDA

#include "gpu/gpu_forward.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cuda/convert.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gelu_tanh_mul.cuh"
#include "cuda/get_rows.cuh"
#include "cuda/layernorm.cuh"
#include "cuda/rope.cuh"
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

void GpuNorm::upload(const Tensor& w, const Tensor& b, NormKind kind) {
  if (w.numel() == 0) {
    weight = DeviceBuffer<float>();
    bias = DeviceBuffer<float>();
    return;
  }
  std::vector<float> v = w.data;
  if (kind == NormKind::kRMSNormUnitOffset)
    for (float& e : v) e = 1.0f + e;  // the CPU's fp32 (1 + w)
  ensure(weight, v.size());
  weight.upload(v);
  ensure(bias, b.numel());
  if (b.numel()) bias.upload(b.data);
}

void norm_cuda(const ModelConfig& c, const GpuNorm& n, const float* x, float* y, int64_t rows, int64_t dim) {
  if (arch_info(c.arch).norm == NormKind::kLayerNorm)
    cuda::launch_layernorm(x, n.weight.data(), n.bias.size() ? n.bias.data() : nullptr, y, rows, dim, c.norm_eps);
  else
    rmsnorm_cuda(x, n.weight.data(), y, rows, dim, c.norm_eps);
}

void GpuBlock::upload_norms_and_biases(const Model& m, int64_t l) {
  const Block& b = m.blocks.at(static_cast<size_t>(l));
  const NormKind kind = arch_info(m.config.arch).norm;
  layer = l;
  attn_norm.upload(b.attn_norm, b.attn_norm_bias, kind);
  mlp_norm.upload(b.mlp_norm, b.mlp_norm_bias, kind);
  post_attn_norm.upload(b.post_attn_norm, Tensor{}, kind);
  post_mlp_norm.upload(b.post_mlp_norm, Tensor{}, kind);
  q_norm.upload(b.q_norm, Tensor{}, kind);
  k_norm.upload(b.k_norm, Tensor{}, kind);
  for (int r = 0; r < kNumLinearRoles; ++r) {
    const Linear& src = b.linears[static_cast<size_t>(r)];
    GpuLinear& dst = linears[static_cast<size_t>(r)];
    ensure(dst.bias, src.bias.numel());
    if (src.bias.numel()) dst.bias.upload(src.bias.data);
  }
}

void GpuBlock::upload(const Model& m, int64_t l, GpuPrecision p, HostStaging& staging) {
  upload_norms_and_biases(m, l);
  const Block& b = m.blocks.at(static_cast<size_t>(l));
  for (int r = 0; r < kNumLinearRoles; ++r) {
    const Linear& src = b.linears[static_cast<size_t>(r)];
    if (src.weight.numel()) linears[static_cast<size_t>(r)].weight.upload(src.weight, p, staging);
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

void GpuBlock::upload_packed(const Model& m, int64_t l, GpuPrecision p, const void* packed) {
  upload_norms_and_biases(m, l);
  const Block& b = m.blocks.at(static_cast<size_t>(l));
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
    : c_(c), arch_(arch_info(c.arch)), p_(p), max_samples_(max_samples), seqlen_(seqlen) {
  check_gpu_supported(c);
  if (arch_.positions == PositionKind::kRope) {
    global_inv_freq_ = rope_inv_freq(c.rope, c.head_dim);
    local_inv_freq_ = rope_inv_freq(c.local_rope, c.head_dim);
  }
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
  if (arch_.mlp != MlpKind::kRelu) gate_ = DeviceBuffer<float>(count(T, ff));
  up_ = DeviceBuffer<float>(count(T, ff));
  if (!arch_.post_attn_norm.empty()) out_ = DeviceBuffer<float>(count(T, d));
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

void GpuForward::attention(int64_t layer, int64_t n_samples) {
  const int64_t L = seqlen_, H = c_.num_heads, hd = c_.head_dim;
  const cudaDataType_t t = cuda_type(p_);
  const float one = 1.0f, zero = 0.0f;
  const int Li = static_cast<int>(L), hdi = static_cast<int>(hd);
  const int qld = static_cast<int>(c_.q_dim()), kvld = static_cast<int>(c_.kv_dim());
  // The CPU attention's options (src/model/forward.cpp attention_options).
  cuda::CausalSoftmaxOptions o;
  o.scale = c_.query_pre_attn_scalar > 0
                ? static_cast<float>(std::pow(static_cast<double>(c_.query_pre_attn_scalar), -0.5))
                : 1.0f / std::sqrt(static_cast<float>(hd));
  o.window = c_.is_sliding(layer) ? c_.sliding_window : 0;
  o.softcap = c_.attn_logit_softcap;
  for (int64_t s = 0; s < n_samples; ++s) {
    const int64_t at = s * H;
    // Column-major scoresᵀ [keys, queries] = K_g [keys, hd] · Q_hᵀ, per head.
    SPARSA_CUBLAS_CHECK(cublasGemmBatchedEx(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, Li, Li, hdi, &one,
                                            k_ptrs_.data() + at, t, kvld, q_ptrs_.data() + at, t, qld, &zero,
                                            s_ptrs_.data() + at, CUDA_R_32F, Li, static_cast<int>(H),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    cuda::launch_causal_softmax(scores_.data(), probs_.data(), H * L, L, o, is_half(p_), is_bf16(p_));
    // Column-major outᵀ [hd, queries] = V_gᵀ · Pᵀ, per head, into attn_ [n, n_heads * hd].
    SPARSA_CUBLAS_CHECK(cublasGemmBatchedEx(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, hdi, Li, Li, &one,
                                            v_ptrs_.data() + at, t, kvld, p_ptrs_.data() + at, t, Li, &zero,
                                            o_ptrs_.data() + at, CUDA_R_32F, qld, static_cast<int>(H),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void GpuForward::sublayer_input(const GpuNorm& norm, const float* x, int64_t T) {
  const int64_t d = c_.hidden_size;
  if (c_.post_layer_norm)
    SPARSA_CUDA_CHECK(cudaMemcpy(normed_.data(), x, count(T, d) * sizeof(float), cudaMemcpyDeviceToDevice));
  else
    norm_cuda(c_, norm, x, normed_.data(), T, d);
}

void GpuForward::add_residual(const GpuLinear& w, const float* h32, const void* hh, const GpuNorm& post_norm,
                              const GpuNorm& norm, float* x, int64_t T) {
  const int64_t d = c_.hidden_size;
  if (post_norm.present()) {
    linear_cuda(w, p_, h32, hh, out_.data(), T, 0.0f);
    norm_cuda(c_, post_norm, out_.data(), out_.data(), T, d);
    cuda::launch_add(x, out_.data(), T * d);
  } else {
    linear_cuda(w, p_, h32, hh, x, T, 1.0f);
  }
  if (c_.post_layer_norm) norm_cuda(c_, norm, x, x, T, d);
}

const void* GpuForward::linear_inputs(ObsPoint p, float* x32, DeviceBuffer<uint8_t>& h, int64_t T, int64_t dim,
                                      GpuObserver* obs, const std::array<float, kNumObsPoints>* sparsify) {
  const void* xh = to_half(x32, h, T * dim);
  if (obs) obs->observe(p, x32, xh, T, dim);
  const float t = sparsify ? (*sparsify)[static_cast<size_t>(p)] : -1.0f;
  if (t < 0) return xh;
  cuda::launch_zero_small(x32, T * dim, t);
  return to_half(x32, h, T * dim);
}

// x += o_proj(attn(q, k, v)) with the family's q/k norms, RoPE and attention options.
void GpuForward::attention_sublayer(const GpuBlock& b, float* x, int64_t T, int64_t n_samples, GpuObserver* obs,
                                    const std::array<float, kNumObsPoints>* sparsify) {
  const int64_t d = c_.hidden_size, hd = c_.head_dim;
  sublayer_input(b.attn_norm, x, T);
  const void* nh = linear_inputs(ObsPoint::kAttnIn, normed_.data(), normed_h_, T, d, obs, sparsify);
  linear_cuda(b.linear(LinearRole::kQ), p_, normed_.data(), nh, q_.data(), T, 0.0f);
  linear_cuda(b.linear(LinearRole::kK), p_, normed_.data(), nh, k_.data(), T, 0.0f);
  linear_cuda(b.linear(LinearRole::kV), p_, normed_.data(), nh, v_.data(), T, 0.0f);
  if (b.q_norm.present()) {  // RMSNorm over each head's head_dim values
    norm_cuda(c_, b.q_norm, q_.data(), q_.data(), T * c_.num_heads, hd);
    norm_cuda(c_, b.k_norm, k_.data(), k_.data(), T * c_.num_kv_heads, hd);
  }
  if (arch_.positions == PositionKind::kRope) {
    const std::vector<float>& f = c_.is_sliding(b.layer) ? local_inv_freq_ : global_inv_freq_;
    cuda::RopeFreqs freqs{};
    std::copy(f.begin(), f.end(), freqs.inv_freq);
    cuda::launch_rope(q_.data(), positions_.data(), T, c_.num_heads, hd, freqs);
    cuda::launch_rope(k_.data(), positions_.data(), T, c_.num_kv_heads, hd, freqs);
  }
  to_half(q_.data(), q_h_, T * c_.q_dim());
  to_half(k_.data(), k_h_, T * c_.kv_dim());
  to_half(v_.data(), v_h_, T * c_.kv_dim());
  attention(b.layer, n_samples);
  const void* ah = linear_inputs(ObsPoint::kOIn, attn_.data(), attn_h_, T, c_.q_dim(), obs, sparsify);
  add_residual(b.linear(LinearRole::kO), attn_.data(), ah, b.post_attn_norm, b.attn_norm, x, T);
}

void GpuForward::block(const GpuBlock& b, float* x, int64_t n_samples, GpuObserver* obs, bool stop_at_down_input,
                       const std::array<float, kNumObsPoints>* sparsify) {
  SPARSA_ASSERT(n_samples >= 1 && n_samples <= max_samples_);
  const int64_t T = n_samples * seqlen_, d = c_.hidden_size, ff = c_.intermediate_size;
  attention_sublayer(b, x, T, n_samples, obs, sparsify);

  // MLP: x += down(act(gate(h)) * up(h)) (SwiGLU, GeGLU) or x += fc2(relu(fc1(h))) (up = fc1).
  sublayer_input(b.mlp_norm, x, T);
  const void* mh = linear_inputs(ObsPoint::kMlpIn, normed_.data(), normed_h_, T, d, obs, sparsify);
  linear_cuda(b.linear(LinearRole::kUp), p_, normed_.data(), mh, up_.data(), T, 0.0f);
  switch (arch_.mlp) {
    case MlpKind::kRelu: cuda::launch_relu(up_.data(), T * ff); break;
    case MlpKind::kGatedSilu:
      linear_cuda(b.linear(LinearRole::kGate), p_, normed_.data(), mh, gate_.data(), T, 0.0f);
      silu_mul_cuda(gate_.data(), up_.data(), up_.data(), T, ff);
      break;
    case MlpKind::kGatedGeluTanh:
      linear_cuda(b.linear(LinearRole::kGate), p_, normed_.data(), mh, gate_.data(), T, 0.0f);
      cuda::launch_gelu_tanh_mul(gate_.data(), up_.data(), up_.data(), T * ff);
      break;
  }
  const void* uh = linear_inputs(ObsPoint::kDownIn, up_.data(), up_h_, T, ff, obs, sparsify);
  if (stop_at_down_input) return;
  add_residual(b.linear(LinearRole::kDown), up_.data(), uh, b.post_mlp_norm, b.mlp_norm, x, T);
}

GpuEmbedding::GpuEmbedding(const Model& m, HostStaging& staging)
    : c_(m.config), arch_(arch_info(m.config.arch)), table_(m.embed.data) {
  if (arch_.positions == PositionKind::kLearned) positions_ = DeviceBuffer<float>(m.pos_embed.data);
  if (c_.has_projections()) project_in_.weight.upload(m.project_in, GpuPrecision::kFp32, staging);
}

void GpuEmbedding::embed(const int32_t* tokens, int64_t n, int64_t seqlen, float* x) {
  const int64_t d = c_.hidden_size, e = c_.embed_dim;
  float* rows = x;  // [n, embed_dim]
  if (c_.has_projections()) {
    ensure(looked_up_, count(n, e));
    rows = looked_up_.data();
  }
  cuda::launch_gather_rows(table_.data(), tokens, rows, n, e);
  if (arch_.scale_embeddings)  // the CPU's fp32 sqrt(d_model) of a double
    cuda::launch_scale(rows, rows, static_cast<float>(std::sqrt(static_cast<double>(d))), n * e);
  if (c_.has_projections()) linear_cuda(project_in_, GpuPrecision::kFp32, rows, nullptr, x, n, 0.0f);
  if (arch_.positions == PositionKind::kLearned) {
    if (seqlen > c_.max_position)
      bad_input("{} tokens are more than the model's {} learned positions", seqlen, c_.max_position);
    cuda::launch_add_position_rows(positions_.data(), arch_.position_offset, seqlen, x, n, d);
  }
}

GpuHead::GpuHead(const Model& m, GpuPrecision p, HostStaging& staging) : c_(m.config), p_(p) {
  final_norm_.upload(m.final_norm, m.final_norm_bias, arch_info(c_.arch).norm);
  if (c_.has_projections()) project_out_.weight.upload(m.project_out, GpuPrecision::kFp32, staging);
  lm_head_.weight.upload(m.lm_head, p, staging);
}

void GpuHead::logits(float* x, int64_t n, GpuForward& fw, float* logits) {
  const int64_t d = c_.hidden_size, e = c_.embed_dim;
  if (c_.has_final_norm()) norm_cuda(c_, final_norm_, x, x, n, d);
  const float* h = x;  // [n, embed_dim] entering the lm_head
  if (c_.has_projections()) {
    ensure(projected_, count(n, e));
    linear_cuda(project_out_, GpuPrecision::kFp32, x, nullptr, projected_.data(), n, 0.0f);
    h = projected_.data();
  }
  ensure(h_half_, is_half(p_) ? count(n, e) * element_bytes(p_) : 0);
  const void* hh = fw.to_half(h, h_half_, n * e);
  linear_cuda(lm_head_, p_, h, hh, logits, n, 0.0f);
  if (c_.final_logit_softcap > 0) cuda::launch_softcap(logits, n * c_.vocab_size, c_.final_logit_softcap);
}

}  // namespace sparsa::gpu

#endif  // SPARSA_WITH_CUDA
