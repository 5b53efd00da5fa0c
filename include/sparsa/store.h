// sparsa/store.h — the results of a study in one DuckDB file (schema: docs/schema.md).
//
// A Store is an open database file. Results are written run by run: Store::begin_run() starts
// a RunWriter, which is ONE DuckDB transaction; its add_*() calls append rows (bulk rows go
// through DuckDB's appender) and commit() makes the whole run visible at once. A RunWriter
// destroyed without commit() — an exception, a crash, SIGKILL — leaves no row of its run
// behind, so a study killed half-way can be rerun: find_run() says which runs already exist.
//
// Modes: kReadWrite creates the file when absent and migrates an older schema to the current
// one; kReadOnly never changes the file; kSandboxed is kReadOnly and, in addition, SQL cannot
// reach any other file (no COPY, ATTACH, INSTALL, read_csv(...)): the mode for serving
// untrusted queries (the dashboard).
//
// Errors: a file that is not a DuckDB database, a database of a newer schema version, an
// older one opened read-only, and bad SQL given to query_json throw Error(kBadInput); a
// failure of DuckDB while reading or writing (a lock held by another process, a full disk)
// throws Error(kRuntime). Messages are one line and name the database file.
//
// Thread safety: a Store may be used from many threads at once (begin_run, find_run,
// query_json and export_parquet each use their own DuckDB connection). A RunWriter belongs to
// one thread at a time. Several RunWriters may be open at once; they are independent
// transactions. Open a file once per process and share the Store (DuckDB locks the file: a
// second read-write open, in this process or another, fails with Error(kRuntime)).
// Ownership: the Store must outlive every RunWriter it started.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"

