// The study's co-activation analysis: k-means (several k, repeated seeds), separation ratios,
// t-SNE and block coherence of binary feature matrices — pruning masks viewed row by row and the
// activation bitset of one observation point — with their figures.
#include <algorithm>
#include <chrono>
#include <numeric>

#include <fmt/format.h>

#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "sparsa/mask_compare.h"
#include "sparsa/runs.h"
#include "sparsa/study_figures.h"
#include "sparsa/viz.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

namespace fs = std::filesystem;
constexpr std::array<int64_t, 4> kCoherenceBlocks{4, 8, 16, 32};  // features per block
constexpr int kTsneClusters = 8;                       // the clustering that colours the t-SNE plot (as sparsa/study_figures.h)

// A binary matrix whose rows are the features analysed.
struct Source {
  std::string label;    // short, for figure titles and file names: "wanda", "activations"
  std::string source;   // the store's key for it (sparsa/runs.h): "wanda/u50", "activations/down_in"
  std::string description;  // what was clustered, in a sentence (cluster_sources.description)
  std::string hf_name;  // the matrix, for masks
  std::string set_meaning, clear_meaning;  // what a set / clear bit means (spy legends)
  BitMatrix bits;       // [features, observations]
  bool activations = false;
};

struct Clustering {
  int k = 0;
  std::vector<int32_t> labels;  // [features] of the best run
  ClusterQuality quality;
  double agreement = 0;         // mean adjusted Rand index between the repeated runs
  int64_t analysis_id = 0;      // its cluster_summary row
};

// The feature with the median number of set bits (lowest index among equals): a typical
// feature to order the others by.
int64_t median_feature(const BitMatrix& m) {
  std::vector<std::pair<int64_t, int64_t>> counts;  // (set bits, feature)
  for (int64_t r = 0; r < m.rows(); ++r) counts.emplace_back(m.row_count(r), r);
  std::sort(counts.begin(), counts.end());
  return counts[counts.size() / 2].second;
}

