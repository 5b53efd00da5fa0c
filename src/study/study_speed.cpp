// The study's speed step: how far the activation sparsity it measured can speed up decoding.
// Always the bytes model (sparsa/bytes_model.h) on the dense model's own calibration activations at
// every activation sparsity of the study; with a CUDA device, also the measured speed-up of the
// activation-sparse GEMV over cuBLAS's dense one on the model's MLP shapes, fed with the analysis
// block's activations (time_sparse_vs_dense_gemv, sparsa/sparse_gemv.h). One bench run.
#include <algorithm>

#include <fmt/format.h>

#include "sparsa/bytes_model.h"
#include "sparsa/cuda.h"
#include "sparsa/runs.h"
#include "sparsa/sparse_gemv.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

constexpr int kTimedReps = 100;  // graph replays per measured kernel (the median is reported)

// The name of the CUDA device the GEMVs are measured on; empty when there is none (a CPU-only
// build, or no driver or device at run time).
std::string measuring_device() { return cuda_device_count() > 0 ? cuda_device_name(0) : std::string(); }

// What the step's results depend on; like the analysis run, it names the run it was built from
// (the acts run whose thresholds it uses), so a study whose activation run is recomputed
// recomputes it too.
std::string speed_options(const Context& ctx, const std::vector<int>& blocks, const std::string& device) {
  std::string b;
  for (int r : blocks) b += fmt::format("{}{}", b.empty() ? "" : ",", r);
  return act_sparsities_option(ctx.opt.act_sparsities) +
         fmt::format(" windows={} block_rows={} acts_run={} measured={}", ctx.opt.act_bitset_windows, b, ctx.acts_run,
                     device.empty() ? "none" : device);
}

std::vector<BytesModelRow> bytes_model_rows(const BytesModel& m) {
  std::vector<BytesModelRow> rows;
  for (size_t s = 0; s < m.act_sparsities.size(); ++s)
    for (size_t b = 0; b < m.block_rows.size(); ++b) {
      const BytesModelRow common{.act_sparsity = m.act_sparsities[s], .block_rows = m.block_rows[b], .tokens = m.tokens};
      for (int64_t l = 0; l < m.n_layers; ++l) {
        BytesModelRow r = common;
        r.layer = l;
        r.mlp_params = m.weights.mlp_in[static_cast<size_t>(l)] + m.weights.down_in[static_cast<size_t>(l)];
        r.mlp_in_fraction = m.mlp_in_at(s, b, l);
        r.down_in_fraction = m.down_in_at(s, b, l);
        r.mlp_fraction = m.layer_mlp_fraction(s, b, l);
        rows.push_back(r);
      }
      BytesModelRow all = common;
      all.mlp_params = m.weights.mlp();
      all.decode_params = m.weights.total();
      all.mlp_in_fraction = m.mlp_in_fraction_all(s, b);
      all.down_in_fraction = m.down_in_fraction_all(s, b);
      all.mlp_fraction = m.mlp_fraction(s, b);
      all.decode_fraction = m.decode_fraction(s, b);
      rows.push_back(all);
    }
  return rows;
}

// The activations one block's MLP linears get, at mlp_in and down_in, over the first window.
class MlpInputs : public WindowObserver {
 public:
  explicit MlpInputs(int64_t layer) : layer_(layer) {}
  void observe(int64_t window, int64_t layer, ObsPoint point, const float* x, int64_t n_tokens, int64_t dim) override {
    if (window != 0 || layer != layer_) return;
    if (point == ObsPoint::kMlpIn) mlp_in.assign(x, x + n_tokens * dim);
    if (point == ObsPoint::kDownIn) down_in.assign(x, x + n_tokens * dim);
  }
  std::vector<float> mlp_in, down_in;  // [n_tokens, dim] each

 private:
  int64_t layer_;
};

