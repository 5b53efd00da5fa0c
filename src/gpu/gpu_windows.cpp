// The GPU WindowRunner (sparsa/activations.h): the blocks of every family run on the device over
// chunks of whole windows, and each observation point's activations come back to the host for the
// observer (histograms, bitsets, bytes model), window by window, from this one thread. The
// observers are the CPU's, so `acts --device cuda` computes exactly what the CPU path does from
// the GPU's activations.
#ifdef SPARSA_WITH_CUDA

#include <algorithm>
#include <vector>

#include "gpu/gpu_backends.h"
#include "gpu/gpu_forward.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {
namespace {

// Copies each point's x32 [S * seqlen, dim] to the host and hands the observer one window at a time.
class HostCopyObserver final : public gpu::GpuObserver {
 public:
  HostCopyObserver(WindowObserver& target, int64_t seqlen) : target_(target), seqlen_(seqlen) {}
  void at(int64_t first_window, int64_t layer) {
    first_window_ = first_window;
    layer_ = layer;
  }
  void observe(ObsPoint p, const float* x32, const void*, int64_t n_tokens, int64_t dim) override {
    host_.resize(static_cast<size_t>(n_tokens * dim));
    copy_to_host(host_.data(), x32, host_.size() * sizeof(float));
    for (int64_t s = 0; s * seqlen_ < n_tokens; ++s)
      target_.observe(first_window_ + s, layer_, p, host_.data() + s * seqlen_ * dim, seqlen_, dim);
  }

 private:
  WindowObserver& target_;
  int64_t seqlen_, first_window_ = 0, layer_ = 0;
  std::vector<float> host_;  // [S * seqlen, dim]
};

class CudaWindowRunner final : public WindowRunner {
 public:
  explicit CudaWindowRunner(const DeviceOptions& device) : device_(device) {}

  void run(const Model& m, const TensorI32& windows, int64_t n_layers, WindowObserver& obs,
           const ActivationThresholds* applied, const std::function<void(int64_t, int64_t)>& progress) const override {
    const ModelConfig& c = m.config;
    check_gpu_supported(c);
    check_activation_windows(m, windows, n_layers);
    if (applied && static_cast<int64_t>(applied->t.size()) < n_layers)
      bad_input("activation thresholds for {} layers, {} are run", applied->t.size(), n_layers);
    const int64_t n_windows = windows.dim(0), L = windows.dim(1);
    const int64_t per_chunk = std::max<int64_t>(1, std::min(device_.chunk_tokens / L, n_windows));
    gpu::HostStaging staging;
    std::vector<gpu::GpuBlock> blocks(static_cast<size_t>(n_layers));
    for (int64_t l = 0; l < n_layers; ++l) blocks[static_cast<size_t>(l)].upload(m, l, device_.precision, staging);
    gpu::GpuEmbedding embedding(m, staging);
    gpu::GpuForward fw(c, device_.precision, per_chunk, L);
    DeviceBuffer<int32_t> tokens(static_cast<size_t>(per_chunk * L));
    DeviceBuffer<float> x(static_cast<size_t>(per_chunk * L * c.hidden_size));
    HostCopyObserver copier(obs, L);
    for (int64_t w0 = 0; w0 < n_windows; w0 += per_chunk) {
      const int64_t S = std::min(per_chunk, n_windows - w0);
      tokens.upload(std::vector<int32_t>(windows.ptr() + w0 * L, windows.ptr() + (w0 + S) * L));
      embedding.embed(tokens.data(), S * L, L, x.data());
      for (int64_t l = 0; l < n_layers; ++l) {
        copier.at(w0, l);
        fw.block(blocks[static_cast<size_t>(l)], x.data(), S, &copier, false,
                 applied ? &applied->t[static_cast<size_t>(l)] : nullptr);
      }
      if (progress) progress(w0 + S, n_windows);
    }
  }

 private:
  DeviceOptions device_;
};

}  // namespace

std::unique_ptr<WindowRunner> make_cuda_window_runner(const DeviceOptions& device) {
  return std::make_unique<CudaWindowRunner>(device);
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
