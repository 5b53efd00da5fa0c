// RunWriter: one run written in one DuckDB transaction, bulk rows through appenders.
#include <cmath>
#include <chrono>
#include <limits>
#include <map>

#include "sparsa/error.h"
#include "sparsa/store.h"
#include "store/schema.h"
#include "store/store_impl.h"

namespace sparsa {
namespace {

int64_t now_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int32_t as_int32(int64_t v, std::string_view what) {
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    bad_input("{} {} does not fit the database's INTEGER column", what, v);
  return static_cast<int32_t>(v);
}

std::string_view ppl_kind_name(PplKind k) {
  switch (k) {
    case PplKind::kDense: return "dense";
    case PplKind::kPruned: return "pruned";
    case PplKind::kActSparsified: return "act-sparsified";
  }
  SPARSA_ASSERT(false);
  return {};
}

}  // namespace

struct RunWriter::Impl {
  Impl(const store::Database& db, RunInfo i) : con(db), info(std::move(i)) {}

  // The open appender of `table` (created on first use; all are flushed by commit()).
  store::Appender& appender(const std::string& table) {
    auto& slot = appenders[table];
    if (!slot) slot = std::make_unique<store::Appender>(con, table);
    return *slot;
  }
  void close_appenders() {
    for (auto& [table, app] : appenders) app->close();
    appenders.clear();
  }
  // Error(kRuntime) unless `run` is a committed run or this one.
  void require_run(int64_t run, std::string_view role) {
    if (run == run_id) return;
    store::Prepared find(con, "SELECT count(*) FROM runs WHERE run_id = $1 AND status = 'complete'");
    if (find.bind(1, run).run("looking up a run").scalar_int().value_or(0) == 0)
      runtime_failure("{}: {} {} is not a committed run", con.path(), role, run);
  }
  void check_open() const { SPARSA_ASSERT(!finished); }

  // Column `col` of `sql` (one $1 parameter: this run's id) as text, NULL as "".
  std::vector<std::string> text_column(const char* sql, idx_t col) {
    store::Prepared q(con, sql);
    store::Result r = q.bind(1, run_id).run("reading the run's rows");
    std::vector<std::string> out;
    for (idx_t row = 0; row < duckdb_row_count(&r.raw()); ++row) {
      char* v = duckdb_value_varchar(&r.raw(), col, row);
      out.emplace_back(v != nullptr ? v : "");
      duckdb_free(v);
    }
    return out;
  }

  // The per-feature comparison views of every (run_a, run_b) pair this compare run holds whose
  // runs have a method and a target.
  void create_comparison_views() {
    const char* pairs =
        "SELECT DISTINCT ra.method, ra.structure, rb.method, rb.structure FROM comparisons c JOIN runs ra ON ra.run_id = "
        "c.run_a JOIN runs rb ON rb.run_id = c.run_b WHERE c.run_id = $1 AND ra.method IS NOT NULL AND rb.method IS NOT "
        "NULL AND ra.structure IS NOT NULL AND rb.structure IS NOT NULL ORDER BY 1, 2, 3, 4";
    const std::vector<std::string> ma = text_column(pairs, 0), sa = text_column(pairs, 1), mb = text_column(pairs, 2),
                                   sb = text_column(pairs, 3);
    const std::vector<std::string> components =
        text_column("SELECT DISTINCT component FROM comparisons WHERE run_id = $1 ORDER BY 1", 0);
    for (size_t i = 0; i < ma.size(); ++i)
      store::create_comparison_views(con, ma[i], parse_target_label(sa[i]), mb[i], parse_target_label(sb[i]),
                                     components);
  }