std::vector<Clustering> cluster_source(RunWriter& w, const Context& ctx, const Source& s) {
  std::vector<Clustering> out;
  for (int k : ctx.opt.ks) {
    if (k > s.bits.rows()) continue;
    KMeansOptions ko;
    ko.k = k;
    ko.n_init = kKMeansInits;
    ko.seed = ctx.opt.seed;
    const KMeansRuns runs = kmeans_repeated(s.bits, ko, ctx.opt.kmeans_runs);
    size_t best = 0;
    for (size_t r = 1; r < runs.runs.size(); ++r)
      if (runs.runs[r].objective < runs.runs[best].objective) best = r;
    Clustering c{k, runs.runs[best].labels, runs.quality[best], runs.agreement.mean, 0};
    ClusterSummary sum;
    sum.source = s.source;
    sum.hf_name = s.hf_name;
    sum.k = k;
    sum.seed = runs.runs[best].seed;
    sum.objective = runs.runs[best].objective;
    sum.within = c.quality.within;
    sum.between = c.quality.between;
    sum.separation_ratio = c.quality.separation;
    sum.ari = c.agreement;
    c.analysis_id = w.add_clustering(sum, c.labels);
    ctx.note(fmt::format("clusters of {}: k = {}, separation ratio {:.3f}, agreement between {} runs (ARI) {:.3f}",
                         s.label, k, c.quality.separation, ctx.opt.kmeans_runs, c.agreement));
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<CoherenceRow> coherence_rows(const Source& s, const Clustering& c) {
  std::vector<CoherenceRow> rows;
  const std::vector<int64_t> natural = natural_order(s.bits.rows());
  const std::vector<int64_t> clustered = cluster_order(c.labels);
  for (int64_t b : kCoherenceBlocks) {
    rows.push_back({s.source, CoherenceOrdering::kNatural, std::nullopt, b, block_coherence(s.bits, natural, b)});
    rows.push_back({s.source, CoherenceOrdering::kCluster, c.analysis_id, b, block_coherence(s.bits, clustered, b)});
  }
  return rows;
}

std::vector<TsnePoint> tsne_points(const BitMatrix& bits, const StudyOptions& opt) {
  TsneOptions o;
  o.seed = opt.seed;
  o.iterations = opt.tsne_iterations;
  const std::vector<double> xy = tsne_2d(bits, o);  // [rows, 2]
  std::vector<TsnePoint> pts(static_cast<size_t>(bits.rows()));
  for (size_t i = 0; i < pts.size(); ++i) pts[i] = {static_cast<int64_t>(i), xy[2 * i], xy[2 * i + 1]};
  return pts;
}

// ---- figures ----

viz::SpyOptions spy_options(const Source& s, std::string title) {
  viz::SpyOptions o;
  o.frame.title = std::move(title);
  o.frame.x_label = s.activations ? "token" : "input feature (column)";
  o.frame.y_label = s.activations ? "feature" : "output feature (row)";
  o.set_label = s.set_meaning;
  o.clear_label = s.clear_meaning;
  return o;
}

// The seed's figures: the neighbourhood of the source's first reference feature (for the activation
// bitset, the first reference of its block's neighbour_clusters rows), rows by Hamming distance to
// it, then grouped by each k.
void draw_source_figures(const Context& ctx, const Source& s) {
  const fs::path& dir = ctx.figures_dir;
  ctx.save_figure(viz::spy_plot(s.bits, spy_options(s, s.description)), dir / fmt::format("spy_{}.png", s.label));
  const std::vector<int64_t> refs = reference_features(s.bits, 1, ctx.opt.seed);
  if (refs.empty()) return;
  const NeighbourhoodOptions o = neighbourhood_options(ctx.opt, s.bits.rows());
  const std::vector<NeighbourhoodClustering> near =
      o.ks.empty() ? std::vector<NeighbourhoodClustering>{} : neighbourhood_clusterings(s.bits, refs, o);
  const std::vector<int64_t> members = neighbourhood(s.bits, refs[0], o.size);
  const BitMatrix group = select_rows(s.bits, members);
  const std::string what = fmt::format("the {} features nearest to feature {}", group.rows(), refs[0]);
  ctx.save_figure(viz::gradient_spy_plot(group, natural_order(group.rows()), 0,
                                         spy_options(s, fmt::format("{}: {}, by Hamming distance", s.label, what))),
                  dir / fmt::format("gradient_spy_{}.png", s.label));
  for (const NeighbourhoodClustering& c : near) {
    const std::vector<int> labels(c.labels.begin(), c.labels.end());
    ctx.save_figure(viz::clustered_spy_plot(group, labels,
                                            spy_options(s, fmt::format("{}: {}, k-means k = {} (separation ratio {:.2f})",
                                                                       s.label, what, c.k, c.quality.separation))),
                    dir / fmt::format("clusters_{}_k{}.png", s.label, c.k));
  }
}

void draw_comparison_figures(const Context& ctx, const std::vector<Source>& sources,
                             const std::vector<std::vector<Clustering>>& clusters) {
  std::vector<viz::Series> ratio;
  std::vector<viz::BarSeries> sizes;
  std::vector<std::string> size_categories;
  for (size_t i = 0; i < sources.size(); ++i) {
    viz::Series r{sources[i].label, {}, {}};
    for (const Clustering& c : clusters[i]) {
      r.x.push_back(c.k);
      r.y.push_back(c.quality.separation);
    }
    if (!r.x.empty()) ratio.push_back(r);
    if (sources[i].activations || clusters[i].empty()) continue;
    std::vector<int64_t> sz = clusters[i].back().quality.sizes;
    std::sort(sz.rbegin(), sz.rend());
    sizes.push_back({sources[i].label, std::vector<double>(sz.begin(), sz.end())});
    size_categories.resize(std::max(size_categories.size(), sz.size()));
  }
  if (!ratio.empty()) {
    viz::LineChartOptions o;
    o.frame.title = fmt::format("Separation ratio (between / within cluster distance), block {}", ctx.analysis_layer);
    o.frame.x_label = "k (clusters)";
    o.frame.y_label = "separation ratio";
    ctx.save_figure(viz::line_chart(ratio, o), ctx.figures_dir / "separation_ratio.png");
  }
  if (!sizes.empty()) {
    for (size_t i = 0; i < size_categories.size(); ++i) size_categories[i] = fmt::format("{}", i + 1);
    for (auto& s : sizes) s.values.resize(size_categories.size(), 0.0);
    viz::BarChartOptions o;
    o.frame.title = fmt::format("Cluster sizes, k = {} (largest first)", clusters.front().back().k);
    o.frame.x_label = "cluster rank";
    o.frame.y_label = "features";
    ctx.save_figure(viz::bar_chart(size_categories, sizes, o), ctx.figures_dir / "cluster_sizes.png");
  }
  // Hamming distances of every mask row to the median feature of its own mask.
  std::vector<viz::BarSeries> hist;
  int64_t cols = 0;
  for (const Source& s : sources)
    if (!s.activations) cols = std::max(cols, s.bits.cols());
  if (cols == 0) return;
  constexpr int64_t kBins = 40;
  std::vector<double> edges;
  for (int64_t i = 0; i <= kBins; ++i) edges.push_back(static_cast<double>(cols) * static_cast<double>(i) / kBins);
  for (const Source& s : sources) {
    if (s.activations) continue;
    std::vector<double> counts(kBins, 0.0);
    for (int32_t d : hamming_from(s.bits, median_feature(s.bits)))
      counts[static_cast<size_t>(std::min<int64_t>(kBins - 1, d * kBins / cols))] += 1;
    hist.push_back({s.label, counts});
  }
  viz::HistogramOptions o;
  o.frame.title = "Hamming distance of each mask row to the row of median sparsity";
  o.frame.x_label = "Hamming distance (positions)";
  o.frame.y_label = "features";
  ctx.save_figure(viz::histogram(edges, hist, o), ctx.figures_dir / "hamming_hist.png");
}

// The t-SNE figure (sparsa/study_figures.h), or, when the embedding is collapsed, a warning
// and no figure (a stale one is removed; REPORT.md says why it is missing).
void draw_tsne(const Context& ctx, const Source& s, const std::vector<TsnePoint>& pts, const Clustering& c) {
  TsneFigure t{s.label, c.k, {}, {}, std::vector<int>(c.labels.begin(), c.labels.end())};
  std::vector<double> xy;
  for (const auto& p : pts) {
    t.x.push_back(p.x);
    t.y.push_back(p.y);
    xy.insert(xy.end(), {p.x, p.y});
  }
  const fs::path png = ctx.figures_dir / fmt::format("tsne_{}.png", s.label);
  if (tsne_collapsed(xy)) {
    ctx.note(fmt::format("warning: the t-SNE embedding of {} is collapsed; its figure is skipped", s.label));
    ctx.remove_figure(png);
    return;
  }
  ctx.save_figure(tsne_figure(t), png);
}

// The masks of the analysis layer's up projection (OPT: fc1; rows = its output features) for the Wanda
// and SparseGPT runs at the first unstructured target (else the first target).
std::vector<Source> mask_sources(const Context& ctx, const std::vector<PruneRun>& runs) {
  const PruneRun* first = nullptr;
  for (const auto& r : runs)
    if (!first || (!r.target.is_nm() && first->target.is_nm())) first = &r;
  std::vector<Source> out;
  if (!first) return out;
  const std::string name = hf_linear_name(ctx.dense.config.arch, ctx.analysis_layer, LinearRole::kUp);
  for (const auto& r : runs) {
    if (r.method == PruneMethod::kMagnitude || r.target.label() != first->target.label()) continue;
    const MaskSet set = MaskSet::open(r.mask_file, ctx.opt.model);
    const MaskInfo* info = set.find(name);
    if (!info) runtime_failure("{}: no mask for {}", r.mask_file.string(), name);
    Source s;
    s.label = std::string(prune_method_name(r.method));
    s.source = mask_source_key(r.method, r.target);
    s.description = fmt::format("{} {} {} rows", s.label, r.target.label(), name);
    s.hf_name = name;
    s.set_meaning = "pruned";
    s.clear_meaning = "kept";
    s.bits = set.load_pruned(*info);
    out.push_back(std::move(s));
  }
  return out;
}

Source activation_source(const Context& ctx, const ActivationThresholds& t) {
  const TensorI32 windows = bitset_windows(ctx);
  const float threshold = t.t[static_cast<size_t>(ctx.analysis_layer)][static_cast<size_t>(ObsPoint::kDownIn)];
  Source s;
  s.label = "activations";
  s.source = activation_source_key(ObsPoint::kDownIn);
  s.description =
      activation_source_name(ctx.analysis_layer, threshold, t.sparsity, static_cast<int64_t>(windows.numel()));
  s.set_meaning = "active";
  s.clear_meaning = "zero";
  s.activations = true;
  s.bits = std::move(capture_activation_bits(ctx.dense, windows, {{ctx.analysis_layer, ObsPoint::kDownIn, threshold}}, {}, *ctx.runner)[0]);
  return s;
}

std::string analysis_options(const StudyOptions& o, int64_t layer) {
  std::string ks;
  for (int k : o.ks) ks += fmt::format("{}{}", ks.empty() ? "" : ",", k);
  return fmt::format("layer={} ks={} runs={} inits={} seed={} bitset_windows={} bitset_sparsity={:g} tsne_iterations={}",
                     layer, ks, o.kmeans_runs, kKMeansInits, o.seed, o.act_bitset_windows, o.act_bitset_sparsity,
                     o.tsne_iterations);
}

}  // namespace

TensorI32 bitset_windows(const Context& ctx) {
  const int64_t n = std::min(ctx.opt.act_bitset_windows, ctx.calib.tokens.dim(0));
  const int64_t seqlen = ctx.calib.tokens.dim(1);
  TensorI32 windows({n, seqlen});
  std::copy_n(ctx.calib.tokens.data.begin(), n * seqlen, windows.data.begin());
  return windows;
}

std::string activation_source_name(int64_t layer, float threshold, double sparsity, int64_t tokens) {
  return fmt::format("activations of block {} at down_in, active above {:.4g} ({:g} % sparsity), {} tokens", layer,
                     threshold, 100 * sparsity, tokens);
}

NeighbourhoodOptions neighbourhood_options(const StudyOptions& opt, int64_t features) {
  NeighbourhoodOptions o;
  o.size = std::min(kNeighbourhoodSize, features);
  o.ks.clear();
  for (int k : opt.ks)
    if (k <= o.size) o.ks.push_back(k);
  o.kmeans.n_init = kKMeansInits;
  o.kmeans.seed = opt.seed;
  return o;
}

void coactivation_step(Context& ctx, const std::vector<PruneRun>& runs, const ActivationThresholds& thresholds) {
  RunInfo info = ctx.run_info(RunKind::kAnalysis);
  info.method = "coactivation";
  info.options = analysis_options(ctx.opt, ctx.analysis_layer);
  for (const auto& r : runs) info.options += analysis_mask_run_option(r.mask_file, r.run_id);
  const fs::path marker = ctx.figures_dir / "separation_ratio.png";
  if (const auto id = ctx.store.find_run(info); id && (!ctx.opt.figures || ctx.figure_present(marker))) {
    ++ctx.reused;
    ctx.note(fmt::format("co-activation analysis: from run {}", *id));
    return;
  }
  const auto t0 = Clock::now();
  std::vector<Source> sources = mask_sources(ctx, runs);
  sources.push_back(activation_source(ctx, thresholds));

  RunWriter w = ctx.store.begin_run(info);
  std::vector<std::vector<Clustering>> clusters;
  for (const Source& s : sources) {
    w.add_cluster_source({s.source, ctx.analysis_layer, s.hf_name, s.description});
    clusters.push_back(cluster_source(w, ctx, s));
    const std::vector<Clustering>& cs = clusters.back();
    if (s.activations && !cs.empty()) w.add_coherence(coherence_rows(s, cs.back()));
    const auto shown = std::find_if(cs.begin(), cs.end(), [](const Clustering& c) { return c.k == kTsneClusters; });
    const bool embed = s.activations || &s == &sources.front();
    if (embed && s.bits.rows() >= 2) {
      const std::vector<TsnePoint> pts = tsne_points(s.bits, ctx.opt);
      w.add_tsne(s.source, pts);
      if (ctx.opt.figures && shown != cs.end()) draw_tsne(ctx, s, pts, *shown);
    }
    if (ctx.opt.figures) draw_source_figures(ctx, s);
  }
  if (ctx.opt.figures) draw_comparison_figures(ctx, sources, clusters);
  w.set_timings({.total = seconds_since(t0)});
  w.commit();
  ++ctx.computed;
  ctx.note(fmt::format("co-activation analysis: {} sources in {:.1f} s", sources.size(), seconds_since(t0)));
}

}  // namespace sparsa::study
