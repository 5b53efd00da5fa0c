// The study's activation step: thresholds for the target activation sparsities, coarse
// histograms for the database and the figures, and perplexity with activations sparsified.
#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "sparsa/viz.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kHistogramBins = 120;   // coarse bins stored per (layer, point)
constexpr double kHistogramRange = 0.999;  // the bins span ±(this quantile of |x|); the tails fold in

struct CoarseHistogram {
  std::vector<double> edges;    // [kHistogramBins + 1], symmetric around 0
  std::vector<int64_t> counts;  // [kHistogramBins]
};

// Re-bins the fine log-spaced magnitude histogram into linear signed bins over ±R, each fine bin
// going to the coarse bin of its midpoint; values beyond ±R fold into the edge bins.
CoarseHistogram coarsen(const ActivationHistogram& h) {
  double range = h.threshold(kHistogramRange);
  if (!(range > 0)) range = 1.0;
  CoarseHistogram c;
  c.counts.assign(kHistogramBins, 0);
  for (int64_t i = 0; i <= kHistogramBins; ++i)
    c.edges.push_back(-range + 2.0 * range * static_cast<double>(i) / static_cast<double>(kHistogramBins));
  const auto& counts = h.counts();  // [2, kBinsPerSign]: x >= +0, then x <= -0
  for (int sign = 0; sign < 2; ++sign) {
    for (int64_t b = 0; b < ActivationHistogram::kBinsPerSign; ++b) {
      const uint64_t n = counts[static_cast<size_t>(sign * ActivationHistogram::kBinsPerSign + b)];
      if (n == 0) continue;
      const double lo = ActivationHistogram::bin_lower(b), hi = ActivationHistogram::bin_upper(b);
      const double mid = std::isfinite(hi) ? 0.5 * (lo + hi) : lo;
      const double x = sign == 0 ? mid : -mid;
      const auto idx = static_cast<int64_t>(std::floor((x + range) / (2.0 * range) * kHistogramBins));
      c.counts[static_cast<size_t>(std::clamp<int64_t>(idx, 0, kHistogramBins - 1))] += static_cast<int64_t>(n);
    }
  }
  return c;
}

// The histograms of the analysis layer with the thresholds of every target marked.
void draw_histograms(const Context& ctx, const ActivationProfile& profile) {
  for (const ObsPoint p : {ObsPoint::kAttnIn, ObsPoint::kDownIn}) {
    const ActivationHistogram& h = profile.at(ctx.analysis_layer, p);
    const CoarseHistogram c = coarsen(h);
    std::vector<viz::ActivationThreshold> marks;
    for (double s : ctx.opt.act_sparsities) marks.push_back({s, h.threshold(s)});
    viz::HistogramOptions o;
    o.frame.title = fmt::format("Activations at {} of block {} ({} tokens)", obs_point_name(p), ctx.analysis_layer,
                                profile.tokens);
    o.frame.x_label = "activation value";
    o.frame.y_label = "count (log scale)";
    o.log_y = true;
    const std::vector<double> counts(c.counts.begin(), c.counts.end());
    viz::activation_histogram(c.edges, counts, marks, o)
        .save(ctx.figures_dir / fmt::format("act_hist_layer{}_{}.png", ctx.analysis_layer, obs_point_name(p)));
  }
}

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

std::string acts_options(const StudyOptions& o) {
  std::string s = "sparsities=";
  for (size_t i = 0; i < o.act_sparsities.size(); ++i) s += fmt::format("{}{:g}", i ? "," : "", o.act_sparsities[i]);
  return s + fmt::format(" bitset_sparsity={:g}", o.act_bitset_sparsity);
}

}  // namespace

ActivationThresholds acts_step(Context& ctx) {
  RunInfo info = ctx.run_info(RunKind::kActs);
  info.options = acts_options(ctx.opt);
  const fs::path figure = ctx.figures_dir / fmt::format("act_hist_layer{}_attn_in.png", ctx.analysis_layer);
  if (const auto id = ctx.store.find_run(info); id && (!ctx.opt.figures || fs::exists(figure))) {
    ActivationThresholds t = thresholds_from_store(ctx, *id, ctx.opt.act_bitset_sparsity);
    if (!t.t.empty()) {
      ctx.acts_run = *id;
      ++ctx.reused;
      ctx.note(fmt::format("activations: from run {}", *id));
      return t;
    }
  }

  const auto t0 = Clock::now();
  const ActivationProfile profile = capture_activation_profile(ctx.dense, ctx.calib.tokens);
  const double capture_seconds = since(t0);
  RunWriter w = ctx.store.begin_run(info);
  for (int64_t l = 0; l < profile.n_layers; ++l) {
    for (int p = 0; p < kNumObsPoints; ++p) {
      const CoarseHistogram c = coarsen(profile.at(l, static_cast<ObsPoint>(p)));
      w.add_act_histogram(l, static_cast<ObsPoint>(p), c.edges, c.counts);
    }
  }
  double eval_seconds = 0;
  for (double s : ctx.opt.act_sparsities) {
    const ActivationThresholds t = profile.thresholds(s);
    std::vector<ActThresholdRow> rows;
    for (int64_t l = 0; l < profile.n_layers; ++l)
      for (int p = 0; p < kNumObsPoints; ++p)
        rows.push_back({l, static_cast<ObsPoint>(p), s, t.t[static_cast<size_t>(l)][static_cast<size_t>(p)]});
    w.add_act_thresholds(rows);
    ActivationSparsifier sparsify(t);
    const PerplexityResult r = perplexity(ctx.dense, ctx.eval, &sparsify);
    eval_seconds += r.seconds;
    w.add_perplexity({ctx.eval_name, PplKind::kActSparsified, s, r.ppl, r.predicted_tokens, r.seconds});
    ctx.note(fmt::format("activations sparsified to {:g}: perplexity {:.4f}", s, r.ppl));
  }
  if (ctx.opt.figures) draw_histograms(ctx, profile);
  w.set_timings({.total = since(t0), .forward = capture_seconds, .eval = eval_seconds});
  ctx.acts_run = w.run_id();
  w.commit();
  ++ctx.computed;
  ctx.note(fmt::format("activations: {} tokens captured in {:.1f} s", profile.tokens, capture_seconds));
  return profile.thresholds(ctx.opt.act_bitset_sparsity);
}

}  // namespace sparsa::study