// The measured rows: per activation sparsity, the analysis block's gate/up (or fc1) shape on its
// mlp_in activations and its down (or fc2) shape on its down_in activations, bf16 weights.
std::vector<BenchmarkRow> measured_rows(const Context& ctx, const std::vector<ActivationThresholds>& thresholds,
                                        const std::string& device) {
  const int64_t layer = ctx.analysis_layer;
  MlpInputs inputs(layer);
  run_windows(ctx.dense, ctx.first_calib_windows(1), layer + 1, inputs, {}, *ctx.runner);
  const Block& block = ctx.dense.blocks[static_cast<size_t>(layer)];
  std::vector<BenchmarkRow> rows;
  for (const ActivationThresholds& t : thresholds)
    for (const ObsPoint p : {ObsPoint::kMlpIn, ObsPoint::kDownIn}) {
      // The first linear the point feeds (up has gate's shape and input: timed once).
      const auto& roles = arch_info(ctx.dense.config.arch).roles;
      const auto it = std::find_if(roles.begin(), roles.end(), [&](LinearRole x) { return role_info(x).input == p; });
      if (it == roles.end()) continue;
      const LinearRole r = *it;
      const Linear& w = block.linear(r);
      const GemvShape shape{DType::BF16, 1, w.in_features(), w.out_features()};
      const float threshold = t.t[static_cast<size_t>(layer)][static_cast<size_t>(p)];
      const std::vector<float>& x = p == ObsPoint::kMlpIn ? inputs.mlp_in : inputs.down_in;
      const GemvSpeed speed = time_sparse_vs_dense_gemv(shape, x, threshold, static_cast<float>(t.sparsity), kTimedReps);
      rows.push_back({.name = fmt::format("gemv_sparse_act {} block {}", obs_point_name(p), layer),
                      .shape = fmt::format("{}x{}", shape.out, shape.in),
                      .dtype = "bf16",
                      .sparsity = t.sparsity,
                      .microseconds = speed.sparse_us,
                      .baseline_microseconds = speed.dense_us,
                      .machine = device});
    }
  return rows;
}

}  // namespace

void speed_step(Context& ctx) {
  const std::string device = measuring_device();
  const std::vector<int> blocks = default_bytes_model_block_rows();
  RunInfo info = ctx.run_info(RunKind::kBench);
  info.method = "speed";
  info.options = speed_options(ctx, blocks, device);
  if (const auto id = ctx.store.find_run(info)) {
    ++ctx.reused;
    ctx.note(fmt::format("speed: from run {}", *id));
    return;
  }
  const auto t0 = Clock::now();
  std::vector<ActivationThresholds> thresholds;
  for (double s : ctx.opt.act_sparsities) {
    thresholds.push_back(thresholds_from_store(ctx, ctx.acts_run, s));
    if (thresholds.back().t.empty())
      runtime_failure("speed: the activation run {} lacks thresholds at sparsity {:g}", ctx.acts_run, s);
  }
  const BytesModel model = measure_bytes_model(ctx.dense, ctx.first_calib_windows(ctx.opt.act_bitset_windows), thresholds, blocks);
  const double model_seconds = seconds_since(t0);
  const std::vector<BenchmarkRow> measured = device.empty() ? std::vector<BenchmarkRow>{} : measured_rows(ctx, thresholds, device);

  RunWriter w = ctx.store.begin_run(info);
  w.add_bytes_model(bytes_model_rows(model));
  w.add_benchmarks(measured);
  w.set_timings({.total = seconds_since(t0), .forward = model_seconds});
  w.commit();
  ++ctx.computed;
  const size_t last = model.act_sparsities.size() - 1;
  ctx.note(fmt::format("speed: at {:g} % activation sparsity a decode step reads {:.1f} % of its weights with B = {} "
                       "({} tokens; {})",
                       100 * model.act_sparsities[last], 100 * model.decode_fraction(last, 0), blocks[0], model.tokens,
                       device.empty() ? "modelled bytes, no GPU" : fmt::format("GEMVs measured on {}", device)));
}

}  // namespace sparsa::study
