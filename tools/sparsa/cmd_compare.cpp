// sparsa compare: how two pruning-mask sets differ (Jaccard of the kept positions, Hamming,
// sparsities, cosine of the pruned weights), per matrix and per feature; or, with --series,
// one method across several mask sets compared pairwise (the ablation tables).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/mask_compare.h"
#include "sparsa/runs.h"

namespace sparsa::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

struct CompareArgs {
  std::vector<std::string> sets, labels;
  std::string features_out, shapes_from, db;
  int64_t layer = -1;
  bool series = false, json = false;
};

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json stat_json(const Stat& s) {
  if (s.count == 0) return nullptr;
  return {{"mean", s.mean}, {"min", s.min}, {"max", s.max}, {"count", s.count}};
}

json features_summary_json(const FeatureMetrics& f) {
  json j = {{"jaccard", stat_json(summarize(f.jaccard))},
            {"hamming", stat_json(summarize(f.hamming))},
            {"sparsity_a", stat_json(summarize(f.sparsity_a))},
            {"sparsity_b", stat_json(summarize(f.sparsity_b))}};
  if (!f.cosine.empty()) j["cosine"] = stat_json(summarize(f.cosine));
  return j;
}

json counts_json(const OverlapCounts& c) {
  return {{"jaccard", c.jaccard()}, {"hamming", c.hamming()}, {"sparsity_a", c.sparsity_a()},
          {"sparsity_b", c.sparsity_b()}, {"positions", c.positions}, {"pruned_a", c.pruned_a},
          {"pruned_b", c.pruned_b}, {"kept_both", c.kept_both}, {"differ", c.differ}};
}

json group_json(const GroupOverlap& g) {
  json j;
  if (g.layer >= 0) j["layer"] = g.layer;
  if (!g.component.empty()) j["component"] = g.component;
  j["matrices"] = g.matrices;
  j.update(counts_json(g.counts));  // pooled over the group's positions
  j["jaccard_per_matrix"] = stat_json(g.jaccard);
  j["hamming_per_matrix"] = stat_json(g.hamming);
  // The two means of mask_compare.h, labelled (REPORT.md gives the same two numbers).
  j["jaccard_pooled"] = g.counts.jaccard();
  j["jaccard_mean_over_matrices"] = g.jaccard.count > 0 ? json(g.jaccard.mean) : json(nullptr);
  return j;
}

json comparison_json(const MaskSetComparison& c) {
  json matrices = json::array();
  for (const MatrixComparison& m : c.matrices) {
    json j = {{"name", m.name}, {"layer", m.layer}, {"component", m.component}, {"shape", {m.rows, m.cols}}};
    j.update(counts_json(m.counts));
    j["cosine"] = m.cosine ? number_or_null(*m.cosine) : json(nullptr);
    j["per_row"] = features_summary_json(m.per_row);
    j["per_col"] = features_summary_json(m.per_col);
    matrices.push_back(std::move(j));
  }
  const auto groups = [](const std::vector<GroupOverlap>& gs) {
    json a = json::array();
    for (const auto& g : gs) a.push_back(group_json(g));
    return a;
  };
  return {{"a", c.a},
          {"b", c.b},
          {"matrices", std::move(matrices)},
          {"summary",
           {{"overall", group_json(c.overall)},
            {"by_layer", groups(c.by_layer)},
            {"by_component", groups(c.by_component)},
            {"by_layer_component", groups(c.by_layer_component)}}}};
}

// ---- --features-out ----

json feature_values_json(const FeatureMetrics& f) {
  const auto values = [](const std::vector<double>& v) {
    json a = json::array();
    for (double x : v) a.push_back(number_or_null(x));
    return a;
  };
  json j = {{"jaccard", values(f.jaccard)}, {"hamming", values(f.hamming)}, {"sparsity_a", values(f.sparsity_a)},
            {"sparsity_b", values(f.sparsity_b)}};
  if (!f.cosine.empty()) j["cosine"] = values(f.cosine);
  return j;
}

std::string features_json(const MaskSetComparison& c) {
  json matrices = json::array();
  for (const MatrixComparison& m : c.matrices)
    matrices.push_back({{"name", m.name}, {"layer", m.layer}, {"component", m.component},
                        {"per_row", feature_values_json(m.per_row)}, {"per_col", feature_values_json(m.per_col)}});
  return json({{"a", c.a}, {"b", c.b}, {"matrices", std::move(matrices)}}).dump() + "\n";
}

