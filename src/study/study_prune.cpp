// The study's dense evaluation, pruning runs and method-vs-method mask comparisons.
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "sparsa/mask_compare.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

namespace fs = std::filesystem;
std::string ppl_query(int64_t run_id, std::string_view kind) {
  return fmt::format("SELECT ppl FROM perplexities WHERE run_id = {} AND kind = '{}'", run_id, kind);
}

// The mask's own per-feature statistics: pruned count and kept fraction of every row (output
// feature) and every column (input feature).
void add_mask_features(RunWriter& w, const LinearPruneResult& l) {
  const Mask& m = l.mask;
  std::vector<int64_t> row_pruned(static_cast<size_t>(m.rows), 0), col_pruned(static_cast<size_t>(m.cols), 0);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      if (m.at(r, c)) {
        ++row_pruned[static_cast<size_t>(r)];
        ++col_pruned[static_cast<size_t>(c)];
      }
  const auto rows_of = [](const std::vector<int64_t>& pruned, int64_t length) {
    std::vector<FeatureMetric> out(pruned.size());
    for (size_t i = 0; i < pruned.size(); ++i) {
      out[i].feature = static_cast<int64_t>(i);
      out[i].pruned = pruned[i];
      out[i].kept_fraction = 1.0 - static_cast<double>(pruned[i]) / static_cast<double>(length);
    }
    return out;
  };
  w.add_feature_metrics({l.name, FeatureAxis::kRow}, rows_of(row_pruned, m.cols));
  w.add_feature_metrics({l.name, FeatureAxis::kCol}, rows_of(col_pruned, m.rows));
}

std::string prune_options(const StudyOptions& o, PruneMethod method) {
  return method == PruneMethod::kSparseGPT ? fmt::format("blocksize={} percdamp={}", o.blocksize, o.percdamp) : "";
}

// One row per feature of a comparison: [features] metrics -> FeatureMetric.
std::vector<FeatureMetric> compared_features(const FeatureMetrics& f, int64_t length) {
  std::vector<FeatureMetric> out(f.jaccard.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].feature = static_cast<int64_t>(i);
    out[i].pruned = std::llround(f.sparsity_a[i] * static_cast<double>(length));
    out[i].kept_fraction = 1.0 - f.sparsity_a[i];
    out[i].jaccard = f.jaccard[i];
    out[i].hamming = f.hamming[i];
    if (!f.cosine.empty() && std::isfinite(f.cosine[i])) out[i].cosine = f.cosine[i];
  }
  return out;
}

}  // namespace

double dense_step(Context& ctx) {
  const RunInfo info = ctx.run_info(RunKind::kDense);
  if (const auto id = ctx.store.find_run(info)) {
    if (const auto ppl = ctx.query_number(ppl_query(*id, "dense"))) {
      ++ctx.reused;
      ctx.dense_ppl = *ppl;
      ctx.note(fmt::format("dense: perplexity {:.4f} (from run {})", *ppl, *id));
      return *ppl;
    }
  }
  const auto t0 = Clock::now();
  const PerplexityResult r = perplexity(ctx.dense, ctx.eval);
  RunWriter w = ctx.store.begin_run(info);
  w.add_perplexity({ctx.eval_name, PplKind::kDense, std::nullopt, r.ppl, r.predicted_tokens, r.seconds});
  w.set_timings({.total = since(t0), .eval = r.seconds});
  w.commit();
  ++ctx.computed;
  ctx.dense_ppl = r.ppl;
  ctx.note(fmt::format("dense: perplexity {:.4f} ({:.1f} s)", r.ppl, r.seconds));
  return r.ppl;
}