namespace sparsa {

// The schema version this build writes (sparsa_meta.schema_version); see docs/schema.md.
inline constexpr int kStoreSchemaVersion = 6;

enum class RunKind : uint8_t { kDense, kPrune, kActs, kCompare, kAnalysis, kBench };
std::string_view run_kind_name(RunKind k);  // "dense", "prune", "acts", "compare", "analysis", "bench"

// (Every member of the structs below has an initializer, so designated initializers may skip
// any of them without -Wmissing-field-initializers warnings.)

// What a run is. Everything but the free-text descriptions identifies it: two RunInfos with
// the same run_key() describe the same computation (resume: Store::find_run).
struct RunInfo {
  RunKind kind = RunKind::kPrune;
  std::string model_name{};       // e.g. "tiny-llama-15m"
  std::string model_path{};       // as given on the command line
  std::string architecture{};     // e.g. "llama", "opt"
  std::string method{};           // "magnitude", "wanda", "sparsegpt"; empty when none
  std::optional<SparsityTarget> target{};  // the pruning target; none for dense / acts / bench
  std::string calib_description{};  // human-readable, e.g. "tokens.safetensors:calib [128, 512]"
  std::string calib_hash{};       // token_hash() of the calibration token ids; empty when none
  int64_t nsamples = 0;           // calibration samples (0 = none)
  int64_t seqlen = 0;             // calibration / evaluation window length (0 = none)
  std::string device = "cpu";
  std::string options{};          // other settings that change results, e.g. "blocksize=128 percdamp=0.01"
  // Where a prune run's masks were written (a mask .safetensors file, absolute); empty when
  // unknown. Not part of the identity: the same computation may be stored in several places.
  std::filesystem::path mask_file{};
};
// The identity of a run: kind, model path, method, target label, calibration hash, nsamples,
// seqlen and options joined into one string (stored in runs.run_key).
std::string run_key(const RunInfo& info);

// "fnv1a64:<16 hex digits>" of the token ids (their little-endian int32 bytes): identifies a
// calibration set without storing it.
std::string token_hash(std::span<const int32_t> tokens);

// Layer and component of a linear's HF module name: "model.layers.3.mlp.down_proj" ->
// {3, "mlp.down_proj"}; also "model.decoder.layers.N.fc1" (OPT). Error(kBadInput) otherwise.
struct MatrixName {
  int64_t layer = 0;
  std::string component{};
};
MatrixName parse_matrix_name(std::string_view hf_name);

// ---- rows ----

struct RunTimings {  // seconds; unset = not measured (NULL)
  std::optional<double> total{}, forward{}, stats{}, select{}, eval{};
};

struct MatrixRow {          // one pruned linear
  std::string hf_name{};    // "model.layers.3.mlp.down_proj" (layer, component derived)
  int64_t rows = 0, cols = 0;  // the weight's shape [out, in]
  double sparsity = 0;      // achieved fraction of pruned weights
  double seconds = 0;       // time spent selecting / updating this matrix
};

enum class PplKind : uint8_t { kDense, kPruned, kActSparsified };  // "dense", "pruned", "act-sparsified"
struct PerplexityRow {
  std::string dataset{};               // e.g. "persuasion"
  PplKind kind = PplKind::kDense;
  std::optional<double> act_sparsity{};  // target activation sparsity (kActSparsified only)
  double ppl = 0;
  int64_t tokens = 0;                  // tokens evaluated
  double seconds = 0;
};

enum class FeatureAxis : uint8_t { kRow, kCol };  // "row" = output feature, "col" = input feature
// Which mask a batch of per-feature rows describes.
struct FeatureMetricsOf {
  std::string hf_name{};              // the matrix
  FeatureAxis axis = FeatureAxis::kRow;
  std::optional<int64_t> mask_run{};  // the run whose mask is described (default: this run)
  std::optional<int64_t> other_run{};  // the run compared against, when jaccard/hamming/cosine are set
};
struct FeatureMetric {
  int64_t feature = 0;        // row or column index
  int64_t pruned = 0;         // pruned weights in this row / column
  double kept_fraction = 0;   // 1 - pruned / length
  // vs the other run's same row / column, as `sparsa compare` defines them (mask_compare.h)
  std::optional<double> jaccard{}, hamming{}, cosine{};
};

struct ComparisonRow {      // one matrix, two masks
  int64_t run_a = 0, run_b = 0;
  std::string hf_name{};    // (layer, component derived)
  double jaccard = 0;       // Jaccard index of the masks, as `sparsa compare` defines it
  double hamming = 0;       // fraction of entries where the masks differ
  std::optional<double> cosine{};  // cosine similarity as `sparsa compare` defines it; unset = NULL
  double sparsity_a = 0, sparsity_b = 0;
};

struct ActThresholdRow {
  int64_t layer = 0;
  ObsPoint point = ObsPoint::kAttnIn;
  double target_sparsity = 0;  // fraction of |x| at or below the threshold
  double threshold = 0;
};

// What one co-activation source of a run is (table cluster_sources): `source` is the short key the
// co-activation tables use (sparsa/runs.h: "wanda/u50", "activations/down_in"), `layer` the block
// whose features were clustered, `description` the sentence a reader sees.
struct ClusterSourceRow {
  std::string source{};
  int64_t layer = 0;
  std::string hf_name{};      // the matrix, for a mask; empty = NULL
  std::string description{};  // e.g. "wanda u50 model.layers.3.mlp.up_proj rows"
};

struct ClusterSummary {     // one k-means clustering of the features of one source
  std::string source{};     // the source's key, e.g. "wanda/u50" (ClusterSourceRow)
  std::string hf_name{};    // the matrix, when the source is one; empty = NULL
  int64_t k = 0;
  uint64_t seed = 0;
  double objective = 0;     // k-means objective (sum of squared distances to the centres)
  double within = 0;        // mean within-cluster distance
  double between = 0;       // mean between-cluster distance
  double separation_ratio = 0;  // between / within
  std::optional<double> ari{};  // adjusted Rand index vs the same clustering of reference_run
  std::optional<int64_t> reference_run{};
};

struct TsnePoint {
  int64_t feature = 0;
  double x = 0, y = 0;
};

enum class CoherenceOrdering : uint8_t { kNatural, kCluster };  // "natural", "cluster"
struct CoherenceRow {
  std::string source{};
  CoherenceOrdering ordering = CoherenceOrdering::kNatural;
  std::optional<int64_t> analysis_id{};  // the clustering that orders the features (kCluster)
  int64_t block_size = 0;
  double fraction = 0;                 // fraction of blocks that are coherent
};

struct BenchmarkRow {
  std::string name{};       // e.g. "gemv_sparse_act"
  std::string shape{};      // e.g. "4096x11008"
  std::string dtype{};      // e.g. "bf16"
  double sparsity = 0;
  double microseconds = 0;
  std::optional<double> baseline_microseconds{};  // the dense baseline of the same shape
  std::string machine{};    // e.g. "NVIDIA H200"
};

// The bytes model (sparsa/bytes_model.h) at one activation sparsity and block size, for one block
// of the model or (layer unset) the whole model. Fractions are of the weights a decode step reads
// per token, averaged over tokens; the writer stores each speed-up bound as 1 / fraction (NULL
// when the fraction is 0).
struct BytesModelRow {
  double act_sparsity = 0;
  int64_t block_rows = 0;
  std::optional<int64_t> layer{};           // unset (NULL): the whole model
  int64_t tokens = 0;                       // tokens the fractions are averaged over
  int64_t mlp_params = 0;                   // MLP weights (elements) of the block / of the model
  std::optional<int64_t> decode_params{};   // every weight a dense decode step reads (whole model only)
  double mlp_in_fraction = 0;               // of the gate/up (fc1) weights
  double down_in_fraction = 0;              // of the down (fc2) weights
  double mlp_fraction = 0;                  // of the MLP weights
  std::optional<double> decode_fraction{};  // of everything a decode step reads (whole model only)
};

struct TaskScoreRow {        // one zero-shot task of a run (sparsa/tasks.h)
  std::string task{};       // the task's name (its file's stem)
  int64_t items = 0;
  double acc = 0, acc_norm = 0;
  std::optional<double> acc_stderr{}, acc_norm_stderr{};  // unset (NULL) below 2 items
  double chance = 0;        // mean of 1 / choices
  int64_t truncated = 0;    // items whose context was cut to the model's context
  double seconds = 0;
};
struct TaskChoiceRow {      // one choice of one item
  int64_t item = 0;         // 0-based, in file order
  std::string item_id{};    // the item's "id"; empty = NULL
  int64_t choice = 0;       // 0-based
  bool gold = false;
  double loglik = 0;        // summed log-probability of the choice's tokens
  int64_t tokens = 0, chars = 0;
  bool greedy = false, truncated = false;
};

// A cluster-quality statistic of one source against its permutation null model
// (sparsa/coactivation.h cluster_null_model). Non-finite numbers are stored as NULL.
struct ClusterNullRow {
  int64_t layer = 0;         // the block whose features were clustered
  std::string source{};      // the source's key, as cluster_summary.source
  int64_t k = 0;
  std::string metric{};      // "separation_ratio" or "ari"
  double observed = 0;
  double null_mean = 0, null_sd = 0, null_lo = 0, null_hi = 0;  // over the shuffles (lo/hi: min/max)
  double p_value = 1;        // one-sided permutation p-value
  double z = 0;              // (observed - null_mean) / null_sd
  int64_t shuffles = 0;
};
// One k-means clustering of a reference feature's Hamming neighbourhood (the seed's procedure).
struct NeighbourClusterRow {
  int64_t layer = 0;
  std::string source{};
  int64_t reference_feature = 0;
  int64_t k = 0;
  int64_t size = 0;          // features in the neighbourhood (the reference included)
  double separation_ratio = 0, within = 0, between = 0, objective = 0;  // non-finite: NULL
};

class Store;

// One run being written: one open DuckDB transaction on its own connection. Rows become
// visible to others only at commit(). Any add_*() failure (a constraint, DuckDB error) throws
// Error(kRuntime) and leaves the writer unusable; destroying an uncommitted writer rolls back.
class RunWriter {
 public:
  RunWriter(RunWriter&&) noexcept;
  RunWriter& operator=(RunWriter&&) noexcept;
  ~RunWriter();  // rolls back unless committed

