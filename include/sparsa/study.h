// sparsa/study.h — the main job: a whole sparsity study of one model, end to end.
//
// run_study() evaluates the dense model, prunes it with every method × target (evaluating
// each: perplexity, and the accuracy on the zero-shot tasks it is given), compares the masks of the methods, captures activations (thresholds, histograms,
// activation-sparsified perplexity), analyses how features co-activate (k-means, separation
// ratio, stability, t-SNE, block coherence) on pruning masks and on activation bitsets, and
// writes everything to one DuckDB file (sparsa/store.h), the figures (PNG) and REPORT.md.
//
// Layout of `out_dir`:
//   study.duckdb                       every number (docs/schema.md), unless `db` says otherwise
//   masks/<method>_<label>.safetensors the masks of each pruning run (golden mask format; the
//                                      name: sparsa/runs.h mask_file_name; recorded in runs.mask_file)
//   figures/*.png                      the figures REPORT.md shows (and *.pdf when asked)
//   REPORT.md                          the findings, generated from the database
//
// Resumable: each step is one run in the database, committed in one transaction after its
// outputs (mask files) are written atomically. A rerun over the same out_dir skips every run
// that is already committed with the same settings (the store's run_key) and whose files are
// present, so a study killed half-way completes without recomputing finished work and without
// duplicating rows.
// Not thread-safe: one study per out_dir at a time (DuckDB's file lock refuses a second writer).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/calibration.h"
#include "sparsa/device.h"
#include "sparsa/prune.h"
#include "sparsa/report.h"
#include "sparsa/store.h"
#include "sparsa/viz.h"

namespace sparsa {

struct StudyOptions {
  std::filesystem::path model;    // Hugging Face folder (llama / mistral / qwen2 / opt)
  std::filesystem::path out_dir;  // created when absent
  std::filesystem::path db;       // empty: out_dir / "study.duckdb"

  std::vector<PruneMethod> methods{PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT};
  std::vector<SparsityTarget> targets;  // empty: 50 % unstructured, 2:4, 4:8
  std::vector<double> sweep{0.3, 0.7};  // more unstructured sparsities, for perplexity against sparsity
  CalibrationSpec calib;                // pruning calibration (and activation thresholds)
  int64_t blocksize = 128;              // SparseGPT
  double percdamp = 0.01;               // SparseGPT
  // Where the model runs (sparsa/device.h): the dense and pruned evaluations, every pruning run,
  // the activation histograms and sparsified perplexities, and the activation bitsets. The dense
  // weights stay in host memory and every pruning run starts from them. A run's identity holds the
  // device (and the GPU precision when it is not fp32), so a study moved to the GPU recomputes.
  DeviceOptions device;

  std::filesystem::path eval_text;      // held-out text, tokenized without BOS ...
  std::filesystem::path eval_tokens;    // ... or int32 safetensors windows [n, seqlen] ...
  std::string eval_key = "eval";        // ... under this key
  int64_t eval_seqlen = 0;              // window length (sparsa/eval_set.h); 0 = the rows of
                                        // eval_tokens, or the model's context for eval_text
  int64_t eval_windows = 0;             // evaluate only the first N windows; 0 = all
  // Zero-shot multiple-choice tasks (sparsa/tasks.h) scored on the dense model and on every pruned
  // model, next to its perplexity; tokenized with the model folder's tokenizer.json. They become
  // part of the identity of the dense and prune runs (a run is its computation and its evaluation):
  // adding tasks to a finished study recomputes those runs. None: the study is as without them.
  std::vector<std::filesystem::path> tasks;

  std::vector<double> act_sparsities{0.25, 0.4, 0.5, 0.7, 0.9};
  int64_t act_bitset_windows = 32;      // calibration windows in the activation bitsets
  double act_bitset_sparsity = 0.5;     // the target whose thresholds make the bitsets

  int64_t analysis_layer = -1;          // the block analysed in depth (mask clusters, t-SNE, coherence,
                                        // figures); -1 = the middle one
  // The permutation null model of cluster quality and the neighbourhood procedure (below) run on
  // the down_in bitset of every block (true), or of the analysis layer only (false).
  bool null_every_block = true;
  int null_shuffles = 4;                // R: density-keeping shuffled copies per block (>= 1)
  int neighbour_references = 8;         // reference features per block whose 128 Hamming neighbours
                                        // are clustered with every k (>= 1)
  std::vector<int> ks{4, 8, 16};        // k-means cluster counts
  int kmeans_runs = 5;                  // repeated k-means runs (seeds) for stability
  int tsne_iterations = 1000;           // t-SNE gradient steps (the first 250 exaggerated)
  uint64_t seed = 0;                    // k-means / t-SNE seed
  bool figures = true;
  // Written beside each figure's PNG (same name, their extension): PDF, vector, for papers.
  // REPORT.md and the dashboard show the PNGs. Adding formats to a finished study reruns the
  // steps whose figures lack them (the activation and co-activation analyses), as for a figure
  // that was deleted.
  std::vector<viz::FigureFormat> extra_figure_formats;
};

// The defaults above with the study's standard targets (50 % unstructured, 2:4, 4:8).
std::vector<SparsityTarget> default_study_targets();

struct StudyResult {
  std::filesystem::path db, report, figures_dir;
  int64_t runs_computed = 0, runs_reused = 0;
  double seconds = 0;
  nlohmann::json summary;  // perplexities per run and the headline comparisons (the --json output)
};

// Runs (or resumes) the study. `log(line)` receives one line per finished step (for stderr), and
// before each step a progress line "step k/n: <the step, e.g. prune wanda 2-4> (<elapsed> elapsed,
// eta <remaining>)": the ETA assumes the remaining steps take the mean time of those so far.
// Throws Error(kBadInput) for bad options or inputs, Error(kRuntime) for failures on the way;
// runs committed before the failure stay in the database.
StudyResult run_study(const StudyOptions& options, const std::function<void(const std::string&)>& log = {});

}  // namespace sparsa
