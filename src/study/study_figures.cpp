// The study's figures drawn from the database (sparsa/study_figures.h): perplexity per method
// and structure (with the dense line), perplexity against weight and activation sparsity, the
// layer × component Jaccard heatmap of two methods, the activation histograms with their
// thresholds, and the t-SNE plots. The study draws them through the same functions.
#include "sparsa/study_figures.h"

#include <algorithm>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "store/database.h"
#include "study_context.h"

namespace sparsa {
namespace {

using json = nlohmann::json;

constexpr int kTsneClusters = 8;  // the clustering that colours a t-SNE plot (else the largest k)

json rows(const Store& store, const std::string& sql) { return store.query_json(sql, {10000000, 120.0})["rows"]; }
double num(const json& v) { return v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN(); }
std::string str(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

viz::Frame frame(const FigureStyle& s, std::string title, std::string x_label, std::string y_label) {
  return {s.width, s.height, s.title.value_or(std::move(title)), s.x_label.value_or(std::move(x_label)),
          s.y_label.value_or(std::move(y_label))};
}

std::string id_list(const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) out += fmt::format("{}{}", out.empty() ? "" : ", ", id);
  return out;
}

// The run of `kind` given in `chosen`, else the newest complete one; nullopt when there is none.
std::optional<int64_t> pick_run(const Store& store, const std::optional<int64_t>& chosen, std::string_view kind) {
  if (chosen) return chosen;
  const json r = rows(store, fmt::format("SELECT max(run_id) FROM runs WHERE kind = '{}' AND status = 'complete'", kind));
  if (r.empty() || !r[0][0].is_number()) return std::nullopt;
  return r[0][0].get<int64_t>();
}

struct Dense {
  double ppl = 0;
  std::string dataset;
};

Dense dense_ppl(const Store& store, const FigureRuns& runs) {
  const std::string which = runs.dense_run ? fmt::format("AND r.run_id = {}", *runs.dense_run) : "";
  const json r = rows(store, fmt::format("SELECT p.ppl, p.dataset FROM perplexities p JOIN runs r USING (run_id) "
                                         "WHERE r.kind = 'dense' AND p.kind = 'dense' {} ORDER BY r.run_id DESC LIMIT 1",
                                         which));
  if (r.empty()) bad_input("{}: no dense perplexity (a `dense` run): nothing to compare the pruned models with",
                           store.path().string());
  return {num(r[0][0]), str(r[0][1])};
}

struct Pruned {
  std::string method, structure;
  double sparsity = 0;
  bool nm = false;
  double ppl = 0;
};

// The evaluated prune runs: runs.prune_runs, or the newest per (method, structure); ordered
// unstructured first by sparsity, then N:M.
std::vector<Pruned> pruned_runs(const Store& store, const FigureRuns& runs) {
  const std::string which =
      runs.prune_runs.empty()
          ? "(SELECT max(run_id) FROM runs JOIN perplexities USING (run_id) WHERE runs.kind = 'prune' AND "
            "perplexities.kind = 'pruned' GROUP BY method, structure)"
          : "(" + id_list(runs.prune_runs) + ")";
  const json r = rows(store, "SELECT r.method, r.structure, r.sparsity, r.nm_m IS NOT NULL, p.ppl FROM runs r JOIN "
                             "perplexities p USING (run_id) WHERE r.kind = 'prune' AND p.kind = 'pruned' AND r.run_id IN " +
                                 which + " ORDER BY r.nm_m NULLS FIRST, r.sparsity, r.structure, r.method");
  std::vector<Pruned> out;
  for (const auto& row : r) out.push_back({str(row[0]), str(row[1]), num(row[2]), row[3].get<bool>(), num(row[4])});
  return out;
}

// Methods in the order of PruneMethod, then any other name alphabetically.
std::vector<std::string> methods_of(const std::vector<Pruned>& runs) {
  std::vector<std::string> out;
  for (PruneMethod m : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT})
    for (const Pruned& p : runs)
      if (p.method == prune_method_name(m)) {
        out.emplace_back(p.method);
        break;
      }
  std::vector<std::string> others;
  for (const Pruned& p : runs)
    if (std::find(out.begin(), out.end(), p.method) == out.end() &&
        std::find(others.begin(), others.end(), p.method) == others.end())
      others.push_back(p.method);
  std::sort(others.begin(), others.end());
  out.insert(out.end(), others.begin(), others.end());
  return out;
}

viz::Image ppl_by_structure(const Store& store, const FigureStyle& style, const FigureRuns& runs) {
  const Dense dense = dense_ppl(store, runs);
  const std::vector<Pruned> pruned = pruned_runs(store, runs);
  if (pruned.empty()) bad_input("{}: no evaluated prune run: nothing to draw", store.path().string());
  std::vector<std::string> structures;
  for (const Pruned& p : pruned)
    if (std::find(structures.begin(), structures.end(), p.structure) == structures.end()) structures.push_back(p.structure);
  std::vector<viz::BarSeries> series;
  for (const std::string& m : methods_of(pruned)) {
    viz::BarSeries s{m, std::vector<double>(structures.size(), 0.0)};
    for (const Pruned& p : pruned)
      if (p.method == m)
        s.values[static_cast<size_t>(std::find(structures.begin(), structures.end(), p.structure) - structures.begin())] = p.ppl;
    series.push_back(std::move(s));
  }
  viz::BarChartOptions o;
  o.frame = frame(style, fmt::format("Perplexity on {} after pruning", dense.dataset), "structure", "perplexity");
  o.references.push_back({dense.ppl, fmt::format("dense {:.2f}", dense.ppl)});
  return viz::bar_chart(structures, series, o);
}

// Perplexity against the unstructured sparsity, one line per method with >= 2 sparsities.
std::vector<viz::Series> ppl_sparsity_series(const Store& store, const FigureRuns& runs, double dense) {
  const std::vector<Pruned> pruned = pruned_runs(store, runs);
  std::vector<viz::Series> series;
  for (const std::string& m : methods_of(pruned)) {
    viz::Series s{m, {0.0}, {dense}};
    for (const Pruned& p : pruned)
      if (p.method == m && !p.nm) {
        s.x.push_back(100 * p.sparsity);
        s.y.push_back(p.ppl);
      }
    if (s.x.size() >= 3) series.push_back(std::move(s));
  }
  return series;
}

viz::Image ppl_vs_sparsity(const Store& store, const FigureStyle& style, const FigureRuns& runs) {
  const Dense dense = dense_ppl(store, runs);
  const std::vector<viz::Series> series = ppl_sparsity_series(store, runs, dense.ppl);
  if (series.empty()) bad_input("{}: no method was evaluated at two or more unstructured sparsities", store.path().string());
  viz::LineChartOptions o;
  o.frame = frame(style, fmt::format("Perplexity on {} against unstructured sparsity", dense.dataset),
                  "weights pruned (%)", "perplexity (log scale)");
  o.log_y = true;
  return viz::line_chart(series, o);
}

json act_ppl_rows(const Store& store, const FigureRuns& runs) {
  const auto acts = pick_run(store, runs.acts_run, "acts");
  if (!acts) return json::array();
  return rows(store, fmt::format("SELECT act_sparsity, ppl FROM perplexities WHERE kind = 'act-sparsified' AND "
                                 "run_id = {} ORDER BY act_sparsity", *acts));
}

viz::Image ppl_vs_act_sparsity(const Store& store, const FigureStyle& style, const FigureRuns& runs) {
  const Dense dense = dense_ppl(store, runs);
  viz::Series s{"activation sparsity (TEAL thresholds)", {0.0}, {dense.ppl}};
  for (const auto& row : act_ppl_rows(store, runs)) {
    s.x.push_back(100 * num(row[0]));
    s.y.push_back(num(row[1]));
  }
  if (s.x.size() < 2) bad_input("{}: no activation-sparsified perplexity (an `acts` run)", store.path().string());
  viz::LineChartOptions o;
  o.frame = frame(style, fmt::format("Perplexity on {} with small activations zeroed", dense.dataset),
                  "activations zeroed at every linear's input (%)", "perplexity (log scale)");
  o.log_y = true;
  return viz::line_chart({s}, o);
}

// ---- Jaccard heatmaps ----

struct JaccardPair {
  std::string a, b;  // methods
  int64_t compare_run = 0;
  std::string structure, architecture;
};

// Compared pairs of methods at an unstructured target: the newest compare run per pair at its
// lowest sparsity (among runs.prune_runs when given).
std::vector<JaccardPair> jaccard_pairs(const Store& store, const FigureRuns& runs) {
  const std::string among = runs.prune_runs.empty() ? ""
                                                    : fmt::format("AND c.run_a IN ({0}) AND c.run_b IN ({0})",
                                                                  id_list(runs.prune_runs));
  const json r = rows(store, "SELECT ra.method, rb.method, max(c.run_id), ra.structure, any_value(ra.architecture) "
                             "FROM comparisons c JOIN runs ra ON ra.run_id = c.run_a JOIN runs rb ON rb.run_id = c.run_b "
                             "WHERE ra.nm_m IS NULL AND ra.method IS NOT NULL AND rb.method IS NOT NULL " + among +
                             " GROUP BY ra.method, rb.method, ra.structure, ra.sparsity ORDER BY ra.method, rb.method, "
                             "ra.sparsity");
  std::vector<JaccardPair> out;
  for (const auto& row : r) {
    JaccardPair p{str(row[0]), str(row[1]), static_cast<int64_t>(num(row[2])), str(row[3]), str(row[4])};
    const bool seen = std::any_of(out.begin(), out.end(), [&](const JaccardPair& q) { return q.a == p.a && q.b == p.b; });
    if (!seen && p.a != p.b) out.push_back(std::move(p));
  }
  return out;
}

// The position of a component in its architecture's role order (unknown ones after, by name).
size_t component_rank(const std::string& architecture, const std::string& component) {
  for (Arch a : {Arch::kLlama, Arch::kOpt, Arch::kQwen3, Arch::kGemma3}) {
    const ArchInfo& info = arch_info(a);
    if (info.name != architecture) continue;
    for (size_t r = 0; r < info.linear_module.size(); ++r)
      if (!info.linear_module[r].empty() && info.linear_module[r] == component) return r;
  }
  return kNumLinearRoles;
}

viz::Image jaccard_heatmap(const Store& store, const JaccardPair& pair, const FigureStyle& style) {
  const json r = rows(store, fmt::format("SELECT layer, component, jaccard FROM comparisons WHERE run_id = {} "
                                         "ORDER BY layer, hf_name", pair.compare_run));
  std::map<int64_t, std::map<std::string, double>> cells;
  std::vector<std::string> components;
  for (const auto& row : r) {
    cells[static_cast<int64_t>(num(row[0]))][str(row[1])] = num(row[2]);
    if (std::find(components.begin(), components.end(), str(row[1])) == components.end()) components.push_back(str(row[1]));
  }
  std::stable_sort(components.begin(), components.end(), [&](const std::string& x, const std::string& y) {
    const size_t rx = component_rank(pair.architecture, x), ry = component_rank(pair.architecture, y);
    return rx != ry ? rx < ry : (rx == kNumLinearRoles && x < y);
  });
  std::vector<double> values;
  std::vector<std::string> layers;
  for (const auto& [layer, row] : cells) {
    layers.push_back(fmt::format("layer {}", layer));
    for (const auto& c : components)
      values.push_back(row.count(c) ? row.at(c) : std::numeric_limits<double>::quiet_NaN());
  }
  viz::HeatmapOptions o;
  o.frame = frame(style, fmt::format("Jaccard of the kept weights, {} vs {} ({})", pair.a, pair.b, pair.structure),
                  "component", "block");
  o.value_label = "Jaccard";
  o.decimals = 3;
  return viz::heatmap(values, layers, components, o);
}

// ---- activation histograms ----

struct HistogramKey {
  int64_t acts_run = 0, layer = 0;
  std::string point;
};

std::vector<HistogramKey> histogram_keys(const Store& store, const FigureRuns& runs) {
  const auto acts = pick_run(store, runs.acts_run, "acts");
  if (!acts) return {};
  const json r = rows(store, fmt::format("SELECT DISTINCT layer, point FROM act_histograms WHERE run_id = {} ORDER BY "
                                         "layer, point", *acts));
  std::vector<HistogramKey> out;
  for (const auto& row : r) out.push_back({*acts, static_cast<int64_t>(num(row[0])), str(row[1])});
  return out;
}

viz::Image act_histogram(const Store& store, const HistogramKey& k, const FigureStyle& style) {
  const std::string where = fmt::format("run_id = {} AND layer = {} AND point = {}", k.acts_run, k.layer, store::sql_literal(k.point));
  const json bins = rows(store, "SELECT lo, hi, count FROM act_histograms WHERE " + where + " ORDER BY bin");
  std::vector<double> edges, counts;
  for (const auto& row : bins) {
    if (edges.empty()) edges.push_back(num(row[0]));
    edges.push_back(num(row[1]));
    counts.push_back(num(row[2]));
  }
  std::vector<viz::ActivationThreshold> marks;
  for (const auto& row : rows(store, "SELECT target_sparsity, threshold FROM act_thresholds WHERE " + where +
                                         " ORDER BY target_sparsity"))
    marks.push_back({num(row[0]), num(row[1])});
  viz::HistogramOptions o;
  o.frame = frame(style, fmt::format("Activations at {} of block {}", k.point, k.layer), "activation value",
                  "count (log scale)");
  o.log_y = true;
  o.clipped_tails = true;  // coarse histograms fold the tails into their edge bins (sparsa/runs.h)
  return viz::activation_histogram(edges, counts, marks, o);
}

// ---- t-SNE ----

struct TsneKey {
  int64_t analysis_run = 0;
  std::string source, label;
};

std::vector<TsneKey> tsne_keys(const Store& store, const FigureRuns& runs) {
  const auto run = pick_run(store, runs.analysis_run, "analysis");
  if (!run) return {};
  std::vector<TsneKey> out;
  for (const auto& row : rows(store, fmt::format("SELECT DISTINCT source FROM tsne WHERE run_id = {} ORDER BY 1", *run))) {
    const std::string source = str(row[0]);
    out.push_back({*run, source, source.substr(0, source.find('/'))});  // "wanda/u50" -> "wanda"
  }
  return out;
}

TsneFigure stored_tsne(const Store& store, const TsneKey& key) {
  const std::string source = store::sql_literal(key.source);
  const json k = rows(store, fmt::format("SELECT k FROM cluster_summary WHERE run_id = {} AND source = {} ORDER BY "
                                         "k = {} DESC, k DESC LIMIT 1", key.analysis_run, source, kTsneClusters));
  if (k.empty()) bad_input("{}: t-SNE of '{}' has no clustering to colour it by", store.path().string(), key.source);
  TsneFigure t{key.label, static_cast<int>(num(k[0][0])), {}, {}, {}};
  const json pts = rows(store, fmt::format("SELECT t.x, t.y, c.cluster FROM tsne t JOIN cluster_summary s ON s.run_id = "
                                           "t.run_id AND s.source = t.source AND s.k = {} JOIN clusters c ON c.analysis_id "
                                           "= s.analysis_id AND c.feature = t.feature WHERE t.run_id = {} AND t.source = "
                                           "{} ORDER BY t.feature",
                                           t.k, key.analysis_run, source));
  for (const auto& row : pts) {
    t.x.push_back(num(row[0]));
    t.y.push_back(num(row[1]));
    t.cluster.push_back(static_cast<int>(num(row[2])));
  }
  return t;
}

// ---- the names ----

std::string names_list(const std::vector<FigureName>& names) {
  std::string out;
  for (const FigureName& n : names) out += fmt::format("{}{}", out.empty() ? "" : ", ", n.name);
  return out.empty() ? "none" : out;
}

}  // namespace

