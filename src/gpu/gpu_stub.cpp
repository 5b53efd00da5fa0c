// The CPU-only build's stand-ins for the GPU model (sparsa/gpu.h): every entry point throws.
#ifndef SPARSA_WITH_CUDA

#include "gpu/gpu_backends.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {
namespace {

[[noreturn]] void no_cuda(const char* what) { runtime_failure("{}: sparsa was built without CUDA", what); }

}  // namespace

PerplexityResult perplexity_cuda(const Model&, const TensorI32&, const DeviceOptions&,
                                 const std::function<void(int64_t, int64_t)>&, const ActivationThresholds*) {
  no_cuda("perplexity on the GPU");
}
std::unique_ptr<WindowRunner> make_cuda_window_runner(const DeviceOptions&) { no_cuda("activation capture on the GPU"); }
Tensor logits_cuda(const Model&, const TensorI32&, const DeviceOptions&) { no_cuda("logits on the GPU"); }
std::vector<ChoiceScore> score_choices_cuda(const Model&, const std::vector<ChoiceWindow>&, const DeviceOptions&,
                                            const std::function<void(int64_t, int64_t)>&) {
  no_cuda("task scores on the GPU");
}
std::unique_ptr<PruneBackend> make_cuda_prune_backend(Model&, const PruneOptions&, const DeviceOptions&) {
  no_cuda("pruning on the GPU");
}
bool gpu_nccl_available() { return false; }
void hessian_accumulate_cuda(float*, const float*, const void*, GpuPrecision, int64_t, int64_t, float) {
  no_cuda("hessian_accumulate_cuda");
}
void wanda_mask_cuda(const float*, const float*, uint8_t*, int64_t, int64_t, const SparsityTarget&) {
  no_cuda("wanda_mask_cuda");
}
void sparsegpt_prune_cuda(float*, float*, uint8_t*, int64_t, int64_t, const SparsityTarget&, int64_t, double) {
  no_cuda("sparsegpt_prune_cuda");
}

}  // namespace sparsa

#endif  // !SPARSA_WITH_CUDA
