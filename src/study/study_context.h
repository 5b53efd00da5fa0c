// Internal to the study: what every step of run_study() shares.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/activations.h"
#include "sparsa/calibration.h"
#include "sparsa/coactivation.h"
#include "sparsa/model.h"
#include "sparsa/progress.h"
#include "sparsa/prune.h"
#include "sparsa/store.h"
#include "sparsa/study.h"
#include "sparsa/tasks.h"

namespace sparsa::study {

using Clock = std::chrono::steady_clock;

inline constexpr int kKMeansInits = 4;                // k-means++ seedings per k-means run
// k-means runs per matrix and k in the null model. 1: the separation ratio only; the stability (ARI
// between runs) would need 2 and twice the time (docs/coactivation.md).
inline constexpr int kNullKMeansRuns = 1;
inline constexpr int64_t kNeighbourhoodSize = 128;    // features per neighbourhood (the seed's procedure)

// A pruning run of the study (computed now or found in the database).
struct PruneRun {
  PruneMethod method;
  SparsityTarget target;
  int64_t run_id = 0;
  std::filesystem::path mask_file;  // masks/<mask_file_name(method, target)>
  double ppl = 0;
};

struct Context {
  Context(const StudyOptions& o, Store& s, Model m) : opt(o), store(s), dense(std::move(m)) {}

  const StudyOptions& opt;
  Store& store;
  Model dense;                      // the loaded model; never modified (pruning works on copies)
  std::string model_name;           // the folder's name, e.g. "tiny-llama-15m"
  Calibration calib;                // [nsamples, seqlen]
  std::string calib_hash;           // store.h token_hash
  TensorI32 eval;                   // [n_windows, seqlen]
  std::string eval_name;            // dataset name in the perplexities table
  std::vector<Task> tasks;          // opt.tasks, loaded
  std::vector<EncodedTask> encoded_tasks;  // tokenized (pointing into `tasks`)
  std::filesystem::path masks_dir, figures_dir;
  int64_t analysis_layer = 0;
  std::function<void(const std::string&)> log;
  std::unique_ptr<WindowRunner> runner;  // make_window_runner(opt.device): activations and bitsets
  int64_t computed = 0, reused = 0;
  double dense_ppl = 0;             // set by dense_step
  int64_t dense_run = 0;            // set by dense_step
  int64_t acts_run = 0;             // set by acts_step

  // Fields shared by every run of the study; kind and method/target are filled by the step.
  // options starts as eval_identity(): a step that sets its own options and measures perplexity
  // appends eval_identity() again, so a study rerun on other windows never reuses its numbers.
  RunInfo run_info(RunKind kind) const;
  std::string eval_identity() const;  // the evaluation dataset and a hash of its windows
  void note(const std::string& line) const {
    if (log) log(line);
  }
  // Writes `figure` to `png` (a path ending in .png) and beside it in opt.extra_figure_formats.
  void save_figure(const viz::Image& figure, const std::filesystem::path& png) const;
  // Removes the figure at `png` and its extra formats when present (a figure no longer drawn).
  void remove_figure(const std::filesystem::path& png) const;
  // Whether the figure at `png` and its extra formats are all on disk.
  bool figure_present(const std::filesystem::path& png) const;
  // The first min(n, calibration windows) calibration windows, [n, seqlen].
  TensorI32 first_calib_windows(int64_t n) const;
  // The (single) numeric value of a one-row query, or nullopt when it returns no row.
  std::optional<double> query_number(const std::string& sql) const;
};

// ---- the steps (one file each) ----

// study_prune.cpp
double dense_step(Context& ctx);
PruneRun prune_step(Context& ctx, PruneMethod method, const SparsityTarget& target);
void compare_step(Context& ctx, const PruneRun& a, const PruneRun& b);

// study_tasks.cpp: the zero-shot tasks of opt.tasks, loaded and tokenized into ctx; the options
// they add to the identity of a run that is scored on them (empty without tasks); scoring `m` on
// every task into the run `w` (one log line per task, prefixed by `what`).
void load_tasks(Context& ctx);
std::string task_identity(const Context& ctx);
void score_tasks(Context& ctx, const Model& m, RunWriter& w, const std::string& what);
// The task scores of run `run_id` as {task: {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n",
// "truncated"}} (the --json summary).
nlohmann::json stored_task_scores(const Context& ctx, int64_t run_id);

// study_acts.cpp: thresholds, histograms and activation-sparsified perplexity; returns the
// thresholds at opt.act_bitset_sparsity for the analysis step.
ActivationThresholds acts_step(Context& ctx);
// The thresholds at activation sparsity s of the committed acts run `run_id`; empty t when the run
// lacks some (layer, point).
ActivationThresholds thresholds_from_store(const Context& ctx, int64_t run_id, double s);

// study_speed.cpp: the bytes model of activation-sparse decoding at every activation sparsity (after
// acts_step), and with a CUDA device the measured sparse-GEMV speed-up (one bench run).
void speed_step(Context& ctx);

// study_coactivation.cpp: clustering, t-SNE and coherence of pruning masks (rows of the
// analysis layer's up projection, for Wanda and SparseGPT at the first unstructured target)
// and of the analysis layer's down_in activation bitset.
void coactivation_step(Context& ctx, const std::vector<PruneRun>& runs, const ActivationThresholds& thresholds);
// The calibration windows of the activation bitsets ([min(opt.act_bitset_windows, nsamples), seqlen]),
// the sentence that describes one block's bitset (cluster_sources.description), and the neighbourhood
// settings of a source with `features` rows (ks above the neighbourhood's size dropped).
TensorI32 bitset_windows(const Context& ctx);
std::string activation_source_name(int64_t layer, float threshold, double sparsity, int64_t tokens);
NeighbourhoodOptions neighbourhood_options(const StudyOptions& opt, int64_t features);

// study_null_model.cpp: the permutation null model of cluster quality (cluster_null) and the
// seed's neighbourhood procedure (neighbour_clusters) on the down_in activation bitset of every
// block (opt.null_every_block) or of the analysis layer; its own analysis run, method
// "coactivation-null".
void null_model_step(Context& ctx, const ActivationThresholds& thresholds);

// study_figures.cpp (sparsa/study_figures.h): the figures drawn from the database alone — the
// perplexity charts and the Wanda vs SparseGPT Jaccard heatmap of the study's runs; the
// activation histograms of the analysis layer at `points` from the committed acts run.
void summary_figures(Context& ctx, const std::vector<PruneRun>& runs);
void draw_act_histograms(const Context& ctx, int64_t acts_run, const std::vector<ObsPoint>& points);

}  // namespace sparsa::study
