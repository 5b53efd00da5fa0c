// The sequential calibration driver of the reference implementations (Wanda repository's
// prune_wanda / prune_sparsegpt): block by block, statistics from the dense block on the
// outputs of the already-pruned previous blocks, prune, recompute the block's outputs.
#include <omp.h>

#include <chrono>
#include <exception>

#include "prune/input_stats.h"
#include "sparsa/error.h"
#include "sparsa/prune.h"

namespace sparsa {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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

int64_t obs_dim(const ModelConfig& c, ObsPoint p) {
  switch (p) {
    case ObsPoint::kAttnIn:
    case ObsPoint::kMlpIn: return c.hidden_size;
    case ObsPoint::kOIn: return c.q_dim();
    case ObsPoint::kDownIn: return c.intermediate_size;
  }
  SPARSA_ASSERT(false);
  return 0;
}

// Runs block `layer` over every sample (in place when `update`), in parallel over samples,
// merging statistics in sample order when `stats` is given.
void run_block(const Model& m, int64_t layer, std::vector<Tensor>& xs, bool update,
               std::vector<InputStats>* stats, const InputStatsConfig& cfg) {
  const auto n = static_cast<int64_t>(xs.size());
#pragma omp parallel
  {
    ForwardBuffers buf;
    StatsObserver obs(cfg);
    Tensor scratch;
#pragma omp for ordered schedule(static, 1)
    for (int64_t j = 0; j < n; ++j) {
      Tensor* x = &xs[static_cast<size_t>(j)];
      if (!update) {
        scratch = *x;
        x = &scratch;
      }
      block_forward(m, layer, *x, buf, stats ? &obs : nullptr);
#pragma omp ordered
      if (stats)
        for (int p = 0; p < kNumObsPoints; ++p) (*stats)[static_cast<size_t>(p)].merge(obs.samples[static_cast<size_t>(p)]);
    }
  }
}

}  // namespace

PruneResult prune_model(Model& m, const TensorI32& calib, const PruneOptions& opt,
                        const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = Clock::now();
  const ModelConfig& c = m.config;
  const SparsityTarget& t = opt.target;
  if (t.is_nm() ? !(t.n > 0 && t.n < t.m) : !(t.ratio > 0.0 && t.ratio < 1.0))
    bad_input("sparsity target must be in (0, 1) or N:M with 0 < N < M");
  const bool needs_data = opt.method != PruneMethod::kMagnitude;
  const InputStatsConfig cfg{opt.method == PruneMethod::kWanda, opt.method == PruneMethod::kSparseGPT};
  if (opt.first_layer < 0 || opt.first_layer > c.num_layers)
    bad_input("cannot resume at block {}: the model has {} blocks", opt.first_layer, c.num_layers);

  PruneResult result;
  std::vector<Tensor> xs;  // per sample: [seqlen, d_model], the current block's inputs
  if (needs_data) {
    if (calib.rank() != 2 || calib.dim(0) == 0) bad_input("calibration tokens must be [n_samples, seqlen], got {}", shape_string(calib.shape));
    if (calib.dim(1) > c.max_position) bad_input("calibration seqlen {} is above the model's context length {}", calib.dim(1), c.max_position);
    const auto t0 = Clock::now();
    xs.resize(static_cast<size_t>(calib.dim(0)));
    for (int64_t j = 0; j < calib.dim(0); ++j) embed_tokens(m, calib.ptr() + j * calib.dim(1), calib.dim(1), xs[static_cast<size_t>(j)]);
    for (int64_t l = 0; l < opt.first_layer; ++l) run_block(m, l, xs, /*update=*/true, nullptr, cfg);
    result.timings.forward += since(t0);
  }

  for (int64_t l = opt.first_layer; l < c.num_layers; ++l) {
    std::vector<InputStats> stats;
    if (needs_data) {
      for (int p = 0; p < kNumObsPoints; ++p) stats.emplace_back(cfg, obs_dim(c, static_cast<ObsPoint>(p)));
      const auto t0 = Clock::now();
      run_block(m, l, xs, /*update=*/false, &stats, cfg);
      result.timings.stats += since(t0);  // includes the dense forward the statistics ride on
    }
    Block& b = m.blocks[static_cast<size_t>(l)];
    std::array<std::vector<float>, kNumObsPoints> sqnorms;  // Wanda's per-point input norms
    if (opt.method == PruneMethod::kWanda)
      for (int p = 0; p < kNumObsPoints; ++p) sqnorms[static_cast<size_t>(p)] = stats[static_cast<size_t>(p)].mean_sqnorm();
    // The block's linears are pruned concurrently, each with single-threaded kernels: their
    // BLAS/LAPACK calls then round the same way whatever the thread count.
    const std::vector<LinearRole>& roles = arch_info(c.arch).roles;
    const auto n_roles = static_cast<int64_t>(roles.size());
    std::vector<LinearPruneResult> done(roles.size());
    std::vector<std::exception_ptr> failed(roles.size());  // exceptions may not leave an OpenMP loop
    const auto t_select = Clock::now();
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_roles; ++i) try {
      const LinearRole role = roles[static_cast<size_t>(i)];
      const auto p = static_cast<size_t>(role_info(role).input);
      const auto t0 = Clock::now();
      Tensor& w = b.linear(role).weight;
      LinearPruneResult& lr = done[static_cast<size_t>(i)];
      lr.layer = l;
      lr.role = role;
      lr.name = hf_linear_name(c.arch, l, role);
      switch (opt.method) {
        case PruneMethod::kMagnitude:
          lr.mask = magnitude_mask(w, t);
          apply_mask(w, lr.mask);
          break;
        case PruneMethod::kWanda:
          lr.mask = wanda_mask(w, sqnorms[p], t);
          apply_mask(w, lr.mask);
          break;
        case PruneMethod::kSparseGPT: {
          Tensor h = stats[p].hessian();  // consumed by the update
          lr.mask = sparsegpt_prune(w, h, t, opt.blocksize, opt.percdamp);
          break;
        }
      }
      lr.seconds = since(t0);
    } catch (...) {
      failed[static_cast<size_t>(i)] = std::current_exception();
    }
    for (const auto& e : failed)
      if (e) std::rethrow_exception(e);
    result.timings.select += since(t_select);
    if (opt.on_block) opt.on_block(l, done);
    for (auto& lr : done) result.linears.push_back(std::move(lr));
    if (needs_data) {
      const auto t0 = Clock::now();
      run_block(m, l, xs, /*update=*/true, nullptr, cfg);
      result.timings.forward += since(t0);
    }
    if (progress) progress(l + 1, c.num_layers);
  }
  result.timings.total = since(start);
  return result;
}

}  // namespace sparsa
