// The study's dense evaluation, pruning runs and method-vs-method mask comparisons.
#include <chrono>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/mask_compare.h"
#include "sparsa/runs.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

namespace fs = std::filesystem;
std::string ppl_query(int64_t run_id, std::string_view kind) {
  return fmt::format("SELECT ppl FROM perplexities WHERE run_id = {} AND kind = '{}'", run_id, kind);
}

// Appends what the run is scored on besides its perplexity (the tasks), when anything.
void add_task_identity(const Context& ctx, RunInfo& info) {
  const std::string tasks = task_identity(ctx);
  if (!tasks.empty()) info.options += (info.options.empty() ? "" : " ") + tasks;
}

}  // namespace

double dense_step(Context& ctx) {
  RunInfo info = ctx.run_info(RunKind::kDense);
  add_task_identity(ctx, info);
  if (const auto id = ctx.store.find_run(info)) {
    if (const auto ppl = ctx.query_number(ppl_query(*id, "dense"))) {
      ++ctx.reused;
      ctx.dense_ppl = *ppl;
      ctx.dense_run = *id;
      ctx.note(fmt::format("dense: perplexity {:.4f} (from run {})", *ppl, *id));
      return *ppl;
    }
  }
  const auto t0 = Clock::now();
  const PerplexityResult r = perplexity(ctx.dense, ctx.eval, ctx.opt.device);
  RunWriter w = ctx.store.begin_run(info);
  w.add_perplexity({ctx.eval_name, PplKind::kDense, std::nullopt, r.ppl, r.predicted_tokens, r.seconds});
  score_tasks(ctx, ctx.dense, w, "dense");
  w.set_timings({.total = seconds_since(t0), .eval = r.seconds});
  ctx.dense_run = w.run_id();
  w.commit();
  ++ctx.computed;
  ctx.dense_ppl = r.ppl;
  ctx.note(fmt::format("dense: perplexity {:.4f} ({:.1f} s)", r.ppl, r.seconds));
  return r.ppl;
}

PruneRun prune_step(Context& ctx, PruneMethod method, const SparsityTarget& target) {
  RunInfo info = prune_run_info(ctx.run_info(RunKind::kPrune), method, target, ctx.opt.blocksize, ctx.opt.percdamp);
  info.options += (info.options.empty() ? "" : " ") + ctx.eval_identity();  // the run holds a perplexity
  add_task_identity(ctx, info);
  PruneRun run{method, target, 0, ctx.masks_dir / mask_file_name(method, target), 0};
  info.mask_file = fs::absolute(run.mask_file).lexically_normal();
  const std::string what = fmt::format("{} {}", info.method, target.label());
  if (const auto id = ctx.store.find_run(info); id && path_exists(run.mask_file)) {
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
  const PruneResult pr = prune_model(m, ctx.calib.tokens, po, ctx.opt.device);
  write_mask_file(run.mask_file, pr, method, target);
  const PerplexityResult ev = perplexity(m, ctx.eval, ctx.opt.device);

  RunWriter w = ctx.store.begin_run(info);
  add_prune_rows(w, pr);
  w.add_perplexity({ctx.eval_name, PplKind::kPruned, std::nullopt, ev.ppl, ev.predicted_tokens, ev.seconds});
  score_tasks(ctx, m, w, what);
  w.set_timings({.total = seconds_since(t0), .forward = pr.timings.forward, .stats = pr.timings.stats,
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
  const RunInfo info = compare_run_info(ctx.run_info(RunKind::kCompare), prune_method_name(a.method),
                                       prune_method_name(b.method), a.target, a.run_id, b.run_id);
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
  add_comparison_rows(w, cmp, a.run_id, b.run_id);
  w.set_timings({.total = seconds_since(t0)});
  w.commit();
  ++ctx.computed;
  ctx.note(fmt::format("{}: Jaccard of kept weights {:.4f} pooled, {:.4f} mean over matrices; Hamming {:.4f} mean over "
                       "matrices", what, cmp.overall.counts.jaccard(), cmp.overall.jaccard.mean, cmp.overall.hamming.mean));
}

}  // namespace sparsa::study
