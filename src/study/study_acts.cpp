// The study's activation step: thresholds for the target activation sparsities, coarse
// histograms for the database and the figures, and perplexity with activations sparsified.
#include <chrono>

#include <fmt/format.h>

#include "sparsa/runs.h"
#include "sparsa/viz.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

namespace fs = std::filesystem;

std::string acts_options(const StudyOptions& o) {
  return act_sparsities_option(o.act_sparsities) + fmt::format(" bitset_sparsity={:g}", o.act_bitset_sparsity);
}

}  // namespace

// Thresholds at sparsity s read back from a committed acts run.
ActivationThresholds thresholds_from_store(const Context& ctx, int64_t run_id, double s) {
  ActivationThresholds t;
  t.sparsity = s;
  t.t.assign(static_cast<size_t>(ctx.dense.config.num_layers), {0, 0, 0, 0});
  const auto j = ctx.store.query_json(fmt::format(
      "SELECT layer, point, threshold FROM act_thresholds WHERE run_id = {} AND abs(target_sparsity - {}) < 1e-9", run_id, s));
  int64_t found = 0;
  for (const auto& row : j["rows"]) {
    const int64_t layer = row[0].get<int64_t>();
    const std::string point = row[1].get<std::string>();
    for (int p = 0; p < kNumObsPoints; ++p)
      if (obs_point_name(static_cast<ObsPoint>(p)) == point && layer >= 0 && layer < ctx.dense.config.num_layers) {
        t.t[static_cast<size_t>(layer)][static_cast<size_t>(p)] = static_cast<float>(row[2].get<double>());
        ++found;
      }
  }
  if (found != ctx.dense.config.num_layers * kNumObsPoints) t.t.clear();  // incomplete: recompute
  return t;
}

ActivationThresholds acts_step(Context& ctx) {
  RunInfo info = ctx.run_info(RunKind::kActs);
  info.options = acts_options(ctx.opt) + " " + ctx.eval_identity();  // perplexity at each sparsity
  const fs::path figure = ctx.figures_dir / fmt::format("act_hist_layer{}_attn_in.png", ctx.analysis_layer);
  if (const auto id = ctx.store.find_run(info); id && (!ctx.opt.figures || ctx.figure_present(figure))) {
    ActivationThresholds t = thresholds_from_store(ctx, *id, ctx.opt.act_bitset_sparsity);
    if (!t.t.empty()) {
      ctx.acts_run = *id;
      ++ctx.reused;
      ctx.note(fmt::format("activations: from run {}", *id));
      return t;
    }
  }

  const auto t0 = Clock::now();
  const ActivationProfile profile = capture_activation_profile(ctx.dense, ctx.calib.tokens, {}, *ctx.runner);
  const double capture_seconds = seconds_since(t0);
  RunWriter w = ctx.store.begin_run(info);
  add_act_histogram_rows(w, profile);
  double eval_seconds = 0;
  for (double s : ctx.opt.act_sparsities) {
    const ActivationThresholds t = profile.thresholds(s);
    add_act_threshold_rows(w, t);
    const PerplexityResult r = sparsified_perplexity(ctx.dense, ctx.eval, t, ctx.opt.device);
    eval_seconds += r.seconds;
    w.add_perplexity({ctx.eval_name, PplKind::kActSparsified, s, r.ppl, r.predicted_tokens, r.seconds});
    ctx.note(fmt::format("activations sparsified to {:g}: perplexity {:.4f}", s, r.ppl));
  }
  w.set_timings({.total = seconds_since(t0), .forward = capture_seconds, .eval = eval_seconds});
  ctx.acts_run = w.run_id();
  w.commit();
  if (ctx.opt.figures) draw_act_histograms(ctx, ctx.acts_run, {ObsPoint::kAttnIn, ObsPoint::kDownIn});
  ++ctx.computed;
  ctx.note(fmt::format("activations: {} tokens captured in {:.1f} s", profile.tokens, capture_seconds));
  return profile.thresholds(ctx.opt.act_bitset_sparsity);
}

}  // namespace sparsa::study