  int64_t run_id() const;

  void add_matrix(const MatrixRow& row);
  void add_perplexity(const PerplexityRow& row);
  void add_feature_metrics(const FeatureMetricsOf& of, std::span<const FeatureMetric> rows);
  void add_comparisons(std::span<const ComparisonRow> rows);
  void add_act_thresholds(std::span<const ActThresholdRow> rows);
  // One histogram: bin i counts values in [edges[i], edges[i + 1]). edges: [n + 1], counts: [n].
  void add_act_histogram(int64_t layer, ObsPoint point, std::span<const double> edges,
                         std::span<const int64_t> counts);
  // Stores a clustering and its assignment (assignment[f] = cluster of feature f, in [0, k));
  // returns its analysis_id.
  void add_cluster_source(const ClusterSourceRow& row);
  int64_t add_clustering(const ClusterSummary& summary, std::span<const int32_t> assignment);
  void add_tsne(std::string_view source, std::span<const TsnePoint> points);
  void add_coherence(std::span<const CoherenceRow> rows);
  void add_benchmarks(std::span<const BenchmarkRow> rows);
  void add_bytes_model(std::span<const BytesModelRow> rows);
  // One task's scores and the rows of its choices (task_scores, task_choices).
  void add_task_scores(const TaskScoreRow& score, std::span<const TaskChoiceRow> choices);
  void add_cluster_null(std::span<const ClusterNullRow> rows);
  void add_neighbour_clusters(std::span<const NeighbourClusterRow> rows);
  void set_timings(const RunTimings& t);

