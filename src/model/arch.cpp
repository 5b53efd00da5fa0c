// The one table mapping Hugging Face module names of the LLaMA family to roles.
#include <fmt/format.h>

#include "sparsa/error.h"
#include "sparsa/model.h"

namespace sparsa {
namespace {

constexpr LinearRoleInfo kRoles[kNumLinearRoles] = {
    {LinearRole::kQ, "q", "self_attn.q_proj", ObsPoint::kAttnIn},
    {LinearRole::kK, "k", "self_attn.k_proj", ObsPoint::kAttnIn},
    {LinearRole::kV, "v", "self_attn.v_proj", ObsPoint::kAttnIn},
    {LinearRole::kO, "o", "self_attn.o_proj", ObsPoint::kOIn},
    {LinearRole::kGate, "gate", "mlp.gate_proj", ObsPoint::kMlpIn},
    {LinearRole::kUp, "up", "mlp.up_proj", ObsPoint::kMlpIn},
    {LinearRole::kDown, "down", "mlp.down_proj", ObsPoint::kDownIn},
};

constexpr std::string_view kObsNames[kNumObsPoints] = {"attn_in", "o_in", "mlp_in", "down_in"};

}  // namespace

const LinearRoleInfo& role_info(LinearRole r) {
  const auto i = static_cast<size_t>(r);
  SPARSA_ASSERT(i < kNumLinearRoles);
  return kRoles[i];
}

std::string_view obs_point_name(ObsPoint p) {
  const auto i = static_cast<size_t>(p);
  SPARSA_ASSERT(i < kNumObsPoints);
  return kObsNames[i];
}

std::string hf_linear_name(int64_t layer, LinearRole r) {
  return fmt::format("model.layers.{}.{}", layer, role_info(r).hf_module);
}

}  // namespace sparsa
