// The entry points that run a model on the device the options name (sparsa/device.h): the
// library, not its callers, picks the CPU or the CUDA backend.
#include "gpu/gpu_backends.h"
#include "sparsa/gpu.h"
#include "sparsa/prune.h"

namespace sparsa {

PruneResult prune_model(Model& m, const TensorI32& calib, const PruneOptions& opt, const DeviceOptions& device,
                        const std::function<void(int64_t, int64_t)>& progress) {
  if (device.cuda()) check_gpu_supported(m.config);
  // Magnitude needs no forward pass: its selection runs on the host whatever the device.
  const bool gpu = device.cuda() && needs_calibration(opt.method);
  const PruneOptions checked = with_block_checks(m, opt);
  const std::unique_ptr<PruneBackend> backend =
      gpu ? make_cuda_prune_backend(m, checked, device) : make_cpu_prune_backend(m, checked);
  return run_pruning(m, calib, checked, *backend, progress);
}

PerplexityResult perplexity(const Model& m, const TensorI32& windows, const DeviceOptions& device,
                            const std::function<void(int64_t, int64_t)>& progress) {
  if (!device.cuda()) return perplexity(m, windows, nullptr, progress);
  PerplexityResult r = perplexity_cuda(m, windows, device, progress);
  check_perplexity_finite(r);
  return r;
}

}  // namespace sparsa
