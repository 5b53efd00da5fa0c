// The part of sparsa/gpu.h that needs no GPU: the supported-model check.
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {

void check_gpu_supported(const ModelConfig& c) {
  if (c.arch != Arch::kLlama)
    bad_input("--device cuda runs the LLaMA family only; this is a {} model (use --device cpu)", arch_info(c.arch).name);
  if (c.has_projections()) bad_input("--device cuda does not run models with project_in / project_out");
  if (c.head_dim > kRopeMaxHeadDim) bad_input("--device cuda supports head_dim up to {}, the model has {}", kRopeMaxHeadDim, c.head_dim);
}

}  // namespace sparsa
