// The entry points that run a model on the device the options name (sparsa/device.h): the
// library, not its callers, picks the CPU or the CUDA backend.
#include <chrono>

#include "gpu/gpu_backends.h"
#include "sparsa/activations.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"
#include "sparsa/prune.h"
#include "sparsa/tasks.h"

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

TaskScore score_task(const Model& m, const EncodedTask& t, const DeviceOptions& device,
                     const std::function<void(int64_t, int64_t)>& progress) {
  if (!device.cuda()) return score_task(m, t, progress);
  const auto start = std::chrono::steady_clock::now();
  check_gpu_supported(m.config);
  std::vector<ChoiceWindow> windows;
  for (const EncodedChoice* c : task_choices(t)) windows.push_back(choice_window(*c, m.config.max_position));
  TaskScore r = task_score(m, t, score_choices_cuda(m, windows, device, progress));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

namespace {

// The CPU runner, owned by a unique_ptr like the GPU one (it forwards to the shared instance).
class CpuRunnerHandle final : public WindowRunner {
 public:
  void run(const Model& m, const TensorI32& windows, int64_t n_layers, WindowObserver& obs,
           const ActivationThresholds* applied, const std::function<void(int64_t, int64_t)>& progress) const override {
    cpu_window_runner().run(m, windows, n_layers, obs, applied, progress);
  }
};

}  // namespace

std::unique_ptr<WindowRunner> make_window_runner(const DeviceOptions& device) {
  if (!device.cuda()) return std::make_unique<CpuRunnerHandle>();
  return make_cuda_window_runner(device);
}

PerplexityResult sparsified_perplexity(const Model& m, const TensorI32& windows, const ActivationThresholds& t,
                                       const DeviceOptions& device,
                                       const std::function<void(int64_t, int64_t)>& progress) {
  if (static_cast<int64_t>(t.t.size()) != m.config.num_layers)
    bad_input("activation thresholds for {} layers, the model has {}", t.t.size(), m.config.num_layers);
  PerplexityResult r;
  if (device.cuda()) {
    r = perplexity_cuda(m, windows, device, progress, &t);
  } else {
    ActivationSparsifier sparsifier(t);
    r = perplexity(m, windows, &sparsifier, progress);
  }
  check_perplexity_finite(r);
  return r;
}

}  // namespace sparsa
