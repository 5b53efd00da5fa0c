// The parts of sparsa/decode.h that need no GPU: the supported-model check, dense thresholds and
// the list of matrices one decode step multiplies.
#include <algorithm>
#include <string_view>

#include "sparsa/decode.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

DType weight_dtype(GpuPrecision p) {
  switch (p) {
    case GpuPrecision::kFp32: return DType::F32;
    case GpuPrecision::kBf16: return DType::BF16;
    case GpuPrecision::kFp16: return DType::F16;
  }
  return DType::F32;
}

// The first feature of `c` the CUDA decoder (one token a step, KV cache, fused kernels) does not
// compute, or "" when it runs it all. It runs the LLaMA family with scaled RoPE (llama3, linear:
// Llama 3.1 / 3.2), sliding-window layers (Mistral), q/k/v biases (Qwen2) and per-head q/k RMSNorm
// (Qwen3).
std::string_view unsupported_decode_feature(const ModelConfig& c) {
  switch (c.arch) {
    case Arch::kOpt: return "OPT (LayerNorm, learned positions, ReLU MLP)";
    case Arch::kQwen3: break;  // its per-head q/k RMSNorm runs
    case Arch::kGemma3: return "(1 + w) RMSNorm, GeGLU and Gemma 3's pre/post norms";
    case Arch::kLlama: break;
  }
  if (c.query_pre_attn_scalar > 0 || c.attn_logit_softcap > 0 || c.final_logit_softcap > 0)
    return "query_pre_attn_scalar and logit soft-capping";
  if (c.has_projections()) return "project_in / project_out";
  return {};
}

}  // namespace

void check_decode_supported(const ModelConfig& c, const DecodeOptions& opt) {
  check_gpu_supported(c);
  const std::string_view feature = unsupported_decode_feature(c);
  if (!feature.empty())
    bad_input("{}: the CUDA decoder does not support {} yet; use --device cpu (perplexity and pruning run it on "
              "the GPU)", c.model_type, feature);
  if (c.o_proj_bias || c.mlp_bias)
    bad_input("GPU decoding runs q/k/v biases only, not biases on o_proj or the MLP ({})", c.model_type);
  if (c.hidden_size < 1 || c.intermediate_size < 1 || c.num_layers < 1 || c.vocab_size < 1 || c.num_heads < 1 ||
      c.num_kv_heads < 1 || c.num_heads % c.num_kv_heads != 0 || c.head_dim < 2 || c.head_dim % 2 != 0)
    bad_input("GPU decoding: inconsistent model shape (d_model {}, d_ff {}, layers {}, heads {}/{}, head_dim {})",
              c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim);
  const int64_t limit = std::min(c.max_position, kDecodeMaxSeq);
  if (opt.max_seq < 0 || opt.max_seq > limit)
    bad_input("GPU decoding: max_seq {} is outside 1..{} (the model's context, at most {})", opt.max_seq, limit,
              kDecodeMaxSeq);
}

ActivationThresholds dense_thresholds(int64_t n_layers) {
  ActivationThresholds t;
  t.sparsity = 0;
  std::array<float, kNumObsPoints> dense;
  dense.fill(-1.0f);
  t.t.assign(static_cast<size_t>(n_layers), dense);
  return t;
}

int64_t DecodeMatrix::bytes() const {
  return shape.in * shape.out * static_cast<int64_t>(dtype_size(shape.weight_type));
}

std::vector<DecodeMatrix> decode_matrices(const ModelConfig& c, GpuPrecision p) {
  const DType t = weight_dtype(p);
  const int64_t d = c.hidden_size, ff = c.intermediate_size, L = c.num_layers;
  auto shape = [&](int64_t in, int64_t out) { return GemvShape{t, 1, in, out}; };
  return {
      {"qkv", true, ObsPoint::kAttnIn, shape(d, c.q_dim() + 2 * c.kv_dim()), L},
      {"o", true, ObsPoint::kOIn, shape(c.q_dim(), d), L},
      {"gate_up", true, ObsPoint::kMlpIn, shape(d, 2 * ff), L},
      {"down", true, ObsPoint::kDownIn, shape(ff, d), L},
      {"lm_head", false, ObsPoint::kAttnIn, shape(d, c.vocab_size), 1},
  };
}

}  // namespace sparsa
