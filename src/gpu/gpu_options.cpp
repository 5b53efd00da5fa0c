// The parts of sparsa/gpu.h that need no GPU: precision names and the supported-model check.
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {

std::string_view gpu_precision_name(GpuPrecision p) {
  switch (p) {
    case GpuPrecision::kFp32: return "fp32";
    case GpuPrecision::kBf16: return "bf16";
    case GpuPrecision::kFp16: return "fp16";
  }
  return "?";
}

GpuPrecision parse_gpu_precision(std::string_view s) {
  for (GpuPrecision p : {GpuPrecision::kFp32, GpuPrecision::kBf16, GpuPrecision::kFp16})
    if (s == gpu_precision_name(p)) return p;
  bad_input("unknown GPU precision '{}' (fp32, bf16 or fp16)", s);
}

void check_gpu_supported(const ModelConfig& c) {
  if (c.arch != Arch::kLlama)
    bad_input("--device cuda runs the LLaMA family only; this is a {} model (use --device cpu)", arch_info(c.arch).name);
  if (c.has_projections()) bad_input("--device cuda does not run models with project_in / project_out");
  if (c.head_dim > kRopeMaxHeadDim) bad_input("--device cuda supports head_dim up to {}, the model has {}", kRopeMaxHeadDim, c.head_dim);
}

}  // namespace sparsa
