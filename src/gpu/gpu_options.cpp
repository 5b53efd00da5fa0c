// The part of sparsa/gpu.h that needs no GPU: the supported-model check. The forward pass
// (perplexity, pruning) runs every family of the architecture table.
#include <string_view>

#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {
void check_gpu_supported(const ModelConfig& c) {
  if (c.head_dim > kRopeMaxHeadDim) bad_input("--device cuda supports head_dim up to {}, the model has {}", kRopeMaxHeadDim, c.head_dim);
}

}  // namespace sparsa
