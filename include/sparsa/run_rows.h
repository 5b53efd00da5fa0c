// sparsa/run_rows.h — what a result becomes in the study database: the identities (RunInfo)
// and rows of dense, prune, compare and acts runs. One place for both writers, so `sparsa
// study` and the commands given `--db FILE` (eval, prune, compare, acts) store the same result
// the same way (docs/schema.md; building a database from commands: docs/db-commands.md).
//
// The add_*_rows() functions append to an open RunWriter (the caller begins and commits the
// run); they throw what RunWriter throws. Thread safety: as RunWriter / Store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/activations.h"
#include "sparsa/mask_compare.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/store.h"
#include "sparsa/tensor.h"

namespace sparsa {

// ---- identities (RunInfo::options and friends) ----

// A run of `kind` on the model at `model` (folder or file): model_name (the canonical path's last
// part), model_path (canonical) and architecture (config.model_type); nothing else set.
RunInfo model_run_info(RunKind kind, const std::filesystem::path& model, const ModelConfig& config);

// "<source> [n, seqlen]": how a run's calibration windows [n, seqlen] are described.
std::string calib_run_description(std::string_view source, const TensorI32& windows);

// "eval=<dataset>:<fnv1a64 of the ids, 16 hex>:<n>x<seqlen>": the evaluation windows
// [n, seqlen] a run's perplexities were measured on.
std::string eval_options(std::string_view dataset, const TensorI32& windows);

// The dataset name of an evaluation set in the perplexities table: "<file stem>:<key>" for a
// tensor of a token file, "<file stem>" for a text file.
std::string eval_dataset_name(const std::filesystem::path& tokens_file, std::string_view key,
                              const std::filesystem::path& text_file);

// A prune run's identity on top of `base` (model, calibration and device fields): the method,
// the target and the settings that change the masks ("blocksize=B percdamp=P" for SparseGPT).
// Magnitude needs no calibration: its calibration fields (description, hash, nsamples) are cleared.
RunInfo prune_run_info(RunInfo base, PruneMethod method, const SparsityTarget& target, int64_t blocksize,
                       double percdamp);

// A comparison run's identity on top of `base`: method "<method_a>-vs-<method_b>", the target of
// the compared masks, options "runs=<run_a>,<run_b>".
RunInfo compare_run_info(RunInfo base, std::string_view method_a, std::string_view method_b,
                         const std::optional<SparsityTarget>& target, int64_t run_a, int64_t run_b);

// "sparsities=0.25,0.5" (each as {:g}): the activation targets of an acts run.
std::string act_sparsities_option(std::span<const double> sparsities);

// A RunInfo as JSON (every field but kind; the target as its label) and back, as a pruned
// folder's summary.json records its prune run ("run"). Error(kBadInput) naming `where` for a
// malformed object.
nlohmann::json run_info_json(const RunInfo& info);
RunInfo run_info_from_json(const nlohmann::json& j, RunKind kind, std::string_view where);

// "u50" -> 50 % unstructured, "2-4" -> 2:4 (SparsityTarget::label() reversed); nullopt otherwise.
std::optional<SparsityTarget> target_from_label(std::string_view label);

// ---- rows ----

// Pruned weights per row ([rows]) and per column ([cols]) of a mask.
struct PrunedCounts {
  std::vector<int64_t> per_row, per_col;
  int64_t total = 0;
};
PrunedCounts pruned_counts(const Mask& m);
PrunedCounts pruned_counts(const BitMatrix& pruned);

// One pruned matrix: its matrices row and the mask's own per-feature rows (pruned count and kept
// fraction of every row and column).
void add_pruned_matrix_rows(RunWriter& w, const std::string& hf_name, int64_t rows, int64_t cols,
                            const PrunedCounts& counts, double seconds);
// Every linear of a pruning result (add_pruned_matrix_rows each).
void add_prune_rows(RunWriter& w, const PruneResult& r);

// A comparison of two mask runs: one comparisons row per matrix and the per-feature metrics of
// run_a's masks against run_b's (feature_metrics with mask_run_id = run_a, other_run_id = run_b).
void add_comparison_rows(RunWriter& w, const MaskSetComparison& c, int64_t run_a, int64_t run_b);

// Stored histograms: linear signed bins over ±(the 0.999 quantile of |x|), tails folded into
// the edge bins.
struct CoarseHistogram {
  std::vector<double> edges;    // [kCoarseHistogramBins + 1], symmetric around 0
  std::vector<int64_t> counts;  // [kCoarseHistogramBins]
};
inline constexpr int64_t kCoarseHistogramBins = 120;
CoarseHistogram coarsen(const ActivationHistogram& h);

// The coarse histogram of every (layer, point) of a profile.
void add_act_histogram_rows(RunWriter& w, const ActivationProfile& profile);
// The thresholds of one target sparsity: [layers x 4 points] act_thresholds rows.
void add_act_threshold_rows(RunWriter& w, const ActivationThresholds& t);

// ---- mask sets as prune runs ----

// What the database knows of a mask set (a `sparsa prune` folder or a mask .safetensors file)
// without the run that made it: its prune-run identity and timings. From, in this order: a
// folder's summary.json "run" (written by `sparsa prune`: the identity `prune --db` uses); an
// older summary.json's method / target / model / calibration; a mask file's metadata (method,
// target, model) or, lacking it, a "<method>_<label>" file name (the study's and goldens').
// Identities that cannot name their calibration carry "source=<canonical path>" in options, so
// distinct files never share a run. Error(kBadInput) for an unreadable summary.json.
struct MaskSetOrigin {
  RunInfo info;                  // kind = kPrune
  RunTimings timings;            // from summary.json; unset when unknown
  nlohmann::json matrix_seconds;  // {hf_name: seconds} from summary.json; empty when unknown
};
MaskSetOrigin mask_set_origin(const std::filesystem::path& path);

// The run of `set` (opened from `path`): the newest run with its identity, or a new prune run
// with its matrices and mask features (committed).
struct MaskSetRun {
  int64_t run_id = 0;
  bool added = false;  // a new run; else an existing one
  RunInfo info;
};
MaskSetRun find_or_add_mask_set_run(Store& store, const std::filesystem::path& path, const MaskSet& set);
// The same rows for a run being written (e.g. `eval --db` of a pruned folder).
void add_mask_set_rows(RunWriter& w, const MaskSet& set, const nlohmann::json& matrix_seconds);

}  // namespace sparsa