std::vector<FigureName> drawable_figures(const Store& store, const FigureRuns& runs) {
  std::vector<FigureName> out;
  const bool dense = !rows(store, "SELECT 1 FROM perplexities WHERE kind = 'dense' LIMIT 1").empty();
  if (dense && !pruned_runs(store, runs).empty())
    out.push_back({"ppl_by_structure", "perplexity per structure and method, with the dense model's"});
  if (dense && !ppl_sparsity_series(store, runs, 1.0).empty())
    out.push_back({"ppl_vs_sparsity", "perplexity against unstructured sparsity"});
  if (dense && !act_ppl_rows(store, runs).empty())
    out.push_back({"ppl_vs_act_sparsity", "perplexity against activation sparsity"});
  for (const JaccardPair& p : jaccard_pairs(store, runs))
    out.push_back({fmt::format("jaccard_{}_{}", p.a, p.b),
                   fmt::format("Jaccard of the kept weights per block and component, {} vs {} ({})", p.a, p.b,
                               p.structure)});
  for (const HistogramKey& k : histogram_keys(store, runs))
    out.push_back({fmt::format("act_hist_layer{}_{}", k.layer, k.point),
                   fmt::format("activations at {} of block {} with the thresholds", k.point, k.layer)});
  for (const TsneKey& k : tsne_keys(store, runs))
    out.push_back({fmt::format("tsne_{}", k.label), fmt::format("t-SNE of {}", k.source)});
  return out;
}

