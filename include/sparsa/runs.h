// sparsa/runs.h — the identity of a run and what its results become: the RunInfo of dense,
// prune, compare and acts runs, the name of a mask file, a pruned folder's summary.json, and the
// rows a run adds to the study database. One place below both `sparsa study` and the commands
// given `--db FILE` (eval, prune, compare, acts), so they store the same result the same way
// (docs/schema.md; building a database from commands: docs/db-commands.md).
//
// Targets travel as SparsityTarget; their labels ("u50", "2-4": SparsityTarget::label(), read
// back by parse_target_label in sparsa/prune.h) are formatted only where a string is stored: a
// runs.structure value, a mask file name, summary.json.
//
// The add_*_rows() functions append to an open RunWriter (the caller begins and commits the
// run); they throw what RunWriter throws. Functions reading files throw Error(kBadInput) naming
// the file for malformed content. Thread safety: free functions are reentrant; the Store and
// RunWriter ones as RunWriter / Store.
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
#include "sparsa/checkpoint.h"
#include "sparsa/mask_compare.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/store.h"
#include "sparsa/tasks.h"
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
// base.mask_file is kept.
RunInfo prune_run_info(RunInfo base, PruneMethod method, const SparsityTarget& target, int64_t blocksize,
                       double percdamp);

// A comparison run's identity on top of `base`: method "<method_a>-vs-<method_b>", the target of
// the compared masks, options "runs=<run_a>,<run_b>".
RunInfo compare_run_info(RunInfo base, std::string_view method_a, std::string_view method_b,
                         const std::optional<SparsityTarget>& target, int64_t run_a, int64_t run_b);

// "sparsities=0.25,0.5" (each as {:g}): the activation targets of an acts run.
std::string act_sparsities_option(std::span<const double> sparsities);

// A RunInfo as JSON (every field but kind and mask_file; the target as its label) and back, as a
// pruned folder's summary.json records its prune run ("run"). Error(kBadInput) naming `where` for
// a malformed object.
nlohmann::json run_info_json(const RunInfo& info);
RunInfo run_info_from_json(const nlohmann::json& j, RunKind kind, std::string_view where);

// "task=<name>:<fnv1a64 of the scored token ids and golds, 16 hex>:<items>" per task, joined by
// spaces: the zero-shot tasks (sparsa/tasks.h) a run was scored on.
std::string task_options(std::span<const EncodedTask> tasks);

// ---- mask files ----

// "<method>_<label>.safetensors", e.g. "wanda_u50.safetensors", "sparsegpt_2-4.safetensors": the
// name of a mask file among others (the study's masks/ folder, the goldens).
std::string mask_file_name(PruneMethod method, const SparsityTarget& target);

// The method and target of a file whose stem is "[<anything>_]<method>_<label>" (mask_file_name,
// optionally prefixed, e.g. "opt_wanda_u50.safetensors"); nullopt for any other name.
struct MaskFileIdentity {
  PruneMethod method = PruneMethod::kWanda;
  SparsityTarget target;
};
std::optional<MaskFileIdentity> parse_mask_file_name(const std::filesystem::path& file);

// The prune runs whose masks an analysis run clustered, as its options name them: " <mask file
// name>=<run id>" per run (analysis_mask_run_option), read back by analysis_mask_runs (ids in order).
std::string analysis_mask_run_option(const std::filesystem::path& mask_file, int64_t run_id);
std::vector<int64_t> analysis_mask_runs(std::string_view options);

// ---- co-activation sources (the `source` key of the co-activation tables, docs/schema.md) ----

// "wanda/u50", "sparsegpt/2-4": the rows of a prune run's masks.
std::string mask_source_key(PruneMethod method, const SparsityTarget& target);
// "activations/down_in": the activation bitsets at one observation point.
std::string activation_source_key(ObsPoint point);
// The method and target of a mask_source_key; nullopt for any other key.
std::optional<MaskFileIdentity> parse_mask_source_key(std::string_view key);

// ---- a pruned folder (`sparsa prune --out DIR`) ----

