// The CPU block backend of the pruning driver (sparsa/prune_backend.h): the calibration
// activations in host memory, samples run in parallel over the OpenMP threads, the linears of
// a block pruned concurrently.
#include <omp.h>

#include <array>
#include <chrono>
#include <exception>

#include "prune/input_stats.h"
#include "sparsa/error.h"
#include "sparsa/parallel.h"
#include "sparsa/progress.h"
#include "sparsa/prune_backend.h"

namespace sparsa {
namespace {

using Clock = std::chrono::steady_clock;

// Computes each observation point's per-sample statistics as the forward pass reaches it.
class StatsObserver : public Observer {
 public:
  explicit StatsObserver(const InputStatsConfig& cfg) : cfg_(cfg) {}
  void observe(int64_t, ObsPoint p, float* x, int64_t n, int64_t dim) override {
    samples[static_cast<size_t>(p)].compute(cfg_, x, n, dim);
  }
  std::array<SampleStats, kNumObsPoints> samples;

 private:
  InputStatsConfig cfg_;
};

// Runs block `layer` over every sample (in place when `update`), in parallel over samples,
// merging statistics in sample order when `stats` is given.
void run_block_samples(const Model& m, int64_t layer, std::vector<Tensor>& xs, bool update,
                       std::vector<InputStats>* stats, const InputStatsConfig& cfg) {
  const auto n = static_cast<int64_t>(xs.size());
  ParallelFailure failure;
#pragma omp parallel
  {
    ForwardBuffers buf;
    StatsObserver obs(cfg);
    Tensor scratch;
#pragma omp for ordered schedule(static, 1)
    for (int64_t j = 0; j < n; ++j) {
      failure.run([&] {
        Tensor* x = &xs[static_cast<size_t>(j)];
        if (!update) {
          scratch = *x;
          x = &scratch;
        }
        block_forward(m, layer, *x, buf, stats ? &obs : nullptr);
      });
#pragma omp ordered
      if (stats)
        failure.run([&] {
          for (int p = 0; p < kNumObsPoints; ++p) (*stats)[static_cast<size_t>(p)].merge(obs.samples[static_cast<size_t>(p)]);
        });
    }
  }
  failure.rethrow_if_any([&] {
    const int64_t seqlen = n > 0 ? xs[0].dim(0) : 0;
    return fmt::format("running block {} over {} calibration samples of {} tokens{}", layer, n, seqlen,
                       cfg.hessian ? " (with a Hessian [in, in] per linear input)" : "");
  });
}

class CpuPruneBackend final : public PruneBackend {
 public:
  CpuPruneBackend(Model& m, const PruneOptions& opt)
      : m_(m), opt_(opt), cfg_{opt.method == PruneMethod::kWanda, opt.method == PruneMethod::kSparseGPT} {}

  void embed(const TensorI32& calib) override {
    xs_.resize(static_cast<size_t>(calib.dim(0)));  // per sample: [seqlen, d_model], the current block's inputs
    for (int64_t j = 0; j < calib.dim(0); ++j) embed_tokens(m_, calib.ptr() + j * calib.dim(1), calib.dim(1), xs_[static_cast<size_t>(j)]);
  }
  void load_block(int64_t) override {}  // every block is resident
  void run_block(int64_t layer) override { run_block_samples(m_, layer, xs_, /*update=*/true, nullptr, cfg_); }
  void observe(int64_t layer) override {
    stats_.clear();
    for (int p = 0; p < kNumObsPoints; ++p) stats_.emplace_back(cfg_, obs_point_dim(m_.config, static_cast<ObsPoint>(p)));
    run_block_samples(m_, layer, xs_, /*update=*/false, &stats_, cfg_);
  }
  void prune_linears(int64_t layer, std::span<LinearPruneResult> linears) override;
  void commit_block(int64_t layer, std::span<LinearPruneResult> linears) override {
    if (opt_.on_block) opt_.on_block(layer, linears);  // the weights were pruned in place
  }
  void finish() override {}
  void abandon() noexcept override {}

 private:
  void prune_linear(Block& b, LinearPruneResult& lr, const std::array<std::vector<float>, kNumObsPoints>& sqnorms);
  // The method's selection (and SparseGPT's update) of weight `w` [out, in]; sqnorm: Wanda's
  // input norms of the linear [in].
  void select_and_update(Tensor& w, LinearPruneResult& lr, const std::vector<float>& sqnorm);

  Model& m_;
  const PruneOptions& opt_;
  InputStatsConfig cfg_;
  std::vector<Tensor> xs_;
  std::vector<InputStats> stats_;  // by observation point, of the last observe()
};

void CpuPruneBackend::prune_linear(Block& b, LinearPruneResult& lr,
                                   const std::array<std::vector<float>, kNumObsPoints>& sqnorms) {
  const auto p = static_cast<size_t>(role_info(lr.role).input);
  const auto t0 = Clock::now();
  try {
    select_and_update(b.linear(lr.role).weight, lr, sqnorms[p]);
  } catch (const OutOfMemory&) {
    throw;
  } catch (const Error& e) {  // the selection functions do not know which linear they prune
    throw Error(e.kind(), fmt::format("{}: {}", lr.name, e.what()));
  }
  lr.seconds = seconds_since(t0);
}

void CpuPruneBackend::select_and_update(Tensor& w, LinearPruneResult& lr, const std::vector<float>& sqnorm) {
  const auto p = static_cast<size_t>(role_info(lr.role).input);
  switch (opt_.method) {
    case PruneMethod::kMagnitude:
      lr.mask = magnitude_mask(w, opt_.target);
      apply_mask(w, lr.mask);
      break;
    case PruneMethod::kWanda:
      lr.mask = wanda_mask(w, sqnorm, opt_.target);
      apply_mask(w, lr.mask);
      break;
    case PruneMethod::kSparseGPT: {
      Tensor h = stats_[p].hessian();  // consumed by the update
      lr.mask = sparsegpt_prune(w, h, opt_.target, opt_.blocksize, opt_.percdamp);
      break;
    }
  }
}

// The block's linears are pruned concurrently, each with single-threaded kernels: their
// BLAS/LAPACK calls then round the same way whatever the thread count.
void CpuPruneBackend::prune_linears(int64_t layer, std::span<LinearPruneResult> linears) {
  Block& b = m_.blocks[static_cast<size_t>(layer)];
  std::array<std::vector<float>, kNumObsPoints> sqnorms;  // Wanda's per-point input norms
  if (opt_.method == PruneMethod::kWanda)
    for (int p = 0; p < kNumObsPoints; ++p) sqnorms[static_cast<size_t>(p)] = stats_[static_cast<size_t>(p)].mean_sqnorm();
  const auto n = static_cast<int64_t>(linears.size());
  ParallelFailure failure;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) failure.run([&] { prune_linear(b, linears[static_cast<size_t>(i)], sqnorms); });
  stats_.clear();  // the Hessians are large: not kept through the pruned block's forward
  failure.rethrow_if_any([&] { return fmt::format("pruning the {} linears of block {}", n, layer); });
}

}  // namespace

std::unique_ptr<PruneBackend> make_cpu_prune_backend(Model& m, const PruneOptions& opt) {
  return std::make_unique<CpuPruneBackend>(m, opt);
}

}  // namespace sparsa