std::vector<FigureName> not_redrawable_figures() {
  return {{"spy_<source>, gradient_spy_<source>, clusters_<source>_k<k>",
           "drawn from the masks and activation bitsets, which the database does not hold (a mask: `sparsa plot spy "
           "--mask FILE --key NAME`)"},
          {"hamming_hist", "drawn from the masks' rows, which the database does not hold"},
          {"separation_ratio, cluster_sizes",
           "drawn by the co-activation step from its clusterings (cluster_summary, the cluster_sizes view hold the "
           "numbers)"}};
}

viz::Image draw_study_figure(const Store& store, const std::string& name, const FigureStyle& style,
                             const FigureRuns& runs) {
  if (name == "ppl_by_structure") return ppl_by_structure(store, style, runs);
  if (name == "ppl_vs_sparsity") return ppl_vs_sparsity(store, style, runs);
  if (name == "ppl_vs_act_sparsity") return ppl_vs_act_sparsity(store, style, runs);
  for (const JaccardPair& p : jaccard_pairs(store, runs))
    if (name == fmt::format("jaccard_{}_{}", p.a, p.b)) return jaccard_heatmap(store, p, style);
  for (const HistogramKey& k : histogram_keys(store, runs))
    if (name == fmt::format("act_hist_layer{}_{}", k.layer, k.point)) return act_histogram(store, k, style);
  for (const TsneKey& k : tsne_keys(store, runs))
    if (name == fmt::format("tsne_{}", k.label)) return tsne_figure(stored_tsne(store, k), style);
  for (const FigureName& n : not_redrawable_figures())
    for (size_t start = 0; start < n.name.size();) {
      const size_t end = std::min(n.name.find(", ", start), n.name.size());
      const std::string prefix = n.name.substr(start, std::min(end, n.name.find('<', start)) - start);
      if (!prefix.empty() && name.rfind(prefix, 0) == 0)
        bad_input("figure '{}' is not drawn from the database: {}", name, n.what);
      start = end + 2;
    }
  bad_input("{}: no figure '{}' in this database; it can draw: {}", store.path().string(), name,
            names_list(drawable_figures(store, runs)));
}