PruneRun prune_step(Context& ctx, PruneMethod method, const SparsityTarget& target) {
  RunInfo info = ctx.run_info(RunKind::kPrune);
  info.method = prune_method_name(method);
  info.target = target;
  info.options = prune_options(ctx.opt, method);
  if (method == PruneMethod::kMagnitude) {  // needs no calibration data
    info.calib_description.clear();
    info.calib_hash.clear();
    info.nsamples = 0;
  }
  PruneRun run{method, target, 0, ctx.masks_dir / fmt::format("{}_{}.safetensors", info.method, target.label()), 0};
  const std::string what = fmt::format("{} {}", info.method, target.label());
  if (const auto id = ctx.store.find_run(info); id && fs::exists(run.mask_file)) {
    if (const auto ppl = ctx.query_number(ppl_query(*id, "pruned"))) {
      run.run_id = *id;
      run.ppl = *ppl;
      ++ctx.reused;
      ctx.note(fmt::format("{}: perplexity {:.4f} (from run {})", what, run.ppl, *id));
      return run;
    }
  }

  const auto t0 = Clock::now();
  Model m = ctx.dense;
  PruneOptions po;
  po.method = method;
  po.target = target;
  po.blocksize = ctx.opt.blocksize;
  po.percdamp = ctx.opt.percdamp;
  const PruneResult pr = prune_model(m, ctx.calib.tokens, po);
  write_mask_file(run.mask_file, pr, method, target);
  const PerplexityResult ev = perplexity(m, ctx.eval);

  RunWriter w = ctx.store.begin_run(info);
  for (const auto& l : pr.linears) {
    w.add_matrix({l.name, l.mask.rows, l.mask.cols,
                  static_cast<double>(l.mask.count()) / static_cast<double>(l.mask.pruned.size()), l.seconds});
    add_mask_features(w, l);
  }
  w.add_perplexity({ctx.eval_name, PplKind::kPruned, std::nullopt, ev.ppl, ev.predicted_tokens, ev.seconds});
  w.set_timings({.total = since(t0), .forward = pr.timings.forward, .stats = pr.timings.stats,
                 .select = pr.timings.select, .eval = ev.seconds});
  run.run_id = w.run_id();
  w.commit();
  run.ppl = ev.ppl;
  ++ctx.computed;
  ctx.note(fmt::format("{}: perplexity {:.4f} (pruning {:.1f} s, evaluation {:.1f} s)", what, ev.ppl,
                       pr.timings.total, ev.seconds));
  return run;
}

void compare_step(Context& ctx, const PruneRun& a, const PruneRun& b) {
  RunInfo info = ctx.run_info(RunKind::kCompare);
  info.method = fmt::format("{}-vs-{}", prune_method_name(a.method), prune_method_name(b.method));
  info.target = a.target;
  info.options = fmt::format("runs={},{}", a.run_id, b.run_id);
  const std::string what = fmt::format("compare {} {}", info.method, a.target.label());
  if (const auto id = ctx.store.find_run(info)) {
    ++ctx.reused;
    ctx.note(fmt::format("{}: from run {}", what, *id));
    return;
  }
  const auto t0 = Clock::now();
  const MaskSet sa = MaskSet::open(a.mask_file, ctx.opt.model);
  const MaskSet sb = MaskSet::open(b.mask_file, ctx.opt.model);
  const MaskSetComparison cmp = compare_mask_sets(sa, sb);

  RunWriter w = ctx.store.begin_run(info);
  std::vector<ComparisonRow> rows;
  for (const MatrixComparison& mc : cmp.matrices) {
    ComparisonRow r;
    r.run_a = a.run_id;
    r.run_b = b.run_id;
    r.hf_name = mc.name;
    r.jaccard = mc.counts.jaccard();
    r.hamming = mc.counts.hamming();
    if (mc.cosine && std::isfinite(*mc.cosine)) r.cosine = *mc.cosine;
    r.sparsity_a = mc.counts.sparsity_a();
    r.sparsity_b = mc.counts.sparsity_b();
    rows.push_back(r);
    w.add_feature_metrics({mc.name, FeatureAxis::kRow, a.run_id, b.run_id}, compared_features(mc.per_row, mc.cols));
    w.add_feature_metrics({mc.name, FeatureAxis::kCol, a.run_id, b.run_id}, compared_features(mc.per_col, mc.rows));
  }
  w.add_comparisons(rows);
  w.set_timings({.total = since(t0)});
  w.commit();
  ++ctx.computed;
  ctx.note(fmt::format("{}: mean Jaccard of kept weights {:.4f}, Hamming {:.4f}", what, cmp.overall.jaccard.mean,
                       cmp.overall.hamming.mean));
}

}  // namespace sparsa::study