  // Marks the run complete (finished_at = now), creates the per-feature views of a prune
  // run's method and target when absent (docs/schema.md, "Views") and commits. Throws Error(kRuntime) when DuckDB refuses;
  // the run is then rolled back.
  void commit();

 private:
  friend class Store;
  struct Impl;
  explicit RunWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Limits on one query_json / query_json_text call.
struct QueryLimits {
  int64_t max_rows = 10000;   // rows returned; "truncated": true when there were more
  double max_seconds = 10.0;  // wall-clock limit; the query is interrupted past it
  size_t max_bytes = 0;       // query_json_text only: the largest answer in bytes; 0 = no limit
};

// query_json_text's answer would pass QueryLimits::max_bytes (a kBadInput Error, so callers that
// do not tell it apart treat it as any refused query).
class QueryTooLarge : public Error {
 public:
  explicit QueryTooLarge(std::string message) : Error(ErrorKind::kBadInput, std::move(message)) {}
};

// DuckDB's resources for one open database, shared by all its connections (queries).
struct StoreResources {
  size_t memory_limit_bytes = 0;  // DuckDB's memory_limit; 0 = DuckDB's default (80 % of RAM)
  int threads = 0;                // DuckDB's worker threads; 0 = DuckDB's default (all cores)
  // kSandboxed spills nothing to disk (DuckDB's temp_directory off), so a query that needs more
  // than memory_limit_bytes fails with Error(kBadInput) instead of writing files.
};

class Store {
 public:
  enum class Mode { kReadWrite, kReadOnly, kSandboxed };

  // `resources` bounds DuckDB's memory and threads (default: DuckDB's own defaults).
  static std::unique_ptr<Store> open(const std::filesystem::path& path, Mode mode,
                                     const StoreResources& resources = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const;
  Mode mode() const;
  int schema_version() const;  // always kStoreSchemaVersion once open

  // Starts a run (a transaction) and inserts its runs row. Error(kBadInput) in a read-only mode.
  RunWriter begin_run(const RunInfo& info);

  // The newest committed run with the same run_key(info), if any.
  std::optional<int64_t> find_run(const RunInfo& info) const;

  // Runs ONE read-only statement (SELECT, WITH ... SELECT, EXPLAIN) and returns
  // {"columns": [names], "types": [DuckDB type names], "rows": [[values], ...],
  //  "truncated": bool, "seconds": s}. Values: numbers, strings, booleans, null (NaN and ±inf
  // too); DATE / TIMESTAMP as ISO strings; columns of other types (LIST, STRUCT, BLOB, ...)
  // must be cast to VARCHAR. Any other statement, SQL errors and the time limit throw
  // Error(kBadInput) with DuckDB's message.
  nlohmann::json query_json(std::string_view sql, const QueryLimits& limits = {}) const;
  // query_json's answer as JSON text (NaN and ±inf as null), serialized row by row as DuckDB
  // streams them, so no more than about limits.max_bytes is ever held: QueryTooLarge as soon as
  // the text would pass limits.max_bytes (when not 0). Other errors as query_json.
  std::string query_json_text(std::string_view sql, const QueryLimits& limits = {}) const;

  // Writes every table of the schema to DIR/<table>.parquet plus DIR/manifest.json
  // ({"schema_version", "tables": {name: rows}}) and DIR/sparsa-export.json ({"tool": "sparsa",
  // "version", "files": [the files written]}). The files are made in a temporary sibling folder
  // and moved into DIR when complete: as a whole when DIR is absent or empty, else one by one,
  // sparsa-export.json last. Only files that an earlier export's sparsa-export.json (or, for an
  // export by an older version, its manifest.json) names are replaced, or deleted when this
  // export no longer writes them; other files in DIR are left alone, and one whose name this
  // export needs is refused with Error(kBadInput). Not available in kSandboxed mode.
  // Returns the row count per table.
  std::vector<std::pair<std::string, int64_t>> export_parquet(const std::filesystem::path& dir) const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparsa
