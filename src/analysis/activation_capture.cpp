// Running the blocks over calibration windows with observers that know their window, and the
// calibration pass that fills one histogram per (layer, point).
#include <memory>
#include <mutex>
#include <optional>

#include "sparsa/activations.h"
#include "sparsa/parallel.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

// Forwards the model's Observer calls of one window to a WindowObserver, then (when given)
// sparsifies the point as the sparse decoder would.
class WindowAdapter : public Observer {
 public:
  WindowAdapter(WindowObserver& target, int64_t window, ActivationSparsifier* applied)
      : target_(target), window_(window), applied_(applied) {}
  void observe(int64_t layer, ObsPoint point, float* x, int64_t n_tokens, int64_t dim) override {
    target_.observe(window_, layer, point, x, n_tokens, dim);
    if (applied_) applied_->observe(layer, point, x, n_tokens, dim);
  }

 private:
  WindowObserver& target_;
  int64_t window_;
  ActivationSparsifier* applied_;
};

}  // namespace

void check_activation_windows(const Model& m, const TensorI32& windows, int64_t n_layers) {
  if (windows.rank() != 2 || windows.dim(0) == 0 || windows.dim(1) == 0)
    bad_input("activation capture needs token windows [n_windows, seqlen], got {}", shape_string(windows.shape));
  SPARSA_ASSERT(n_layers >= 0 && n_layers <= m.config.num_layers);
  check_window_tokens(m.config, windows);  // here: nothing may throw inside the parallel loop
}

namespace {

// One histogram per (layer, point), accumulated into per-thread copies: a thread borrows a
// free copy for the duration of one observe() call, so any threading works and at most
// (concurrent callers) copies exist.
class HistogramCollector : public WindowObserver {
 public:
  explicit HistogramCollector(int64_t n_layers) : n_layers_(n_layers) {}

  void observe(int64_t, int64_t layer, ObsPoint point, const float* x, int64_t n_tokens, int64_t dim) override {
    Histograms* h = borrow();
    (*h)[static_cast<size_t>(layer * kNumObsPoints + static_cast<int>(point))].add(x, n_tokens * dim);
    give_back(h);
  }

  ActivationProfile merged(int64_t tokens) const {
    ActivationProfile p;
    p.n_layers = n_layers_;
    p.tokens = tokens;
    p.hist.resize(static_cast<size_t>(n_layers_ * kNumObsPoints));
    for (const auto& copy : all_)
      for (size_t i = 0; i < p.hist.size(); ++i) p.hist[i].merge((*copy)[i]);
    return p;
  }

 private:
  using Histograms = std::vector<ActivationHistogram>;  // [n_layers * 4]

  Histograms* borrow() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) {
      all_.push_back(std::make_unique<Histograms>(static_cast<size_t>(n_layers_ * kNumObsPoints)));
      return all_.back().get();
    }
    Histograms* h = free_.back();
    free_.pop_back();
    return h;
  }
  void give_back(Histograms* h) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(h);
  }

  int64_t n_layers_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Histograms>> all_;
  std::vector<Histograms*> free_;
};

}  // namespace

namespace {

// Whole windows per thread with single-threaded kernels (nested regions stay serial), as perplexity() does.
class CpuWindowRunner final : public WindowRunner {
 public:
  void run(const Model& m, const TensorI32& windows, int64_t n_layers, WindowObserver& obs,
           const ActivationThresholds* applied, const std::function<void(int64_t, int64_t)>& progress) const override {
    check_activation_windows(m, windows, n_layers);
    std::optional<ActivationSparsifier> sparsifier;
    if (applied) sparsifier.emplace(*applied);
    const int64_t n_windows = windows.dim(0), seqlen = windows.dim(1);
    std::mutex progress_mutex;
    int64_t done = 0;
    ParallelFailure failure;
#pragma omp parallel
    {
      ForwardBuffers buf;
      Tensor x;  // [seqlen, d_model]
#pragma omp for schedule(dynamic, 1)
      for (int64_t w = 0; w < n_windows; ++w)
        failure.run([&] {
          WindowAdapter adapter(obs, w, sparsifier ? &*sparsifier : nullptr);
          embed_tokens(m, windows.ptr() + w * seqlen, seqlen, x);
          for (int64_t l = 0; l < n_layers; ++l) block_forward(m, l, x, buf, &adapter);
          if (progress) {
            std::lock_guard<std::mutex> lock(progress_mutex);
            progress(++done, n_windows);
          }
        });
    }
    failure.rethrow_if_any([&] {
      return fmt::format("capturing activations of {} windows of {} tokens over {} blocks", n_windows, seqlen, n_layers);
    });
  }
};

ActivationProfile capture_profile(const Model& m, const TensorI32& windows, const ActivationThresholds* applied,
                                  const std::function<void(int64_t, int64_t)>& progress, const WindowRunner& runner) {
  if (applied) SPARSA_ASSERT(static_cast<int64_t>(applied->t.size()) == m.config.num_layers);
  HistogramCollector collector(m.config.num_layers);
  runner.run(m, windows, m.config.num_layers, collector, applied, progress);
  return collector.merged(static_cast<int64_t>(windows.numel()));
}

}  // namespace

const WindowRunner& cpu_window_runner() {
  static const CpuWindowRunner runner;
  return runner;
}

void run_windows(const Model& m, const TensorI32& windows, int64_t n_layers, WindowObserver& obs,
                 const std::function<void(int64_t, int64_t)>& progress, const WindowRunner& runner) {
  runner.run(m, windows, n_layers, obs, nullptr, progress);
}

ActivationProfile capture_activation_profile(const Model& m, const TensorI32& windows,
                                             const std::function<void(int64_t, int64_t)>& progress,
                                             const WindowRunner& runner) {
  return capture_profile(m, windows, nullptr, progress, runner);
}

ActivationProfile capture_activation_profile(const Model& m, const TensorI32& windows, const ActivationThresholds& applied,
                                             const std::function<void(int64_t, int64_t)>& progress,
                                             const WindowRunner& runner) {
  return capture_profile(m, windows, &applied, progress, runner);
}

ActivationThresholds decode_thresholds(const Model& m, const TensorI32& windows, const ActivationProfile& dense,
                                       const PointTargets& targets, int passes,
                                       const std::function<void(int64_t, int64_t)>& progress,
                                       const WindowRunner& runner) {
  SPARSA_ASSERT(passes >= 0 && dense.n_layers == m.config.num_layers);
  const int64_t total = passes * windows.dim(0);
  int64_t base = 0;
  const auto step = [&](int64_t done, int64_t) {
    if (progress) progress(base + done, total);
  };
  ActivationThresholds t = dense.thresholds(targets);
  for (int i = 0; i < passes; ++i, base += windows.dim(0))
    t = capture_activation_profile(m, windows, t, step, runner).thresholds(targets);
  return t;
}

}  // namespace sparsa