// One line per (matrix, axis, feature): empty cosine when undefined or without weights.
std::string features_csv(const MaskSetComparison& c) {
  std::string out = "name,layer,component,axis,feature,jaccard,hamming,sparsity_a,sparsity_b,cosine\n";
  for (const MatrixComparison& m : c.matrices)
    for (const auto& [axis, f] : {std::pair<const char*, const FeatureMetrics*>{"row", &m.per_row}, {"col", &m.per_col}})
      for (size_t i = 0; i < f->jaccard.size(); ++i) {
        const double cos = f->cosine.empty() ? NAN : f->cosine[i];
        out += fmt::format("{},{},{},{},{},{:.9g},{:.9g},{:.9g},{:.9g},{}\n", m.name, m.layer, m.component, axis, i,
                           f->jaccard[i], f->hamming[i], f->sparsity_a[i], f->sparsity_b[i],
                           std::isfinite(cos) ? fmt::format("{:.9g}", cos) : "");
      }
  return out;
}

void write_features(const fs::path& path, const MaskSetComparison& c) {
  const std::string ext = path.extension().string();
  if (ext == ".json") write_file_atomic(path, features_json(c));
  else if (ext == ".csv") write_file_atomic(path, features_csv(c));
  else bad_input("--features-out {}: the name must end in .json or .csv", path.string());
}

// ---- text output ----

std::string cosine_text(const MatrixComparison& m) {
  return m.cosine && std::isfinite(*m.cosine) ? fmt::format("{:8.4f}", *m.cosine) : fmt::format("{:>8}", "-");
}

void print_comparison(const MaskSetComparison& c) {
  std::printf("a: %s\nb: %s\n", c.a.c_str(), c.b.c_str());
  std::printf("%-40s %8s %8s %8s %8s %8s\n", "matrix", "jaccard", "hamming", "spars_a", "spars_b", "cosine");
  for (const MatrixComparison& m : c.matrices)
    std::printf("%-40s %8.4f %8.4f %8.4f %8.4f %s\n", m.name.c_str(), m.counts.jaccard(), m.counts.hamming(),
                m.counts.sparsity_a(), m.counts.sparsity_b(), cosine_text(m).c_str());
  std::printf("\n%-40s %8s %8s %8s\n", "component (over layers)", "jaccard", "hamming", "jaccard");
  std::printf("%-40s %8s %8s %8s\n", "", "pooled", "pooled", "mean");
  for (const GroupOverlap& g : c.by_component)
    std::printf("%-40s %8.4f %8.4f %8.4f\n", g.component.c_str(), g.counts.jaccard(), g.counts.hamming(), g.jaccard.mean);
  std::printf("%-40s %8.4f %8.4f %8.4f\n", "all", c.overall.counts.jaccard(), c.overall.counts.hamming(),
              c.overall.jaccard.mean);
  std::printf("pooled: intersection / union summed over the entries of every matrix; mean: the average of the "
              "per-matrix values\n");
}

// ---- --series ----

json square_json(const std::vector<double>& t, size_t n) {
  json rows = json::array();
  for (size_t i = 0; i < n; ++i) rows.push_back(std::vector<double>(t.begin() + i * n, t.begin() + (i + 1) * n));
  return rows;
}

json series_json(const SeriesComparison& s, const std::vector<std::string>& sources) {
  const size_t n = s.labels.size();
  json comps = json::object();
  for (size_t c = 0; c < s.components.size(); ++c)
    comps[s.components[c]] = {{"jaccard", square_json(s.component_jaccard[c], n)},
                              {"hamming", square_json(s.component_hamming[c], n)}};
  return {{"series",
           {{"labels", s.labels},
            {"sources", sources},
            {"layer", s.layer >= 0 ? json(s.layer) : json(nullptr)},
            {"sparsity", s.sparsity},
            {"jaccard", square_json(s.jaccard, n)},
            {"jaccard_pooled", square_json(s.jaccard, n)},
            {"jaccard_mean_over_matrices", square_json(s.jaccard_matrix_mean, n)},
            {"hamming", square_json(s.hamming, n)},
            {"components", std::move(comps)}}}};
}

// The widths of the series tables: the first column fits the titles and every label, the others
// a number (10) or the longest label; labels are never cut.
struct SeriesWidths {
  size_t first = 15, cell = 10;  // 15: "hamming pooled" and a space
};

