// The study's summary figures: perplexity per method and structure, perplexity against
// sparsity, perplexity against activation sparsity, and the layer × component Jaccard heatmap.
#include <algorithm>
#include <map>
#include <limits>

#include <fmt/format.h>

#include "sparsa/viz.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

void ppl_by_structure(const Context& ctx, const std::vector<PruneRun>& runs, double dense) {
  std::vector<std::string> structures;
  for (const auto& r : runs)
    if (std::find(structures.begin(), structures.end(), r.target.label()) == structures.end())
      structures.push_back(r.target.label());
  std::vector<viz::BarSeries> series;
  for (PruneMethod m : ctx.opt.methods) {
    viz::BarSeries s{std::string(prune_method_name(m)), std::vector<double>(structures.size(), 0.0)};
    for (const auto& r : runs)
      if (r.method == m)
        s.values[static_cast<size_t>(std::find(structures.begin(), structures.end(), r.target.label()) -
                                     structures.begin())] = r.ppl;
    series.push_back(std::move(s));
  }
  viz::BarChartOptions o;
  o.frame.title = fmt::format("Perplexity on {} after pruning (dense {:.2f})", ctx.eval_name, dense);
  o.frame.x_label = "structure";
  o.frame.y_label = "perplexity";
  ctx.save_figure(viz::bar_chart(structures, series, o), ctx.figures_dir / "ppl_by_structure.png");
}

// Perplexity against the unstructured sparsity, one line per method (needs >= 2 sparsities).
void ppl_vs_sparsity(const Context& ctx, const std::vector<PruneRun>& runs, double dense) {
  std::vector<viz::Series> series;
  for (PruneMethod m : ctx.opt.methods) {
    std::vector<std::pair<double, double>> pts{{0.0, dense}};
    for (const auto& r : runs)
      if (r.method == m && !r.target.is_nm()) pts.emplace_back(r.target.ratio, r.ppl);
    std::sort(pts.begin(), pts.end());
    viz::Series s{std::string(prune_method_name(m)), {}, {}};
    for (auto [x, y] : pts) {
      s.x.push_back(100 * x);
      s.y.push_back(y);
    }
    if (s.x.size() >= 3) series.push_back(std::move(s));
  }
  if (series.empty()) return;
  viz::LineChartOptions o;
  o.frame.title = fmt::format("Perplexity on {} against unstructured sparsity", ctx.eval_name);
  o.frame.x_label = "weights pruned (%)";
  o.frame.y_label = "perplexity (log scale)";
  o.log_y = true;
  ctx.save_figure(viz::line_chart(series, o), ctx.figures_dir / "ppl_vs_sparsity.png");
}

void ppl_vs_act_sparsity(const Context& ctx, double dense) {
  const auto j = ctx.store.query_json(fmt::format(
      "SELECT act_sparsity, ppl FROM perplexities WHERE kind = 'act-sparsified' AND run_id = {} ORDER BY act_sparsity",
      ctx.acts_run));
  viz::Series s{"activation sparsity (TEAL thresholds)", {0.0}, {dense}};
  for (const auto& row : j["rows"]) {
    s.x.push_back(100 * row[0].get<double>());
    s.y.push_back(row[1].get<double>());
  }
  if (s.x.size() < 2) return;
  viz::LineChartOptions o;
  o.frame.title = fmt::format("Perplexity on {} with small activations zeroed", ctx.eval_name);
  o.frame.x_label = "activations zeroed at every linear's input (%)";
  o.frame.y_label = "perplexity (log scale)";
  o.log_y = true;
  ctx.save_figure(viz::line_chart({s}, o), ctx.figures_dir / "ppl_vs_act_sparsity.png");
}

// Jaccard of the kept weights, Wanda vs SparseGPT, for every layer × component.
void jaccard_heatmap(const Context& ctx, const std::vector<PruneRun>& runs) {
  const PruneRun *wanda = nullptr, *sgpt = nullptr;
  for (const auto& r : runs) {
    if (r.target.is_nm()) continue;
    if (r.method == PruneMethod::kWanda && !wanda) wanda = &r;
    if (r.method == PruneMethod::kSparseGPT && !sgpt && (!wanda || r.target.label() == wanda->target.label())) sgpt = &r;
  }
  if (!wanda || !sgpt || wanda->target.label() != sgpt->target.label()) return;
  const auto j = ctx.store.query_json(fmt::format(
      "SELECT layer, component, jaccard FROM comparisons WHERE run_a = {} AND run_b = {} ORDER BY layer, hf_name",
      wanda->run_id, sgpt->run_id));
  std::map<int64_t, std::map<std::string, double>> cells;
  for (const auto& row : j["rows"]) cells[row[0].get<int64_t>()][row[1].get<std::string>()] = row[2].get<double>();
  std::vector<std::string> components;  // in the architecture's role order (q, k, v, o, gate, up, down)
  const ArchInfo& arch = arch_info(ctx.dense.config.arch);
  for (LinearRole r : arch.roles) components.emplace_back(arch.linear_module[static_cast<size_t>(r)]);
  if (cells.empty()) return;
  std::vector<double> values;
  std::vector<std::string> layers;
  for (const auto& [layer, row] : cells) {
    layers.push_back(fmt::format("layer {}", layer));
    for (const auto& c : components) values.push_back(row.count(c) ? row.at(c) : std::numeric_limits<double>::quiet_NaN());
  }
  viz::HeatmapOptions o;
  o.frame.title = fmt::format("Jaccard of the kept weights, Wanda vs SparseGPT ({})", wanda->target.label());
  o.frame.x_label = "component";
  o.frame.y_label = "block";
  o.value_label = "Jaccard";
  o.decimals = 3;
  ctx.save_figure(viz::heatmap(values, layers, components, o), ctx.figures_dir / "jaccard_wanda_sparsegpt.png");
}

}  // namespace

void summary_figures(Context& ctx, const std::vector<PruneRun>& runs) {
  if (!runs.empty()) {
    ppl_by_structure(ctx, runs, ctx.dense_ppl);
    ppl_vs_sparsity(ctx, runs, ctx.dense_ppl);
  }
  if (ctx.acts_run > 0) ppl_vs_act_sparsity(ctx, ctx.dense_ppl);
  jaccard_heatmap(ctx, runs);
}

}  // namespace sparsa::study
