// The part of sparsa/gpu.h that needs no GPU: the supported-model check.
#include <string_view>

#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {
namespace {

// The first feature of `c` the CUDA forward and decoder do not compute, or "" when it runs it all.
std::string_view unsupported_gpu_feature(const ModelConfig& c) {
  switch (c.arch) {
    case Arch::kOpt: return "OPT (LayerNorm, learned positions, ReLU MLP)";
    case Arch::kQwen3: return "per-head q/k RMSNorm (q_norm, k_norm)";
    case Arch::kGemma3: return "(1 + w) RMSNorm, GeGLU and Gemma 3's pre/post norms";
    case Arch::kLlama: break;
  }
  if (c.rope.type == RopeType::kLlama3) return "llama3 RoPE scaling";
  if (c.rope.type == RopeType::kLinear) return "linear RoPE scaling";
  if (!c.sliding_layers.empty()) return "sliding-window attention";
  if (c.query_pre_attn_scalar > 0 || c.attn_logit_softcap > 0 || c.final_logit_softcap > 0)
    return "query_pre_attn_scalar and logit soft-capping";
  return {};
}

}  // namespace

void check_gpu_supported(const ModelConfig& c) {
  const std::string_view feature = unsupported_gpu_feature(c);
  if (!feature.empty())
    bad_input("{}: the CUDA forward does not support {} yet; use --device cpu", c.model_type, feature);
  if (c.has_projections()) bad_input("--device cuda does not run models with project_in / project_out");
  if (c.head_dim > kRopeMaxHeadDim) bad_input("--device cuda supports head_dim up to {}, the model has {}", kRopeMaxHeadDim, c.head_dim);
}

}  // namespace sparsa