SeriesWidths series_widths(const std::vector<std::string>& labels) {
  SeriesWidths w;
  for (const auto& l : labels) {
    w.first = std::max(w.first, l.size());
    w.cell = std::max(w.cell, l.size());
  }
  return w;
}

void print_square(const char* title, const std::vector<double>& t, const std::vector<std::string>& labels,
                  const SeriesWidths& w) {
  const size_t n = labels.size();
  std::printf("\n%s", fmt::format("{:<{}}", title, w.first).c_str());
  for (const auto& l : labels) std::printf(" %s", fmt::format("{:>{}}", l, w.cell).c_str());
  std::printf("\n");
  for (size_t i = 0; i < n; ++i) {
    std::printf("%s", fmt::format("{:<{}}", labels[i], w.first).c_str());
    for (size_t j = 0; j < n; ++j) std::printf(" %s", fmt::format("{:{}.4f}", t[i * n + j], w.cell).c_str());
    std::printf("\n");
  }
}

void print_series(const SeriesComparison& s) {
  std::printf("layer %s, components: %s\n", s.layer >= 0 ? std::to_string(s.layer).c_str() : "all",
              fmt::format("{}", fmt::join(s.components, ", ")).c_str());
  const SeriesWidths w = series_widths(s.labels);
  std::printf("%s", fmt::format("{:<{}}", "sparsity", w.first).c_str());
  for (double v : s.sparsity) std::printf(" %s", fmt::format("{:{}.4f}", v, w.cell).c_str());
  print_square("jaccard pooled", s.jaccard, s.labels, w);
  print_square("jaccard mean", s.jaccard_matrix_mean, s.labels, w);
  print_square("hamming pooled", s.hamming, s.labels, w);
  std::printf("\npooled: intersection / union summed over the entries of every matrix; mean: the average of the "
              "per-matrix values\n");
}

// ---- --db ----