  store::Connection con;
  RunInfo info;
  int64_t run_id = 0;
  RunTimings timings;
  std::map<std::string, std::unique_ptr<store::Appender>> appenders;
  bool finished = false;  // committed (or given up after a failed commit)
};

RunWriter::RunWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RunWriter::RunWriter(RunWriter&&) noexcept = default;
RunWriter& RunWriter::operator=(RunWriter&& other) noexcept {
  if (this != &other) {
    RunWriter abandoned(std::move(*this));  // rolls this run back
    impl_ = std::move(other.impl_);
  }
  return *this;
}

RunWriter::~RunWriter() {
  if (!impl_ || impl_->finished) return;
  impl_->appenders.clear();
  impl_->con.query("ROLLBACK");  // nothing of this run remains
}

int64_t RunWriter::run_id() const { return impl_->run_id; }

void RunWriter::add_matrix(const MatrixRow& row) {
  impl_->check_open();
  const MatrixName name = parse_matrix_name(row.hf_name);
  impl_->appender("matrices")
      .add(impl_->run_id)
      .add(std::string_view(row.hf_name))
      .add(as_int32(name.layer, "layer"))
      .add(std::string_view(name.component))
      .add(row.rows)
      .add(row.cols)
      .add(row.sparsity)
      .add(row.seconds)
      .end_row();
}

void RunWriter::add_perplexity(const PerplexityRow& row) {
  impl_->check_open();
  impl_->appender("perplexities")
      .add(impl_->run_id)
      .add(std::string_view(row.dataset))
      .add(ppl_kind_name(row.kind))
      .add(row.act_sparsity)
      .add(row.ppl)
      .add(row.tokens)
      .add(row.seconds)
      .end_row();
}

void RunWriter::add_feature_metrics(const FeatureMetricsOf& of, std::span<const FeatureMetric> rows) {
  impl_->check_open();
  const int64_t mask_run = of.mask_run.value_or(impl_->run_id);
  impl_->require_run(mask_run, "mask run");
  if (of.other_run) impl_->require_run(*of.other_run, "other run");
  const std::string_view axis = of.axis == FeatureAxis::kRow ? "row" : "col";
  store::Appender& app = impl_->appender("feature_metrics");
  for (const FeatureMetric& f : rows) {
    app.add(impl_->run_id)
        .add(mask_run)
        .add(std::string_view(of.hf_name))
        .add(axis)
        .add(as_int32(f.feature, "feature"))
        .add(f.pruned)
        .add(f.kept_fraction)
        .add(of.other_run)
        .add(f.jaccard)
        .add(f.hamming)
        .add(f.cosine)
        .end_row();
  }
}

void RunWriter::add_comparisons(std::span<const ComparisonRow> rows) {
  impl_->check_open();
  store::Appender& app = impl_->appender("comparisons");
  for (const ComparisonRow& c : rows) {
    const MatrixName name = parse_matrix_name(c.hf_name);
    app.add(impl_->run_id)
        .add(c.run_a)
        .add(c.run_b)
        .add(std::string_view(c.hf_name))
        .add(as_int32(name.layer, "layer"))
        .add(std::string_view(name.component))
        .add(c.jaccard)
        .add(c.hamming)
        .add(c.cosine)
        .add(c.sparsity_a)
        .add(c.sparsity_b)
        .end_row();
  }
}

void RunWriter::add_act_thresholds(std::span<const ActThresholdRow> rows) {
  impl_->check_open();
  store::Appender& app = impl_->appender("act_thresholds");
  for (const ActThresholdRow& t : rows) {
    app.add(impl_->run_id)
        .add(as_int32(t.layer, "layer"))
        .add(obs_point_name(t.point))
        .add(t.target_sparsity)
        .add(t.threshold)
        .end_row();
  }
}

void RunWriter::add_act_histogram(int64_t layer, ObsPoint point, std::span<const double> edges,
                                  std::span<const int64_t> counts) {
  impl_->check_open();
  SPARSA_ASSERT(edges.size() == counts.size() + 1);
  store::Appender& app = impl_->appender("act_histograms");
  const int32_t layer32 = as_int32(layer, "layer");
  for (size_t bin = 0; bin < counts.size(); ++bin) {
    app.add(impl_->run_id)
        .add(layer32)
        .add(obs_point_name(point))
        .add(static_cast<int32_t>(bin))
        .add(edges[bin])
        .add(edges[bin + 1])
        .add(counts[bin])
        .end_row();
  }
}

void RunWriter::add_cluster_source(const ClusterSourceRow& r) {
  impl_->check_open();
  store::Appender& app = impl_->appender("cluster_sources");
  app.add(impl_->run_id).add(std::string_view(r.source)).add(as_int32(r.layer, "layer"));
  if (r.hf_name.empty()) app.add_null(); else app.add(std::string_view(r.hf_name));
  app.add(std::string_view(r.description)).end_row();
}

int64_t RunWriter::add_clustering(const ClusterSummary& s, std::span<const int32_t> assignment) {
  impl_->check_open();
  for (int32_t c : assignment) SPARSA_ASSERT(c >= 0 && c < s.k);
  if (s.reference_run) impl_->require_run(*s.reference_run, "reference run");
  store::Prepared insert(impl_->con,
                         "INSERT INTO cluster_summary VALUES (nextval('analysis_id_seq'), $1, $2, $3, $4, $5, $6, $7, "
                         "$8, $9, $10, $11) RETURNING analysis_id");
  insert.bind(1, impl_->run_id)
      .bind(2, std::string_view(s.source))
      .bind_text_or_null(3, s.hf_name)
      .bind(4, s.k)
      .bind(5, s.seed)
      .bind(6, s.objective)
      .bind(7, s.within)
      .bind(8, s.between)
      .bind(9, s.separation_ratio)
      .bind(10, s.ari)
      .bind(11, s.reference_run);
  const int64_t analysis_id = insert.run("storing a clustering").scalar_int().value();
  store::Appender& app = impl_->appender("clusters");
  for (size_t f = 0; f < assignment.size(); ++f)
    app.add(analysis_id).add(as_int32(static_cast<int64_t>(f), "feature")).add(assignment[f]).end_row();
  return analysis_id;
}

void RunWriter::add_tsne(std::string_view source, std::span<const TsnePoint> points) {
  impl_->check_open();
  store::Appender& app = impl_->appender("tsne");
  for (const TsnePoint& p : points)
    app.add(impl_->run_id).add(source).add(as_int32(p.feature, "feature")).add(p.x).add(p.y).end_row();
}

void RunWriter::add_coherence(std::span<const CoherenceRow> rows) {
  impl_->check_open();
  store::Appender& app = impl_->appender("coherence");
  for (const CoherenceRow& c : rows) {
    app.add(impl_->run_id)
        .add(std::string_view(c.source))
        .add(std::string_view(c.ordering == CoherenceOrdering::kNatural ? "natural" : "cluster"))
        .add(c.analysis_id)
        .add(as_int32(c.block_size, "block size"))
        .add(c.fraction)
        .end_row();
  }
}

void RunWriter::add_benchmarks(std::span<const BenchmarkRow> rows) {
  impl_->check_open();
  store::Appender& app = impl_->appender("benchmarks");
  for (const BenchmarkRow& b : rows) {
    app.add(impl_->run_id)
        .add(std::string_view(b.name))
        .add(std::string_view(b.shape))
        .add(std::string_view(b.dtype))
        .add(b.sparsity)
        .add(b.microseconds)
        .add(b.baseline_microseconds)
        .add(std::string_view(b.machine))
        .end_row();
  }
}

void RunWriter::add_bytes_model(std::span<const BytesModelRow> rows) {
  impl_->check_open();
  const auto inverse = [](std::optional<double> f) { return f && *f > 0 ? std::optional<double>(1.0 / *f) : std::nullopt; };
  store::Appender& app = impl_->appender("bytes_model");
  for (const BytesModelRow& b : rows) {
    std::optional<int32_t> layer;
    if (b.layer) layer = as_int32(*b.layer, "layer");
    app.add(impl_->run_id)
        .add(b.act_sparsity)
        .add(as_int32(b.block_rows, "block size"))
        .add(layer)
        .add(b.tokens)
        .add(b.mlp_params)
        .add(b.decode_params)
        .add(b.mlp_in_fraction)
        .add(b.down_in_fraction)
        .add(b.mlp_fraction)
        .add(inverse(b.mlp_fraction))
        .add(b.decode_fraction)
        .add(inverse(b.decode_fraction))
        .end_row();
  }
}

void RunWriter::add_task_scores(const TaskScoreRow& s, std::span<const TaskChoiceRow> choices) {
  impl_->check_open();
  impl_->appender("task_scores")
      .add(impl_->run_id)
      .add(std::string_view(s.task))
      .add(s.items)
      .add(s.acc)
      .add(s.acc_stderr)
      .add(s.acc_norm)
      .add(s.acc_norm_stderr)
      .add(s.chance)
      .add(s.truncated)
      .add(s.seconds)
      .end_row();
  store::Appender& app = impl_->appender("task_choices");
  for (const TaskChoiceRow& c : choices) {
    app.add(impl_->run_id).add(std::string_view(s.task)).add(as_int32(c.item, "item"));
    if (c.item_id.empty()) app.add_null(); else app.add(std::string_view(c.item_id));
    app.add(as_int32(c.choice, "choice"))
        .add(c.gold)
        .add(c.loglik)
        .add(c.tokens)
        .add(c.chars)
        .add(c.greedy)
        .add(c.truncated)
        .end_row();
  }
}

namespace {
std::optional<double> finite_or_null(double v) { return std::isfinite(v) ? std::optional<double>(v) : std::nullopt; }
}  // namespace

void RunWriter::add_cluster_null(std::span<const ClusterNullRow> rows) {
  impl_->check_open();
  store::Appender& app = impl_->appender("cluster_null");
  for (const ClusterNullRow& r : rows) {
    app.add(impl_->run_id)
        .add(as_int32(r.layer, "layer"))
        .add(std::string_view(r.source))
        .add(as_int32(r.k, "k"))
        .add(std::string_view(r.metric))
        .add(finite_or_null(r.observed))
        .add(finite_or_null(r.null_mean))
        .add(finite_or_null(r.null_sd))
        .add(finite_or_null(r.null_lo))
        .add(finite_or_null(r.null_hi))
        .add(r.p_value)
        .add(finite_or_null(r.z))
        .add(as_int32(r.shuffles, "shuffles"))
        .end_row();
  }
}

void RunWriter::add_neighbour_clusters(std::span<const NeighbourClusterRow> rows) {
  impl_->check_open();
  store::Appender& app = impl_->appender("neighbour_clusters");
  for (const NeighbourClusterRow& r : rows) {
    app.add(impl_->run_id)
        .add(as_int32(r.layer, "layer"))
        .add(std::string_view(r.source))
        .add(as_int32(r.reference_feature, "reference feature"))
        .add(as_int32(r.k, "k"))
        .add(as_int32(r.size, "neighbourhood size"))
        .add(finite_or_null(r.separation_ratio))
        .add(finite_or_null(r.within))
        .add(finite_or_null(r.between))
        .add(r.objective)
        .end_row();
  }
}

void RunWriter::set_timings(const RunTimings& t) {
  impl_->check_open();
  impl_->timings = t;
}

void RunWriter::commit() {
  Impl& w = *impl_;
  w.check_open();
  w.close_appenders();
  store::Prepared finish(w.con,
                         "UPDATE runs SET status = 'complete', finished_at = $1, seconds_total = $2, "
                         "seconds_forward = $3, seconds_stats = $4, seconds_select = $5, seconds_eval = $6 "
                         "WHERE run_id = $7");
  finish.bind_timestamp_us(1, now_micros())
      .bind(2, w.timings.total)
      .bind(3, w.timings.forward)
      .bind(4, w.timings.stats)
      .bind(5, w.timings.select)
      .bind(6, w.timings.eval)
      .bind(7, w.run_id)
      .run("finishing the run");
  if (w.info.kind == RunKind::kPrune && !w.info.method.empty() && w.info.target)
    store::create_feature_views(w.con, w.info.method, *w.info.target,
                                w.text_column("SELECT DISTINCT component FROM matrices WHERE run_id = $1 ORDER BY 1", 0));
  if (w.info.kind == RunKind::kCompare) w.create_comparison_views();
  w.con.exec("COMMIT", "committing the run");
  w.finished = true;
}

// ---- Store::begin_run ----

RunWriter Store::begin_run(const RunInfo& info) {
  if (impl_->mode != Mode::kReadWrite) bad_input("{}: opened read-only, cannot write a run", impl_->path.string());
  RunWriter writer(std::make_unique<RunWriter::Impl>(impl_->db, info));
  RunWriter::Impl& w = *writer.impl_;
  w.con.exec("BEGIN TRANSACTION", "starting a run");
  store::Prepared insert(w.con,
                         "INSERT INTO runs (run_id, run_key, kind, model_name, model_path, architecture, method, "
                         "sparsity, nm_n, nm_m, structure, calib_description, calib_hash, nsamples, seqlen, device, "
                         "options, tool_version, started_at, status, mask_file) VALUES (nextval('run_id_seq'), $1, $2, $3, "
                         "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 'running', $19) "
                         "RETURNING run_id");
  const std::optional<SparsityTarget>& t = info.target;
  insert.bind(1, std::string_view(run_key(info)))
      .bind(2, run_kind_name(info.kind))
      .bind_text_or_null(3, info.model_name)
      .bind_text_or_null(4, info.model_path)
      .bind_text_or_null(5, info.architecture)
      .bind_text_or_null(6, info.method)
      .bind(7, t ? std::optional<double>(t->fraction()) : std::nullopt)
      .bind(8, t && t->is_nm() ? std::optional<int64_t>(t->n) : std::nullopt)
      .bind(9, t && t->is_nm() ? std::optional<int64_t>(t->m) : std::nullopt)
      .bind_text_or_null(10, t ? t->label() : std::string())
      .bind_text_or_null(11, info.calib_description)
      .bind_text_or_null(12, info.calib_hash)
      .bind(13, info.nsamples)
      .bind(14, info.seqlen)
      .bind_text_or_null(15, info.device)
      .bind_text_or_null(16, info.options)
      .bind(17, std::string_view(SPARSA_VERSION))
      .bind_timestamp_us(18, now_micros())
      .bind_text_or_null(19, info.mask_file.string());
  w.run_id = insert.run("starting a run").scalar_int().value();
  return writer;
}

}  // namespace sparsa