// One "matrices" entry of summary.json: a pruned linear.
struct PrunedMatrixSummary {
  std::string name;      // HF module name
  int64_t layer = 0;
  std::string role;      // the role's short name: "q", "k", ..., "down" (RoleInfo::short_name)
  int64_t rows = 0, cols = 0;  // the weight's shape [out, in]
  int64_t pruned = 0;    // pruned weights
  double seconds = 0;    // selection / update time
};

// Seconds of the stages of a prune command; unset = not recorded.
struct PruneStageSeconds {
  std::optional<double> load, forward, stats, select, total, save;
};

// What summary.json records. Reading is lenient with folders written by older versions: a field
// that is absent keeps its default here (and `run` stays unset before runs were recorded).
struct PruneSummary {
  std::string version;   // the sparsa that wrote it (read only: writing records this build's)
  std::string model;     // the pruned source folder (absolute, normalised)
  std::optional<PruneMethod> method;
  std::optional<SparsityTarget> target;
  double overall_sparsity = 0;  // pruned / total weights over every matrix
  std::vector<PrunedMatrixSummary> matrices;  // layer-major
  PruneStageSeconds timings;
  nlohmann::ordered_json calibration;  // the calibration set's description (Calibration::description); null for none
  int64_t blocksize = 0;
  double percdamp = 0;
  std::string dtype;            // the written checkpoint's weight dtype ("keep", "float32", ...)
  int threads = 0;              // CPU threads used
  CheckpointWriteInfo checkpoint;
  int64_t restored_blocks = 0, pruned_blocks = 0;  // blocks restored from a resumed run / pruned now
  std::optional<RunInfo> run;   // the prune run (kind kPrune; mask_file not recorded)
  nlohmann::json device;        // device fields merged into the top level, e.g. {"device": "cpu"}
};

// {"load", "forward", "stats", "select", "total", "save"} (null when unset), as summary.json and
// `sparsa prune --json` write them.
nlohmann::ordered_json stage_seconds_json(const PruneStageSeconds& t);

// The summary fields of a pruning result: the matrices (and overall sparsity) of `r` and its
// timings; the caller fills the rest.
PruneSummary summarize_prune(const PruneResult& r);

// {"type": "unstructured", "sparsity", "label"} or {"type": "n:m", "n", "m", "sparsity", "label"}:
// a target as summary.json and `sparsa prune --json` write it.
nlohmann::ordered_json target_json(const SparsityTarget& t);

// A `sparsa prune` output folder: the checkpoint, masks.safetensors and summary.json.
class PrunedFolder {
 public:
  explicit PrunedFolder(std::filesystem::path dir) : dir_(std::move(dir)) {}

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path mask_file() const;     // DIR/masks.safetensors
  std::filesystem::path summary_file() const;  // DIR/summary.json
  // True when both the masks and the summary exist (a finished folder).
  bool is_finished() const;

  // Writes summary.json atomically (2-space indented JSON, keys in a fixed order). Error(kRuntime)
  // on I/O failure.
  void write_summary(const PruneSummary& s) const;
  // Reads summary.json. Error(kBadInput) naming the file when it is missing, not JSON, not an
  // object, or its "run" / target / method are malformed.
  PruneSummary read_summary() const;

 private:
  std::filesystem::path dir_;
};

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

// A task's scores: its task_scores row and a task_choices row per choice of every item.
void add_task_rows(RunWriter& w, const TaskScore& s);

// {"task", "n", "acc", "acc_stderr", "acc_norm", "acc_norm_stderr" (null below 2 items), "chance",
// "truncated", "forwards", "tokens", "seconds"}, and with `items` the per-item scores "items":
// [{"index", "line", "id", "gold", "pred", "pred_norm", "acc", "acc_norm", "truncated", "choices":
// [{"loglik", "tokens", "chars", "greedy", "truncated"}]}] (`sparsa eval --task --json`).
nlohmann::json task_score_json(const TaskScore& s, bool items);

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
// target, model) or, lacking it, its name (parse_mask_file_name: the study's and goldens').
// Identities that cannot name their calibration carry "source=<canonical path>" in options, so
// distinct files never share a run. info.mask_file is the canonical path of the mask file.
// Error(kBadInput) for an unreadable summary.json.
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