viz::Image tsne_figure(const TsneFigure& t, const FigureStyle& style) {
  std::vector<double> xy;
  for (size_t i = 0; i < t.x.size() && i < t.y.size(); ++i) {
    xy.push_back(t.x[i]);
    xy.push_back(t.y[i]);
  }
  if (tsne_collapsed(xy))
    bad_input("t-SNE of the {} features: the embedding is collapsed (its points barely spread), not worth a figure; "
              "run more iterations", t.label);
  viz::ScatterOptions o;
  o.frame = frame(style, fmt::format("t-SNE of the {} features, coloured by k-means (k = {})", t.label, t.k),
                  "t-SNE 1", "t-SNE 2");
  return viz::cluster_scatter(t.x, t.y, t.cluster, o);
}

namespace study {

void summary_figures(Context& ctx, const std::vector<PruneRun>& runs) {
  FigureRuns chosen;
  chosen.dense_run = ctx.dense_run;
  if (ctx.acts_run > 0) chosen.acts_run = ctx.acts_run;
  for (const PruneRun& r : runs) chosen.prune_runs.push_back(r.run_id);
  if (runs.empty()) chosen.prune_runs.push_back(-1);  // none: draw no pruning figure
  for (const FigureName& f : drawable_figures(ctx.store, chosen)) {
    const bool summary = f.name.rfind("ppl_", 0) == 0 || f.name == "jaccard_wanda_sparsegpt";
    if (summary) ctx.save_figure(draw_study_figure(ctx.store, f.name, {}, chosen), ctx.figures_dir / (f.name + ".png"));
  }
}

void draw_act_histograms(const Context& ctx, int64_t acts_run, const std::vector<ObsPoint>& points) {
  FigureRuns chosen;
  chosen.acts_run = acts_run;
  for (const ObsPoint p : points) {
    const std::string name = fmt::format("act_hist_layer{}_{}", ctx.analysis_layer, obs_point_name(p));
    ctx.save_figure(draw_study_figure(ctx.store, name, {}, chosen), ctx.figures_dir / (name + ".png"));
  }
}

}  // namespace study
}  // namespace sparsa