// The comparison run of sets i and j (a prune run each, found or added): the newest run with its
// identity, or a new one with the comparison rows (computed into `computed`). Returns {run_id, added}.
std::pair<int64_t, bool> record_pair(Store& store, const std::vector<std::string>& paths, const std::vector<MaskSet>& sets,
                                     size_t i, size_t j, std::optional<MaskSetComparison>& computed) {
  const MaskSetRun a = find_or_add_mask_set_run(store, paths[i], sets[i]);
  const MaskSetRun b = find_or_add_mask_set_run(store, paths[j], sets[j]);
  RunInfo base;
  base.model_name = a.info.model_name;
  base.model_path = a.info.model_path;
  base.architecture = a.info.architecture;
  const RunInfo info = compare_run_info(base, a.info.method.empty() ? "unknown" : a.info.method,
                                        b.info.method.empty() ? "unknown" : b.info.method, a.info.target, a.run_id,
                                        b.run_id);
  if (const auto id = store.find_run(info)) return {*id, false};
  const auto t0 = std::chrono::steady_clock::now();
  computed = compare_mask_sets(sets[i], sets[j]);
  RunWriter w = store.begin_run(info);
  add_comparison_rows(w, *computed, a.run_id, b.run_id);
  w.set_timings({.total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
  const int64_t id = w.run_id();
  w.commit();
  return {id, true};
}

// --series --db: every pair i < j as `compare A_i A_j --db` records it; one stderr line.
void record_series(Store& store, const std::vector<std::string>& paths, const std::vector<MaskSet>& sets) {
  std::vector<int64_t> added, held;
  for (size_t i = 0; i < sets.size(); ++i)
    for (size_t j = i + 1; j < sets.size(); ++j) {
      std::optional<MaskSetComparison> computed;
      const auto [id, is_new] = record_pair(store, paths, sets, i, j, computed);
      (is_new ? added : held).push_back(id);
    }
  std::fprintf(stderr, "compare --series: of %zu pairs, added runs [%s], already held by runs [%s] of %s\n",
               added.size() + held.size(), fmt::format("{}", fmt::join(added, ", ")).c_str(),
               fmt::format("{}", fmt::join(held, ", ")).c_str(), store.path().string().c_str());
}

void run_series(const CompareArgs& a) {
  if (a.sets.size() < 2) bad_input("--series needs at least two mask sets");
  if (!a.labels.empty() && a.labels.size() != a.sets.size())
    bad_input("--labels has {} names for {} mask sets", a.labels.size(), a.sets.size());
  const auto store = open_db(a.db);
  std::vector<MaskSet> sets;
  std::vector<const MaskSet*> ptrs;
  std::vector<std::string> labels = a.labels;
  for (const std::string& p : a.sets) {
    sets.push_back(MaskSet::open(p, a.shapes_from));
    if (a.labels.empty()) labels.push_back(fs::path(p).filename().replace_extension().string());
  }
  for (const MaskSet& s : sets) ptrs.push_back(&s);
  if (store) record_series(*store, a.sets, sets);
  const SeriesComparison s = compare_series(ptrs, labels, a.layer);
  if (a.json) print_json(nlohmann::json(series_json(s, a.sets)));
  else print_series(s);
}

// --features-out must not overwrite what the comparison reads: a mask file, a pruned folder's mask
// file or summary, --shapes-from or --db.
void check_features_out(const CompareArgs& a) {
  std::vector<NamedPath> inputs = {{"--shapes-from", a.shapes_from}, {"--db", a.db}};
  for (const std::string& set : a.sets) {
    inputs.push_back({"the mask set", set});
    if (is_folder(set))
      for (const fs::path& f : {PrunedFolder(set).mask_file(), PrunedFolder(set).summary_file()})
        inputs.push_back({"the mask set's", f});
  }
  refuse_output_over_inputs({"--features-out", a.features_out}, inputs);
}

void run_compare(const CompareArgs& a) {
  if (a.series) return run_series(a);
  if (a.sets.size() != 2) bad_input("compare takes two mask sets (pruned folders or mask files), got {}", a.sets.size());
  if (!a.labels.empty() || a.layer >= 0) bad_input("--labels and --layer belong to --series");
  if (!a.features_out.empty()) check_features_out(a);
  const auto store = open_db(a.db);
  std::vector<MaskSet> sets;
  for (const std::string& p : a.sets) sets.push_back(MaskSet::open(p, a.shapes_from));
  std::optional<MaskSetComparison> computed;
  std::optional<int64_t> reused_run;  // the --db run that already held this comparison
  if (store) {
    const auto [id, added] = record_pair(*store, a.sets, sets, 0, 1, computed);
    note_db_run("compare", *store, id, added);
    if (!added) reused_run = id;
  }
  // A held comparison is computed again for the output (it is what the run stored: the same masks).
  const MaskSetComparison c = computed ? std::move(*computed) : compare_mask_sets(sets[0], sets[1]);
  if (!a.features_out.empty()) write_features(a.features_out, c);
  if (!a.json) return print_comparison(c);
  json out = comparison_json(c);
  mark_reused(out, reused_run);
  print_json(nlohmann::json(out));
}

}  // namespace

void register_compare(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  auto* cmd = app.add_subcommand(
      "compare", "Compare pruning masks: Jaccard of the kept positions, Hamming distance (fraction of positions that "
                 "differ), sparsities and cosine of the pruned weights, per matrix and per feature (row = output "
                 "feature, column = input feature), with summaries per layer and component");
  cmd->add_option("sets", args->sets,
                  "mask sets: `sparsa prune` output folders (masks.safetensors + checkpoint) or mask .safetensors "
                  "files (U8 packbits, 1 = pruned); two, or two or more with --series")
      ->required();
  cmd->add_flag("--json", args->json, "print the comparison as JSON on stdout");
  cmd->add_option("--features-out", args->features_out,
                  "write every per-feature value (per row and per column of every matrix) to FILE.json or FILE.csv");
  cmd->add_option("--shapes-from", args->shapes_from,
                  "HF checkpoint whose weights give the true column counts of masks that come without weights "
                  "(default: 8 x the packed columns)");
  cmd->add_flag("--series", args->series,
                "ablation series: compare all the given mask sets pairwise (e.g. one method at 10...90 % or "
                "u50 / 2:4 / 4:8), pooled over the matrices of --layer");
  add_db_option(cmd, args->db,
                "a compare run (a comparisons row per matrix, per-feature metrics); a mask set that is not yet a run of "
                "the database is added as a prune run described by its summary.json or mask metadata; with --series, "
                "every pair i < j");
  cmd->add_option("--layer", args->layer, "with --series: the decoder layer to compare (default: every layer)");
  list_option(cmd->add_option("--labels", args->labels, "with --series: a name per mask set, a list (default: the file names)"));
  cmd->callback([args] { run_compare(*args); });
}
SPARSA_COMMAND(60, register_compare);

}  // namespace sparsa::cli
