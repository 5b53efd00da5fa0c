// The study's answer to "do features co-activate in clusters?" with evidence: for the down_in
// activation bitset of every block, the k-means cluster quality against a permutation null model
// (the same k-means on copies whose features keep their densities but not their co-activation),
// and the seed's procedure: k-means on the 128 Hamming neighbours of several reference features.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "sparsa/coactivation.h"
#include "sparsa/runs.h"
#include "study_context.h"

namespace sparsa::study {
namespace {

std::vector<int64_t> null_model_blocks(const Context& ctx) {
  if (!ctx.opt.null_every_block) return {ctx.analysis_layer};
  std::vector<int64_t> blocks(static_cast<size_t>(ctx.dense.config.num_layers));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int64_t>(i);
  return blocks;
}

std::string null_model_options(const Context& ctx) {
  const StudyOptions& o = ctx.opt;
  std::string ks;
  for (int k : o.ks) ks += fmt::format("{}{}", ks.empty() ? "" : ",", k);
  return fmt::format("blocks={} ks={} shuffles={} runs={} inits={} references={} neighbourhood={} seed={} "
                     "bitset_windows={} bitset_sparsity={:g}",
                     o.null_every_block ? std::string("all") : fmt::format("{}", ctx.analysis_layer), ks,
                     o.null_shuffles, kNullKMeansRuns, kKMeansInits, o.neighbour_references, kNeighbourhoodSize, o.seed,
                     o.act_bitset_windows, o.act_bitset_sparsity);
}

ClusterNullRow null_row(int64_t layer, const std::string& source, int k, const char* metric, const NullComparison& c) {
  return {layer, source, k, metric, c.observed, c.summary.mean, c.summary.stddev, c.summary.min, c.summary.max,
          c.p_value, c.z, static_cast<int64_t>(c.null.size())};
}

// The null model of one block's bitset: k-means at every k that fits on the bitset and on each
// shuffle. [2 metrics * ks]
std::vector<ClusterNullRow> null_rows(const Context& ctx, int64_t layer, const std::string& source, const BitMatrix& bits) {
  ClusterNullOptions o;
  o.ks.clear();
  for (int k : ctx.opt.ks)
    if (k <= bits.rows()) o.ks.push_back(k);
  if (o.ks.empty()) return {};
  o.kmeans.n_init = kKMeansInits;
  o.kmeans.seed = ctx.opt.seed;
  o.runs = kNullKMeansRuns;
  o.shuffles = ctx.opt.null_shuffles;
  o.seed = ctx.opt.seed;
  std::vector<ClusterNullRow> rows;
  for (const ClusterNull& c : cluster_null_model(bits, o)) {
    rows.push_back(null_row(layer, source, c.k, "separation_ratio", c.separation));
    if (kNullKMeansRuns > 1) rows.push_back(null_row(layer, source, c.k, "ari", c.agreement));
  }
  return rows;
}

std::vector<NeighbourClusterRow> neighbour_rows(const Context& ctx, int64_t layer, const std::string& source,
                                                const BitMatrix& bits) {
  const NeighbourhoodOptions o = neighbourhood_options(ctx.opt, bits.rows());
  const std::vector<int64_t> refs = reference_features(bits, ctx.opt.neighbour_references, ctx.opt.seed);
  if (o.ks.empty() || refs.empty()) return {};
  std::vector<NeighbourClusterRow> rows;
  for (const NeighbourhoodClustering& c : neighbourhood_clusterings(bits, refs, o))
    rows.push_back({layer, source, c.reference, c.k, static_cast<int64_t>(c.members.size()), c.quality.separation,
                    c.quality.within, c.quality.between, c.objective});
  return rows;
}

}  // namespace

void null_model_step(Context& ctx, const ActivationThresholds& thresholds) {
  RunInfo info = ctx.run_info(RunKind::kAnalysis);
  info.method = "coactivation-null";
  info.options = null_model_options(ctx);
  if (const auto id = ctx.store.find_run(info)) {
    ++ctx.reused;
    ctx.note(fmt::format("null model and neighbourhoods: from run {}", *id));
    return;
  }
  const auto t0 = Clock::now();
  const std::vector<int64_t> blocks = null_model_blocks(ctx);
  const TensorI32 windows = bitset_windows(ctx);
  std::vector<BitsetRequest> requests;
  for (int64_t b : blocks)
    requests.push_back({b, ObsPoint::kDownIn, thresholds.t[static_cast<size_t>(b)][static_cast<size_t>(ObsPoint::kDownIn)]});
  const std::vector<BitMatrix> bits = capture_activation_bits(ctx.dense, windows, requests, {}, *ctx.runner);
  const double capture_seconds = seconds_since(t0);
  RunWriter w = ctx.store.begin_run(info);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto tb = Clock::now();
    const std::string source = activation_source_key(ObsPoint::kDownIn);
    w.add_cluster_source({source, blocks[i], "",
                          activation_source_name(blocks[i], requests[i].threshold, thresholds.sparsity,
                                                 static_cast<int64_t>(windows.numel()))});
    w.add_cluster_null(null_rows(ctx, blocks[i], source, bits[i]));
    w.add_neighbour_clusters(neighbour_rows(ctx, blocks[i], source, bits[i]));
    ctx.note(fmt::format("null model and neighbourhoods of block {}: {:.1f} s", blocks[i], seconds_since(tb)));
  }
  w.set_timings({.total = seconds_since(t0), .forward = capture_seconds});
  w.commit();
  ++ctx.computed;
  ctx.note(fmt::format("null model and neighbourhoods: {} blocks in {:.1f} s", blocks.size(), seconds_since(t0)));
}

}  // namespace sparsa::study
