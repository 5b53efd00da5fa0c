// REPORT.md of a study, generated from the database: every sentence is computed from the
// numbers (which method wins, by how much, where the methods disagree most, ...).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sparsa/atomic_file.h"
#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/report.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Rows of a query as JSON arrays.
json rows(const Store& store, const std::string& sql) { return store.query_json(sql, {1000000, 60.0})["rows"]; }

double num(const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }
std::string str(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

// Free text inside a Markdown table cell: '|' would end the cell.
std::string cell(std::string s) {
  for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
  return s;
}

// The pooled Jaccard of a group of comparisons rows `c` joined with run_a's matrices `m` (the
// positions): each matrix's counts recovered exactly from its stored fractions (kept by both =
// positions − pruned by either, pruned by either = (pruned_a + pruned_b + differ) / 2), summed,
// then divided, as mask_compare.h's OverlapCounts does; NULL without the matrices rows.
constexpr std::string_view kPooledJaccard =
    "CASE WHEN count(m.rows) < count(*) THEN NULL ELSE coalesce(sum(m.rows * m.cols - round(m.rows * m.cols * "
    "(c.sparsity_a + c.sparsity_b + c.hamming) / 2))::DOUBLE / nullif(sum(m.rows * m.cols - round(m.rows * m.cols * "
    "(c.sparsity_a + c.sparsity_b + c.hamming) / 2) + round(m.rows * m.cols * c.hamming)), 0), 1.0) END";

// The value of `key=value` in a run's options ("" when absent).
std::string option_value(const std::string& options, const std::string& key) {
  const std::string needle = key + "=";
  for (size_t at = options.find(needle); at != std::string::npos; at = options.find(needle, at + 1))
    if (at == 0 || options[at - 1] == ' ') return options.substr(at + needle.size(), options.find(' ', at) - at - needle.size());
  return "";
}

std::string pct(double x) { return fmt::format("{:+.1f} %", 100.0 * x); }

std::string method_title(const std::string& m) {
  if (m == "sparsegpt") return "SparseGPT";
  if (m == "wanda") return "Wanda";
  if (m == "magnitude") return "Magnitude";
  return m;
}

std::string structure_title(const std::string& s) {
  if (!s.empty() && s[0] == 'u') return s.substr(1) + " % unstructured";
  std::string t = s;
  std::replace(t.begin(), t.end(), '-', ':');
  return t;
}

class Report {
 public:
  Report(const Store& store, fs::path figures, fs::path report_dir)
      : store_(store), figures_(std::move(figures)), dir_(std::move(report_dir)) {}

  std::string build() {
    header();
    perplexity();
    accuracy();
    overlap();
    activations();
    coactivation();
    speed();
    runs_table();
    return out_;
  }

 private:
  void line(const std::string& s = "") { out_ += s + "\n"; }

  void figure(const std::string& file, const std::string& caption) {
    const fs::path p = figures_ / file;
    if (!path_exists(p)) return;
    line(fmt::format("![{}]({})", caption, p.lexically_relative(dir_).generic_string()));
    line();
  }

  void header() {
    const json dense = rows(store_,
                            "SELECT r.model_name, r.model_path, r.architecture, p.ppl, p.dataset, p.tokens, r.run_id "
                            "FROM runs r JOIN perplexities p USING (run_id) WHERE r.kind = 'dense' ORDER BY r.run_id DESC LIMIT 1");
    if (dense.empty()) bad_input("{}: no dense evaluation run: not a study database", store_.path().string());
    model_ = str(dense[0][0]);
    dense_ppl_ = num(dense[0][3]);
    dataset_ = str(dense[0][4]);
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    line(fmt::format("# Sparsity study of `{}`", model_));
    line();
    line(fmt::format("Model `{}` ({}), evaluated on `{}` ({} predicted tokens). Written by sparsa {} on {} from "
                     "`{}`; every number below is in that database (schema: `docs/schema.md`).",
                     str(dense[0][1]), str(dense[0][2]), dataset_, static_cast<int64_t>(num(dense[0][5])), SPARSA_VERSION,
                     date, store_.path().filename().string()));
    line();
  }

  void perplexity() {
    const json r = rows(store_,
                        "SELECT r.method, r.structure, r.sparsity, p.ppl, r.seconds_total, r.run_id FROM runs r "
                        "JOIN perplexities p USING (run_id) WHERE r.kind = 'prune' AND p.kind = 'pruned' AND r.run_id IN "
                        "(SELECT max(run_id) FROM runs JOIN perplexities USING (run_id) WHERE runs.kind = 'prune' AND "
                        "perplexities.kind = 'pruned' GROUP BY method, structure) "  // newest evaluated run
                        "ORDER BY r.nm_m NULLS FIRST, r.sparsity, r.structure, r.method");
    line("## Perplexity after pruning");
    line();
    line(fmt::format("Dense perplexity: **{:.4f}**.", dense_ppl_));
    line();
    if (r.empty()) return;
    line("| method | structure | perplexity | vs dense | run time |");
    line("| --- | --- | ---: | ---: | ---: |");
    std::map<std::string, std::vector<std::pair<double, std::string>>> by_structure;  // structure -> (ppl, method)
    std::vector<std::string> structures;
    for (const auto& row : r) {
      const std::string m = str(row[0]), s = str(row[1]);
      const double ppl = num(row[3]);
      line(fmt::format("| {} | {} | {:.4f} | {} | {:.1f} s |", method_title(m), structure_title(s), ppl,
                       pct(ppl / dense_ppl_ - 1), num(row[4])));
      if (!by_structure.count(s)) structures.push_back(s);
      by_structure[s].emplace_back(ppl, m);
    }
    line();
    std::map<std::string, int> wins;
    for (const auto& s : structures) {
      auto v = by_structure[s];
      std::sort(v.begin(), v.end());
      ++wins[v.front().second];
      std::string sentence = fmt::format("At {}, {} is best ({:.2f}, {} over dense)", structure_title(s),
                                         method_title(v.front().second), v.front().first,
                                         pct(v.front().first / dense_ppl_ - 1));
      if (v.size() > 1)
        sentence += fmt::format("; {} is worst ({:.2f}, {})", method_title(v.back().second), v.back().first,
                                pct(v.back().first / dense_ppl_ - 1));
      line(sentence + ".");
    }
    if (structures.size() > 1) {
      const auto best = std::max_element(wins.begin(), wins.end(), [](auto& a, auto& b) { return a.second < b.second; });
      line(fmt::format("{} wins at {} of {} structures.", method_title(best->first), best->second, structures.size()));
    }
    line();
    figure("ppl_by_structure.png", "perplexity per method and structure");
    figure("ppl_vs_sparsity.png", "perplexity against sparsity");
  }

  // Zero-shot accuracy (task_scores): one row per evaluated model (dense, then each method and
  // structure, the newest run of each with the task), one column pair per task. Absent when no
  // run was scored on a task.
  void accuracy() {
    const json r = rows(store_,
                        "SELECT r.kind, coalesce(r.method, ''), coalesce(r.structure, ''), t.task, t.acc, t.acc_stderr, "
                        "t.acc_norm, t.acc_norm_stderr, t.items, t.truncated, t.chance, p.ppl FROM task_scores t "
                        "JOIN runs r USING (run_id) LEFT JOIN perplexities p ON p.run_id = r.run_id AND p.kind IN "
                        "('dense', 'pruned') WHERE t.run_id IN (SELECT max(run_id) FROM runs JOIN task_scores USING "
                        "(run_id) GROUP BY kind, method, structure, task) "
                        "ORDER BY r.kind = 'prune', r.nm_m NULLS FIRST, r.sparsity, r.structure, r.method, t.task");
    if (r.empty()) return;
    std::vector<std::string> tasks, models;
    std::map<std::string, std::map<std::string, json>> cells;  // model -> task -> row
    std::map<std::string, double> ppl;
    for (const auto& row : r) {
      const std::string model = str(row[0]) == "prune" ? method_title(str(row[1])) + " | " + structure_title(str(row[2]))
                                                       : "dense | –";
      const std::string task = str(row[3]);
      if (std::find(tasks.begin(), tasks.end(), task) == tasks.end()) tasks.push_back(task);
      if (!cells.count(model)) models.push_back(model);
      cells[model][task] = row;
      ppl[model] = num(row[11]);
    }
    line("## Zero-shot accuracy");
    line();
    line("Multiple-choice tasks scored as lm-evaluation-harness does (docs/tasks.md): acc picks the choice of highest "
         "log-likelihood, acc_norm the highest log-likelihood per character; ± is the standard error.");
    line();
    std::string head = "| method | structure | perplexity |", rule = "| --- | --- | ---: |";
    for (const auto& t : tasks) {
      head += fmt::format(" {} acc | {} acc_norm |", cell(t), cell(t));
      rule += " ---: | ---: |";
    }
    line(head);
    line(rule);
    for (const auto& m : models) {
      std::string text = fmt::format("| {} | {} |", m, std::isnan(ppl[m]) ? std::string("–") : fmt::format("{:.4f}", ppl[m]));
      for (const auto& t : tasks) {
        const auto it = cells[m].find(t);
        text += it == cells[m].end() ? " – | – |"
                                     : fmt::format(" {} | {} |", score_cell(it->second[4], it->second[5]),
                                                   score_cell(it->second[6], it->second[7]));
      }
      line(text);
    }
    line();
    for (const auto& t : tasks)
      if (const auto it = cells[models.front()].find(t); it != cells[models.front()].end())
        line(fmt::format("`{}`: {} items (chance {:.4f}){}.", t, static_cast<int64_t>(num(it->second[8])),
                         num(it->second[10]),
                         num(it->second[9]) > 0 ? fmt::format(", {} with the context truncated to the model's",
                                                              static_cast<int64_t>(num(it->second[9])))
                                                : std::string()));
    line();
  }

  static std::string score_cell(const json& value, const json& stderr_value) {
    return std::isnan(num(stderr_value)) ? fmt::format("{:.4f}", num(value))
                                         : fmt::format("{:.4f} ± {:.4f}", num(value), num(stderr_value));
  }

  void overlap() {
    const json r = rows(store_,
                        "SELECT ru.method, ru.structure, avg(c.jaccard), avg(c.hamming), min(c.jaccard), max(c.jaccard), "
                        "arg_min(c.hf_name, c.jaccard), arg_max(c.hf_name, c.jaccard), count(*), avg(c.sparsity_a), "
                        "avg(c.sparsity_b), " + std::string(kPooledJaccard) + " FROM comparisons c "
                        "JOIN runs ru ON ru.run_id = c.run_id "
                        "LEFT JOIN matrices m ON m.run_id = c.run_a AND m.hf_name = c.hf_name WHERE c.run_id IN "
                        "(SELECT max(run_id) FROM runs WHERE kind = 'compare' GROUP BY method, structure) "
                        "GROUP BY ru.method, ru.structure ORDER BY ru.structure, ru.method");
    if (r.empty()) return;
    line("## Which weights do the methods keep?");
    line();
    line("Jaccard index of the kept weights (1 = the same weights kept) and Hamming distance (fraction of positions "
         "where the masks differ). Jaccard over the model two ways, as `sparsa compare` gives them: **pooled** = "
         "intersection / union summed over the entries of every matrix (large matrices weigh more); **mean over "
         "matrices** = the average of the per-matrix values. Hamming: the mean over matrices.");
    line();
    line("| methods | structure | Jaccard, pooled | Jaccard, mean over matrices | mean Hamming | least alike | most alike |");
    line("| --- | --- | ---: | ---: | ---: | --- | --- |");
    std::string lowest_pair;
    double lowest = 2, random = 0;
    for (const auto& row : r) {
      std::string pair = str(row[0]);
      const auto vs = pair.find("-vs-");
      if (vs != std::string::npos) pair = method_title(pair.substr(0, vs)) + " vs " + method_title(pair.substr(vs + 4));
      const std::string pooled = std::isnan(num(row[11])) ? std::string("–") : fmt::format("{:.4f}", num(row[11]));
      line(fmt::format("| {} | {} | {} | {:.4f} | {:.4f} | `{}` ({:.3f}) | `{}` ({:.3f}) |", pair,
                       structure_title(str(row[1])), pooled, num(row[2]), num(row[3]), str(row[6]), num(row[4]),
                       str(row[7]), num(row[5])));
      if (num(row[2]) < lowest) {
        lowest = num(row[2]);
        lowest_pair = fmt::format("{} at {}", pair, structure_title(str(row[1])));
        const double ka = 1 - num(row[9]), kb = 1 - num(row[10]);  // kept fractions
        random = ka * kb / (ka + kb - ka * kb);  // expected Jaccard of independent random masks
      }
    }
    line();
    line(fmt::format("The two masks that differ most are {} (Jaccard {:.3f}, mean over matrices); two independent random masks of "
                     "the same sparsities would give {:.3f}.", lowest_pair, lowest, random));
    const json comp = rows(store_,
                           "SELECT c.component, avg(c.jaccard) FROM comparisons c JOIN runs ru ON ru.run_id = c.run_id "
                           "WHERE ru.method = 'wanda-vs-sparsegpt' AND c.run_id = (SELECT max(run_id) FROM runs WHERE "
                           "kind = 'compare' AND method = 'wanda-vs-sparsegpt' AND nm_m IS NULL) GROUP BY c.component "
                           "ORDER BY 2");
    if (comp.size() >= 2)
      line(fmt::format("Between Wanda and SparseGPT (unstructured), `{}` is where they disagree most (Jaccard {:.3f}, "
                       "mean over its matrices) and `{}` where they agree most ({:.3f}).",
                       str(comp[0][0]), num(comp[0][1]), str(comp.back()[0]), num(comp.back()[1])));
    line();
    figure("jaccard_wanda_sparsegpt.png", "Jaccard of kept weights, Wanda vs SparseGPT, per layer and component");
    figure("spy_wanda.png", "a Wanda mask");
    figure("spy_sparsegpt.png", "a SparseGPT mask");
    figure("hamming_hist.png", "Hamming distances between mask rows");
  }

  void activations() {
    const json r = rows(store_,
                        "SELECT act_sparsity, ppl FROM perplexities WHERE kind = 'act-sparsified' AND run_id = "
                        "(SELECT max(run_id) FROM runs WHERE kind = 'acts') ORDER BY act_sparsity");
    if (r.empty()) return;
    line("## Activation sparsity");
    line();
    line("Each block's linears see their input with every activation |x| ≤ t set to zero; t is the threshold that "
         "zeroes the target fraction of the calibration activations at that point (TEAL).");
    line();
    line("| activations zeroed | perplexity | vs dense |");
    line("| ---: | ---: | ---: |");
    double tolerable = 0;
    for (const auto& row : r) {
      line(fmt::format("| {:.0f} % | {:.4f} | {} |", 100 * num(row[0]), num(row[1]), pct(num(row[1]) / dense_ppl_ - 1)));
      if (num(row[1]) <= 1.05 * dense_ppl_) tolerable = std::max(tolerable, num(row[0]));
    }
    line();
    const json& last = r.back();
    if (tolerable > 0)
      line(fmt::format("Up to {:.0f} % of the activations can be zeroed for at most 5 % more perplexity; at {:.0f} % "
                       "perplexity is {:.1f}× the dense model's.",
                       100 * tolerable, 100 * num(last[0]), num(last[1]) / dense_ppl_));
    else
      line(fmt::format("Even the smallest target costs more than 5 % perplexity; at {:.0f} % perplexity is {:.1f}× the "
                       "dense model's.", 100 * num(last[0]), num(last[1]) / dense_ppl_));
    const json t = rows(store_,
                        "SELECT point, avg(threshold), min(threshold), max(threshold) FROM act_thresholds WHERE run_id = "
                        "(SELECT max(run_id) FROM runs WHERE kind = 'acts') AND abs(target_sparsity - 0.5) < 1e-9 "
                        "GROUP BY point ORDER BY 2");
    if (!t.empty()) {
      line();
      line("Thresholds at 50 % activation sparsity, over the blocks:");
      line();
      line("| point | mean t | min t | max t |");
      line("| --- | ---: | ---: | ---: |");
      for (const auto& row : t)
        line(fmt::format("| `{}` | {:.4g} | {:.4g} | {:.4g} |", str(row[0]), num(row[1]), num(row[2]), num(row[3])));
    }
    line();
    figure("ppl_vs_act_sparsity.png", "perplexity against activation sparsity");
    for (const auto& entry : sorted_figures("act_hist_")) figure(entry, "activation histogram with thresholds");
  }

  void coactivation() {
    const json r = rows(store_,
                        "SELECT s.source, s.k, s.separation_ratio, s.within_distance, s.between_distance, s.ari, "
                        "coalesce(d.description, s.source) FROM cluster_summary s LEFT JOIN cluster_sources d ON d.run_id "
                        "= s.run_id AND d.source = s.source WHERE s.run_id = (SELECT max(run_id) FROM runs WHERE kind = "
                        "'analysis' AND method = 'coactivation') ORDER BY s.source, s.k");
    if (r.empty()) return;
    line("## Co-activation and clustering");
    line();
    line("k-means on binary feature vectors (k-means++ seeding, best of several seeds). Separation ratio = mean "
         "distance between clusters / mean distance within clusters (Hamming, as a fraction of the vector); "
         "ARI = adjusted Rand index between repeated runs with different seeds (1 = the same clusters every time).");
    line();
    line("| source | features | k | separation ratio | within | between | ARI across runs |");
    line("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    std::map<std::string, std::vector<std::pair<int, double>>> ratio;  // source -> (k, ratio)
    for (const auto& row : r) {
      line(fmt::format("| `{}` | {} | {} | {:.3f} | {:.4f} | {:.4f} | {:.3f} |", str(row[0]), cell(str(row[6])),
                       static_cast<int>(num(row[1])), num(row[2]), num(row[3]), num(row[4]), num(row[5])));
      ratio[str(row[0])].emplace_back(static_cast<int>(num(row[1])), num(row[2]));
    }
    line();
    for (const auto& [source, v] : ratio) {
      const auto best = std::max_element(v.begin(), v.end(), [](auto& a, auto& b) { return a.second < b.second; });
      std::string sentence = fmt::format("{}: the best separation ratio is {:.3f} (k = {})", source, best->second, best->first);
      if (best->second < 1.1)
        sentence += ", so the clusters are barely more alike inside than across: these features have little cluster "
                    "structure";
      else if (best->second > 1.5)
        sentence += ", a clear cluster structure";
      line(sentence + ".");
    }
    const json coh = rows(store_,
                          "SELECT block_size, max(CASE WHEN ordering = 'natural' THEN fraction END), "
                          "max(CASE WHEN ordering = 'cluster' THEN fraction END) FROM coherence WHERE run_id = "
                          "(SELECT max(run_id) FROM runs WHERE kind = 'analysis' AND method = 'coactivation') GROUP BY block_size "
                          "ORDER BY block_size");
    if (!coh.empty()) {
      line();
      line("Block coherence of the activation bitset: the fraction of (token, block of B features) cells in which every "
           "feature of the block is zero, i.e. the share of a block-sparse kernel's work that could be skipped.");
      line();
      line("| B | natural order | cluster order | gain |");
      line("| ---: | ---: | ---: | ---: |");
      double best_gain = -1;
      int64_t best_b = 0;
      for (const auto& row : coh) {
        const double gain = num(row[2]) - num(row[1]);
        line(fmt::format("| {} | {:.4f} | {:.4f} | {:+.4f} |", static_cast<int64_t>(num(row[0])), num(row[1]),
                         num(row[2]), gain));
        if (gain > best_gain) {
          best_gain = gain;
          best_b = static_cast<int64_t>(num(row[0]));
        }
      }
      line();
      line(best_gain > 0
               ? fmt::format("Grouping co-activating features raises the skippable share most at B = {} (by {:.1f} "
                             "percentage points).", best_b, 100 * best_gain)
               : "Grouping the features by cluster does not raise the skippable share at any block size.");
    }
    null_model();
    neighbourhoods();
    line();
    figure("separation_ratio.png", "separation ratio against k");
    figure("cluster_sizes.png", "cluster sizes");
    for (const auto& f : sorted_figures("gradient_spy_")) figure(f, "co-activation gradient");
    for (const auto& f : sorted_figures("clusters_")) figure(f, "clustered spy plot");
    for (const auto& f : sorted_figures("tsne_")) figure(f, "t-SNE of the features");
    tsne_warnings();
  }

  // A warning for each stored t-SNE embedding that is collapsed (its figure was skipped).
  void tsne_warnings() {
    const json r = rows(store_, "SELECT source, x, y FROM tsne WHERE run_id = (SELECT max(run_id) FROM runs WHERE "
                                "kind = 'analysis') ORDER BY source, feature");
    std::map<std::string, std::vector<double>> xy;  // source -> [n, 2]
    for (const auto& row : r) xy[str(row[0])].insert(xy[str(row[0])].end(), {num(row[1]), num(row[2])});
    bool warned = false;
    for (const auto& [source, points] : xy) {
      if (!tsne_collapsed(points)) continue;
      warned = true;
      line(fmt::format("**Warning:** the t-SNE embedding of {} is collapsed (its points barely spread), so it has no "
                       "figure; rerun with more t-SNE iterations.", cell(source)));
    }
    if (warned) line();
  }

  // The latest null-model run: "(SELECT ...)" for a WHERE clause, and its seconds and block count.
  static std::string null_run() {
    return "(SELECT max(run_id) FROM runs WHERE kind = 'analysis' AND method = 'coactivation-null')";
  }

  // A table with one row per block and one column per k (k = 4 | k = 8 | ...) from rows whose first
  // two columns are (layer, k); each cell is format(row); "–" where a (block, k) has no row.
  void block_by_k_table(const json& r, const std::function<std::string(const json&)>& format) {
    std::map<int64_t, std::map<int, std::string>> cells;
    std::map<int, bool> ks;
    for (const auto& row : r) {
      const int k = static_cast<int>(num(row[1]));
      ks[k] = true;
      cells[static_cast<int64_t>(num(row[0]))][k] = format(row);
    }
    std::string head = "| block |", rule = "| ---: |";
    for (const auto& [k, unused] : ks) {
      head += fmt::format(" k = {} |", k);
      rule += " ---: |";
    }
    line(head);
    line(rule);
    for (const auto& [layer, by_k] : cells) {
      std::string row = fmt::format("| {} |", layer);
      for (const auto& [k, unused] : ks) row += " " + (by_k.count(k) ? by_k.at(k) : std::string("–")) + " |";
      line(row);
    }
    line();
  }

  // One row per block, one column per k: "observed vs null mean [min–max]" of `metric`.
  void null_table(const std::string& metric, const std::string& title) {
    const json r = rows(store_, fmt::format("SELECT layer, k, observed, null_mean, null_lo, null_hi, z FROM cluster_null "
                                            "WHERE run_id = {} AND metric = '{}' ORDER BY layer, k", null_run(), metric));
    if (r.empty()) return;
    line(title);
    line();
    block_by_k_table(r, [&](const json& row) {
      const std::string z = std::isfinite(num(row[6])) ? fmt::format(", z = {:.1f}", num(row[6])) : std::string();
      return fmt::format("{:.3f} vs {:.3f} [{:.3f}–{:.3f}]{}", num(row[2]), num(row[3]), num(row[4]), num(row[5]), z);
    });
  }

  void null_model() {
    const json run = rows(store_, "SELECT seconds_total, options, (SELECT count(DISTINCT layer) FROM cluster_null WHERE "
                                  "run_id = " + null_run() + "), (SELECT max(shuffles) FROM cluster_null WHERE run_id = " +
                                  null_run() + ") FROM runs WHERE run_id = " + null_run());
    if (run.empty() || num(run[0][2]) < 1) return;
    const double seconds = num(run[0][0]), blocks = num(run[0][2]);
    const int shuffles = static_cast<int>(num(run[0][3]));
    const std::string options = str(run[0][1]);
    const int seedings = std::atoi(option_value(options, "runs").c_str()) * std::atoi(option_value(options, "inits").c_str());
    line();
    line("### Null model: are the clusters more than chance?");
    line();
    line(fmt::format(
        "Each block's down_in activation bitset is clustered as above, and so are {} copies in which every feature's "
        "bits are shuffled across the tokens independently: each feature keeps its exact density, but which features "
        "are active together is left to chance. Each cell: observed vs the shuffles' mean [min–max] and z = (observed "
        "− mean) / sd. With {} shuffles the interval is the range of {} draws (an observed value above all of them has a "
        "one-sided permutation p-value of 1/{}); the same k-means (the best of {} k-means++ seedings) on every copy.",
        shuffles, shuffles, shuffles, shuffles + 1, seedings));
    line();
    null_table("separation_ratio", "Separation ratio (between / within cluster distance):");
    null_table("ari", "Agreement between k-means runs with different seeds (ARI; stability of the clusters):");
    const json above = rows(store_, "SELECT count(*), count(*) FILTER (WHERE observed > null_hi), min(observed - null_mean), "
                                    "max(observed - null_mean) FROM cluster_null WHERE metric = 'separation_ratio' AND "
                                    "run_id = " + null_run());
    if (!above.empty())
      line(fmt::format("The observed separation ratio is above every shuffle in {} of {} (block, k) cases; it exceeds the "
                       "null mean by {:.4f} to {:.4f}, which says whether the co-activation structure is there, not how "
                       "large it is. The null model and the neighbourhoods below took {:.1f} s for {} blocks ({:.1f} s "
                       "per block).",
                       static_cast<int64_t>(num(above[0][1])), static_cast<int64_t>(num(above[0][0])), num(above[0][2]),
                       num(above[0][3]), seconds, static_cast<int64_t>(blocks), seconds / blocks));
  }

  void neighbourhoods() {
    const json r = rows(store_,
                        "SELECT layer, k, avg(separation_ratio), stddev_pop(separation_ratio), min(separation_ratio), "
                        "max(separation_ratio), count(*), max(size) FROM neighbour_clusters WHERE run_id = " + null_run() +
                        " GROUP BY layer, k ORDER BY layer, k");
    if (r.empty()) return;
    line();
    line("### The seed's procedure: clusters among a feature's nearest neighbours");
    line();
    line(fmt::format("For each of {} reference features per block (drawn by the seed among features with a density in "
                     "[1 %, 99 %]), its {} nearest features by Hamming distance (itself included) are clustered with "
                     "k-means. Each cell: separation ratio mean ± sd (min–max) over the references.",
                     static_cast<int64_t>(num(r[0][6])), static_cast<int64_t>(num(r[0][7]))));
    line();
    block_by_k_table(r, [](const json& row) {
      return fmt::format("{:.3f} ± {:.3f} ({:.3f}–{:.3f})", num(row[2]), num(row[3]), num(row[4]), num(row[5]));
    });
    line("The co-activation gradient and clustered spy figures below show the neighbourhood of the first reference "
         "feature of the in-depth block: rows by distance to it, then grouped by cluster.");
  }

  void runs_table() {
    const json r = rows(store_,
                        "SELECT run_id, kind, coalesce(method, ''), coalesce(structure, ''), seconds_total, "
                        "CAST(finished_at AS VARCHAR) FROM runs ORDER BY run_id");
    line("## Runs");
    line();
    line("| run | kind | method | structure | seconds | finished (UTC) |");
    line("| ---: | --- | --- | --- | ---: | --- |");
    for (const auto& row : r)
      line(fmt::format("| {} | {} | {} | {} | {:.1f} | {} |", static_cast<int64_t>(num(row[0])), str(row[1]), str(row[2]),
                       str(row[3]), num(row[4]), str(row[5])));
    line();
  }

  // "How can these patterns speed up sparse inference?": the bytes model of the newest speed run
  // (bytes_model) and, when it measured on a GPU, the sparse-GEMV speed-ups (benchmarks).
  void speed() {
    const json id = rows(store_, "SELECT max(run_id) FROM runs WHERE kind = 'bench' AND method = 'speed'");
    if (id.empty() || !id[0][0].is_number()) return;
    const int64_t run = static_cast<int64_t>(num(id[0][0]));
    const json m = rows(store_, fmt::format(
        "SELECT a.act_sparsity, a.block_rows, a.tokens, a.mlp_params, a.decode_params, a.mlp_in_fraction, "
        "a.down_in_fraction, a.mlp_fraction, a.mlp_speedup, a.decode_speedup, min(l.mlp_fraction), max(l.mlp_fraction) "
        "FROM bytes_model a JOIN bytes_model l ON l.run_id = a.run_id AND l.act_sparsity = a.act_sparsity AND "
        "l.block_rows = a.block_rows AND l.layer IS NOT NULL WHERE a.run_id = {} AND a.layer IS NULL "
        "GROUP BY ALL ORDER BY a.act_sparsity, a.block_rows", run));
    if (m.empty()) return;
    const json measured = rows(store_, fmt::format("SELECT count(*) FROM benchmarks WHERE run_id = {}", run));
    const bool on_gpu = !measured.empty() && num(measured[0][0]) > 0;
    line("## Speed");
    line();
    line(fmt::format(
        "Decoding a token reads every weight once, so at batch 1 its time is bound by memory bandwidth. An "
        "activation-sparse GEMV stores Wᵀ and skips the weight rows of the inputs the thresholds above zero "
        "(`sparsa/sparse_gemv.h`); a block kernel reads a block of B consecutive rows whenever any of them is active "
        "(`sparsa/sparse_gemv_blocks.h`, B = 2 to 32; larger B are modelled only). The bytes model counts, on the dense "
        "model's own activations ({} calibration tokens, every block), the fraction of the MLP weights a decode step "
        "must read per token (gate/up rows by the `mlp_in` activations, down rows by `down_in`), and its bandwidth-bound "
        "speed-up upper bound, 1 / fraction, for the MLP and for the whole step, in which attention, norms, one "
        "embedding row and the lm_head are read densely: {:.1f} % of the {} weights a step reads are in the MLP "
        "(the KV cache, which grows with the context, is not counted). Features are in the model's order; grouping "
        "co-active ones (the co-activation section) is what could make blocks cheaper.",
        static_cast<int64_t>(num(m[0][2])), 100 * num(m[0][3]) / num(m[0][4]),
        num(m[0][4]) >= 1e6 ? fmt::format("{:.2f} M", num(m[0][4]) / 1e6) : fmt::format("{:.0f}", num(m[0][4]))));
    line();
    if (!on_gpu)
      line("No GPU was present when this study ran (or sparsa was built without CUDA), so these are modelled bytes, "
           "not measurements.");
    else
      line("The model is followed by the sparse-GEMV speed-ups measured on this study's GPU.");
    line();
    bytes_model_table(m);
    if (on_gpu) measured_speed(run);
  }

  // Perplexity with activations sparsified (the newest acts run), by target sparsity.
  std::map<double, double> act_perplexities() const {
    std::map<double, double> out;
    for (const auto& row : rows(store_, "SELECT act_sparsity, ppl FROM perplexities WHERE kind = 'act-sparsified' AND "
                                        "run_id = (SELECT max(run_id) FROM runs WHERE kind = 'acts')"))
      out[num(row[0])] = num(row[1]);
    return out;
  }

  // The bytes model's table (rows of speed()'s query) and the sentence on the tolerable sparsity.
  void bytes_model_table(const json& m) {
    const std::map<double, double> ppl_at = act_perplexities();
    const auto quality = [&](double s) {
      const auto it = ppl_at.find(s);
      return it == ppl_at.end() ? std::nan("") : it->second;
    };
    line("The perplexity is the one of the activation sparsity section (every point sparsified); B = 1 is the "
         "per-row kernel.");
    line();
    line("| activations zeroed | perplexity vs dense | B | gate/up read | down read | MLP read (range over blocks) | "
         "MLP speed-up ≤ | decode step speed-up ≤ |");
    line("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    double shown = -1, chosen = -1;
    for (const auto& row : m) {
      const double s = num(row[0]), ppl = quality(s);
      const std::string ppl_cell = std::isfinite(ppl) ? pct(ppl / dense_ppl_ - 1) : "";
      line(fmt::format("| {} | {} | {} | {:.1f} % | {:.1f} % | {:.1f} % ({:.1f}–{:.1f} %) | {:.2f}× | {:.2f}× |",
                       s == shown ? "" : fmt::format("{:.0f} %", 100 * s), s == shown ? "" : ppl_cell,
                       static_cast<int64_t>(num(row[1])), 100 * num(row[5]), 100 * num(row[6]), 100 * num(row[7]),
                       100 * num(row[10]), 100 * num(row[11]), num(row[8]), num(row[9])));
      shown = s;
      if (std::isfinite(ppl) && ppl <= 1.05 * dense_ppl_) chosen = std::max(chosen, s);
    }
    line();
    if (chosen < 0) chosen = num(m[0][0]);
    const json* per_row = nullptr;
    const json* largest = nullptr;
    for (const auto& row : m)
      if (num(row[0]) == chosen) {
        if (!per_row) per_row = &row;
        largest = &row;
      }
    const json& a = *per_row;
    const json& z = *largest;
    const double ppl = quality(chosen);
    const bool spread = num(z[7]) > num(a[7]) + 0.05;
    const int64_t finest = static_cast<int64_t>(num(a[1]));
    line(fmt::format("At {:.0f} % activation sparsity{}, a decode step that skips {} reads {:.1f} % of the MLP weights: "
                     "the MLP could run at most {:.2f}× and the step at most {:.2f}× faster. With B = {}, {:.1f} % must "
                     "be read (the step at most {:.2f}× faster): {}.",
                     100 * chosen, std::isfinite(ppl) ? fmt::format(" (perplexity {} vs dense)", pct(ppl / dense_ppl_ - 1)) : "",
                     finest == 1 ? std::string("single rows (B = 1)") : fmt::format("blocks of B = {} rows", finest),
                     100 * num(a[7]), num(a[8]), num(a[9]),
                     static_cast<int64_t>(num(z[1])), 100 * num(z[7]), num(z[9]),
                     spread ? "the active rows are spread over the blocks, so a block kernel needs co-active features "
                              "grouped to approach the per-row bound"
                            : "the active rows fall into few blocks, so block kernels lose little"));
    line();
  }

  // The measured sparse-GEMV times of speed run `run` next to the bytes model's bound for the same
  // block and input (B = 1).
  void measured_speed(int64_t run) {
    const json b = rows(store_, fmt::format(
        "SELECT b.sparsity, b.name, b.shape, b.dtype, b.microseconds, b.baseline_microseconds, b.machine, "
        "CASE WHEN b.name LIKE '%mlp_in%' THEN m.mlp_in_fraction ELSE m.down_in_fraction END FROM benchmarks b "
        "LEFT JOIN bytes_model m ON m.run_id = b.run_id AND m.block_rows = 1 AND abs(m.act_sparsity - b.sparsity) < 1e-9 "
        "AND m.layer = TRY_CAST(regexp_extract(b.name, 'block ([0-9]+)', 1) AS INTEGER) WHERE b.run_id = {} "
        "ORDER BY b.sparsity, b.name", run));
    if (b.empty()) return;
    line(fmt::format("### Measured on {}", cell(str(b[0][6]))));
    line();
    line("Each time is the median of 100 replays of a CUDA graph of 16 launches (each over its own copy of random "
         "weights, the copies spanning more than the L2), timed with CUDA events and divided by 16. The sparse kernel "
         "gets the first 16 calibration tokens' activations of the block at the threshold of each sparsity, with its "
         "tile configuration tuned first; the dense baseline is cuBLAS (`cublasGemmEx`) on the same inputs and shape.");
    line();
    line("| activations zeroed | GEMV | W (out × in) | dtype | sparse µs | dense µs | speed-up | bytes-model bound |");
    line("| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |");
    for (const auto& row : b) {
      const double bound = num(row[7]) > 0 ? 1 / num(row[7]) : std::nan("");
      line(fmt::format("| {:.0f} % | {} | {} | {} | {:.2f} | {:.2f} | {:.2f}× | {} |", 100 * num(row[0]), cell(str(row[1])),
                       str(row[2]), str(row[3]), num(row[4]), num(row[5]), num(row[5]) / num(row[4]),
                       std::isfinite(bound) ? fmt::format("{:.2f}×", bound) : "—"));
    }
    line();
  }

  std::vector<std::string> sorted_figures(const std::string& prefix) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(figures_, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(prefix, 0) == 0 && e.path().extension() == ".png") out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  const Store& store_;
  fs::path figures_, dir_;
  std::string out_, model_, dataset_;
  double dense_ppl_ = 0;
};

}  // namespace

void write_study_report(const Store& store, const std::filesystem::path& figures_dir,
                        const std::filesystem::path& report_path) {
  const fs::path dir = fs::absolute(report_path).parent_path();
  Report r(store, fs::absolute(figures_dir), dir);
  write_file_atomic(report_path, r.build());
}

}  // namespace sparsa
