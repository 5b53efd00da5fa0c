#include "store/schema.h"

#include <fmt/format.h>

#include <charconv>

#include "sparsa/error.h"
#include "sparsa/store.h"

namespace sparsa::store {
namespace {

// Version 1: the first schema. Bulk tables (feature_metrics, act_histograms, tsne, clusters)
// keep one foreign key, to their owner, since DuckDB checks each key per appended row.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS sparsa_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE SEQUENCE run_id_seq START 1;
CREATE SEQUENCE analysis_id_seq START 1;
CREATE TABLE runs (
  run_id BIGINT PRIMARY KEY,
  run_key VARCHAR NOT NULL,
  kind VARCHAR NOT NULL CHECK (kind IN ('dense', 'prune', 'acts', 'compare', 'analysis', 'bench')),
  model_name VARCHAR,
  model_path VARCHAR,
  architecture VARCHAR,
  method VARCHAR,
  sparsity DOUBLE,
  nm_n INTEGER,
  nm_m INTEGER,
  structure VARCHAR,
  calib_description VARCHAR,
  calib_hash VARCHAR,
  nsamples BIGINT,
  seqlen BIGINT,
  device VARCHAR,
  options VARCHAR,
  seconds_total DOUBLE,
  seconds_forward DOUBLE,
  seconds_stats DOUBLE,
  seconds_select DOUBLE,
  seconds_eval DOUBLE,
  tool_version VARCHAR NOT NULL,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP,
  status VARCHAR NOT NULL CHECK (status IN ('running', 'complete'))
);
CREATE TABLE matrices (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  hf_name VARCHAR NOT NULL,
  layer INTEGER NOT NULL,
  component VARCHAR NOT NULL,
  rows BIGINT NOT NULL,
  cols BIGINT NOT NULL,
  sparsity DOUBLE NOT NULL,
  seconds DOUBLE,
  PRIMARY KEY (run_id, hf_name)
);
CREATE TABLE perplexities (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  dataset VARCHAR NOT NULL,
  kind VARCHAR NOT NULL CHECK (kind IN ('dense', 'pruned', 'act-sparsified')),
  act_sparsity DOUBLE,
  ppl DOUBLE NOT NULL,
  tokens BIGINT NOT NULL,
  seconds DOUBLE
);
CREATE TABLE feature_metrics (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  mask_run_id BIGINT NOT NULL,
  hf_name VARCHAR NOT NULL,
  axis VARCHAR NOT NULL CHECK (axis IN ('row', 'col')),
  feature INTEGER NOT NULL,
  pruned BIGINT NOT NULL,
  kept_fraction DOUBLE NOT NULL,
  other_run_id BIGINT,
  jaccard DOUBLE,
  hamming DOUBLE,
  cosine DOUBLE
);
CREATE TABLE comparisons (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  run_a BIGINT NOT NULL REFERENCES runs (run_id),
  run_b BIGINT NOT NULL REFERENCES runs (run_id),
  hf_name VARCHAR NOT NULL,
  layer INTEGER NOT NULL,
  component VARCHAR NOT NULL,
  jaccard DOUBLE NOT NULL,
  hamming DOUBLE NOT NULL,
  cosine DOUBLE,
  sparsity_a DOUBLE NOT NULL,
  sparsity_b DOUBLE NOT NULL
);
CREATE TABLE act_thresholds (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  layer INTEGER NOT NULL,
  point VARCHAR NOT NULL CHECK (point IN ('attn_in', 'o_in', 'mlp_in', 'down_in')),
  target_sparsity DOUBLE NOT NULL,
  threshold DOUBLE NOT NULL
);
CREATE TABLE act_histograms (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  layer INTEGER NOT NULL,
  point VARCHAR NOT NULL CHECK (point IN ('attn_in', 'o_in', 'mlp_in', 'down_in')),
  bin INTEGER NOT NULL,
  lo DOUBLE NOT NULL,
  hi DOUBLE NOT NULL,
  count BIGINT NOT NULL
);
CREATE TABLE cluster_summary (
  analysis_id BIGINT PRIMARY KEY,
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  source VARCHAR NOT NULL,
  hf_name VARCHAR,
  k INTEGER NOT NULL,
  seed UBIGINT NOT NULL,
  objective DOUBLE NOT NULL,
  within_distance DOUBLE NOT NULL,
  between_distance DOUBLE NOT NULL,
  separation_ratio DOUBLE NOT NULL,
  ari DOUBLE,
  reference_run_id BIGINT REFERENCES runs (run_id)
);
CREATE TABLE clusters (
  analysis_id BIGINT NOT NULL REFERENCES cluster_summary (analysis_id),
  feature INTEGER NOT NULL,
  cluster INTEGER NOT NULL
);
CREATE TABLE tsne (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  source VARCHAR NOT NULL,
  feature INTEGER NOT NULL,
  x DOUBLE NOT NULL,
  y DOUBLE NOT NULL
);
CREATE TABLE coherence (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  source VARCHAR NOT NULL,
  ordering VARCHAR NOT NULL CHECK (ordering IN ('natural', 'cluster')),
  analysis_id BIGINT REFERENCES cluster_summary (analysis_id),
  block_size INTEGER NOT NULL,
  fraction DOUBLE NOT NULL
);
CREATE TABLE benchmarks (
  run_id BIGINT NOT NULL REFERENCES runs (run_id),
  name VARCHAR NOT NULL,
  shape VARCHAR NOT NULL,
  dtype VARCHAR NOT NULL,
  sparsity DOUBLE NOT NULL,
  microseconds DOUBLE NOT NULL,
  baseline_microseconds DOUBLE,
  machine VARCHAR NOT NULL
);
CREATE VIEW cluster_sizes AS
  SELECT analysis_id, cluster, count(*) AS size FROM clusters GROUP BY analysis_id, cluster;
)sql";

// Version 2: a prune run records where its masks were written (runs.mask_file); older runs keep
// NULL there.
constexpr std::string_view kSchemaV2 = R"sql(
ALTER TABLE runs ADD COLUMN mask_file VARCHAR;
)sql";

// Version 3: zero-shot multiple-choice task scores (sparsa/tasks.h), one row per task of a run,
// and the log-likelihood of every choice. No declared foreign key (the writer stores only its own
// run's id): a key needs runs' primary key, which a database whose runs table was copied by hand
// (CREATE TABLE AS) lacks, and the migration must not fail on such a file.
constexpr std::string_view kSchemaV3 = R"sql(
CREATE TABLE task_scores (
  run_id BIGINT NOT NULL,
  task VARCHAR NOT NULL,
  items BIGINT NOT NULL,
  acc DOUBLE NOT NULL,
  acc_stderr DOUBLE,
  acc_norm DOUBLE NOT NULL,
  acc_norm_stderr DOUBLE,
  chance DOUBLE NOT NULL,
  truncated BIGINT NOT NULL,
  seconds DOUBLE,
  PRIMARY KEY (run_id, task)
);
CREATE TABLE task_choices (
  run_id BIGINT NOT NULL,
  task VARCHAR NOT NULL,
  item INTEGER NOT NULL,
  item_id VARCHAR,
  choice INTEGER NOT NULL,
  gold BOOLEAN NOT NULL,
  loglik DOUBLE NOT NULL,
  tokens BIGINT NOT NULL,
  chars BIGINT NOT NULL,
  greedy BOOLEAN NOT NULL,
  truncated BOOLEAN NOT NULL
);
)sql";

// Version 4: the bytes model of activation-sparse decoding (sparsa/bytes_model.h), one row per
// (activation sparsity, block size, block of the model) and one per (sparsity, block size) for the
// whole model (layer NULL). No declared foreign key, for the reason given at version 3.
constexpr std::string_view kSchemaV4 = R"sql(
CREATE TABLE bytes_model (
  run_id BIGINT NOT NULL,
  act_sparsity DOUBLE NOT NULL,
  block_rows INTEGER NOT NULL,
  layer INTEGER,
  tokens BIGINT NOT NULL,
  mlp_params BIGINT NOT NULL,
  decode_params BIGINT,
  mlp_in_fraction DOUBLE NOT NULL,
  down_in_fraction DOUBLE NOT NULL,
  mlp_fraction DOUBLE NOT NULL,
  mlp_speedup DOUBLE,
  decode_fraction DOUBLE,
  decode_speedup DOUBLE
);
)sql";

// The columns of the two tables version 5 adds; version 6 keeps them and changes their keys.
constexpr std::string_view kClusterNullColumns = R"sql(
  run_id BIGINT NOT NULL,
  layer INTEGER NOT NULL,
  source VARCHAR NOT NULL,
  k INTEGER NOT NULL,
  metric VARCHAR NOT NULL CHECK (metric IN ('separation_ratio', 'ari')),
  observed DOUBLE,
  null_mean DOUBLE,
  null_sd DOUBLE,
  null_lo DOUBLE,
  null_hi DOUBLE,
  p_value DOUBLE NOT NULL,
  z DOUBLE,
  shuffles INTEGER NOT NULL,
)sql";
constexpr std::string_view kNeighbourClusterColumns = R"sql(
  run_id BIGINT NOT NULL,
  layer INTEGER NOT NULL,
  source VARCHAR NOT NULL,
  reference_feature INTEGER NOT NULL,
  k INTEGER NOT NULL,
  size INTEGER NOT NULL,
  separation_ratio DOUBLE,
  within_distance DOUBLE,
  between_distance DOUBLE,
  objective DOUBLE NOT NULL,
)sql";

std::string cluster_null_tables(std::string_view null_key, std::string_view neighbour_key) {
  return fmt::format("CREATE TABLE cluster_null ({}  PRIMARY KEY ({})\n);\nCREATE TABLE neighbour_clusters ({}  PRIMARY KEY "
                     "({})\n);\n",
                     kClusterNullColumns, null_key, kNeighbourClusterColumns, neighbour_key);
}

// Version 5: the permutation null model of cluster quality (observed against shuffled copies that
// keep each feature's density) and the clusterings of reference features' Hamming neighbourhoods.
// No declared foreign key, as for version 3.
std::string schema_v5() {
  return cluster_null_tables("run_id, source, k, metric", "run_id, source, reference_feature, k");
}

// Version 6: `source` in the co-activation tables is a short key ("wanda/u50",
// "activations/down_in"; sparsa/runs.h) instead of a sentence, the block is a column of every
// table that holds rows of several blocks (hence the new primary keys of cluster_null and
// neighbour_clusters), and the sentence moves to cluster_sources, one row per (run, source, block).
// Older rows are rewritten: "wanda u50 model.layers.3.mlp.up_proj rows" becomes "wanda/u50",
// "activations of block 3 at down_in, ..." becomes "activations/down_in"; a source of another shape
// is kept as it was.
constexpr std::string_view kSchemaV6Before = R"sql(
CREATE TABLE cluster_sources (
  run_id BIGINT NOT NULL,
  source VARCHAR NOT NULL,
  layer INTEGER,
  hf_name VARCHAR,
  description VARCHAR NOT NULL
);
CREATE TEMP MACRO sparsa_v6_key(s) AS CASE
  WHEN s LIKE 'activations of block % at %,%' THEN 'activations/' || regexp_extract(s, ' at ([a-z_]+),', 1)
  WHEN regexp_full_match(s, '[a-z]+ [^ ]+ [^ ]+ rows') THEN split_part(s, ' ', 1) || '/' || split_part(s, ' ', 2)
  ELSE s END;
CREATE TEMP MACRO sparsa_v6_layer(s) AS TRY_CAST(regexp_extract(s, '(block |layers\.)([0-9]+)', 2) AS INTEGER);
INSERT INTO cluster_sources
  SELECT run_id, sparsa_v6_key(source), sparsa_v6_layer(source), hf_name, source FROM (
    SELECT run_id, source, hf_name FROM cluster_summary
    UNION SELECT run_id, source, NULL FROM tsne
    UNION SELECT run_id, source, NULL FROM cluster_null
    UNION SELECT run_id, source, NULL FROM neighbour_clusters)
  WHERE source <> sparsa_v6_key(source)
  QUALIFY row_number() OVER (PARTITION BY run_id, source ORDER BY hf_name NULLS LAST) = 1;
UPDATE cluster_summary SET source = sparsa_v6_key(source);
UPDATE tsne SET source = sparsa_v6_key(source);
UPDATE coherence SET source = sparsa_v6_key(source);
CREATE TEMP TABLE sparsa_v6_null AS SELECT * REPLACE (sparsa_v6_key(source) AS source) FROM cluster_null;
CREATE TEMP TABLE sparsa_v6_near AS SELECT * REPLACE (sparsa_v6_key(source) AS source) FROM neighbour_clusters;
DROP TABLE cluster_null;
DROP TABLE neighbour_clusters;
)sql";
constexpr std::string_view kSchemaV6After = R"sql(
INSERT INTO cluster_null SELECT * FROM sparsa_v6_null;
INSERT INTO neighbour_clusters SELECT * FROM sparsa_v6_near;
DROP TABLE sparsa_v6_null;
DROP TABLE sparsa_v6_near;
DROP MACRO sparsa_v6_key;
DROP MACRO sparsa_v6_layer;
)sql";
std::string schema_v6() {
  return fmt::format("{}{}{}", kSchemaV6Before,
                     cluster_null_tables("run_id, layer, source, k, metric", "run_id, layer, source, reference_feature, k"),
                     kSchemaV6After);
}

// migrations()[v] brings version v to v + 1.
const std::vector<std::string>& migrations() {
  static const std::vector<std::string> m = {std::string(kSchemaV1), std::string(kSchemaV2), std::string(kSchemaV3),
                                             std::string(kSchemaV4), schema_v5(),              schema_v6()};
  SPARSA_ASSERT(m.size() == static_cast<size_t>(kStoreSchemaVersion));
  return m;
}

// Lower-case letters, digits and '_' only (a view name needs no quoting then).
std::string identifier_part(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    out += keep ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_';
  }
  return out;
}

}  // namespace

const std::vector<std::string_view>& schema_tables() {
  static const std::vector<std::string_view> tables = {
      "sparsa_meta",    "runs",     "matrices", "perplexities", "feature_metrics", "comparisons",
      "act_thresholds", "act_histograms", "cluster_summary", "clusters", "tsne", "coherence", "benchmarks",
      "task_scores",    "task_choices", "bytes_model", "cluster_null", "neighbour_clusters", "cluster_sources"};
  return tables;
}

int read_schema_version(Connection& con) {
  Result has = con.query(
      "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
      "AND schema_name = 'main' AND table_name = 'sparsa_meta'");
  if (!has.ok()) runtime_failure("{}: reading the table list: {}", con.path(), has.error());
  if (has.scalar_int().value_or(0) == 0) return 0;
  Result r = con.query("SELECT value FROM sparsa_meta WHERE key = 'schema_version'");
  if (!r.ok()) bad_input("{}: unreadable sparsa_meta table: {}", con.path(), r.error());
  const std::string text = r.scalar_string().value_or("0");
  int version = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (ec != std::errc() || end != text.data() + text.size() || version < 0)
    bad_input("{}: sparsa_meta.schema_version is '{}', not a version number", con.path(), text);
  return version;
}

void migrate_schema(Connection& con, int from) {
  SPARSA_ASSERT(from >= 0 && from < kStoreSchemaVersion);
  con.exec("BEGIN TRANSACTION", "starting the schema migration");
  for (int v = from; v < kStoreSchemaVersion; ++v) {
    Result r = con.query(migrations()[static_cast<size_t>(v)]);
    if (!r.ok()) {
      const std::string message = r.error();
      con.query("ROLLBACK");
      bad_input("{}: cannot bring the sparsa schema from version {} to {}: {}", con.path(), v, v + 1, message);
    }
  }
  con.exec(fmt::format("INSERT OR REPLACE INTO sparsa_meta VALUES ('schema_version', '{}'), "
                       "('tool_version', {})",
                       kStoreSchemaVersion, sql_literal(SPARSA_VERSION)),
           "recording the schema version");
  con.exec("COMMIT", "committing the schema migration");
}

std::string feature_view_name(std::string_view method, const SparsityTarget& target, std::string_view component) {
  const std::string level = target.label();  // "u50", "2-4": the runs' and files' spelling
  const size_t dot = component.rfind('.');
  const std::string_view short_component = dot == std::string_view::npos ? component : component.substr(dot + 1);
  return identifier_part(fmt::format("{}_{}_{}", method, level, short_component));
}

namespace {

// The newest complete prune run of `method` at `target`, as an SQL scalar subquery.
std::string newest_prune_run(std::string_view method, const SparsityTarget& target) {
  return fmt::format("(SELECT max(run_id) FROM runs WHERE kind = 'prune' AND status = 'complete' AND method = {} AND "
                     "structure = {})",
                     sql_literal(method), sql_literal(target.label()));
}

void create_view(Connection& con, const std::string& name, const std::string& select) {
  con.exec(fmt::format("CREATE VIEW IF NOT EXISTS {} AS\n{}", sql_identifier(name), select), "creating a per-feature view");
}

}  // namespace

void create_feature_views(Connection& con, std::string_view method, const SparsityTarget& target,
                           const std::vector<std::string>& components) {
  const std::string run = newest_prune_run(method, target);
  for (const std::string& component : components) {
    const std::string name = feature_view_name(method, target, component);
    create_view(con, name,
                fmt::format("SELECT f.mask_run_id AS run_id, m.layer, f.hf_name, m.component, f.axis, f.feature,\n"
                            "       f.pruned, f.kept_fraction, f.other_run_id, f.jaccard, f.hamming, f.cosine\n"
                            "FROM feature_metrics f JOIN matrices m ON m.run_id = f.mask_run_id AND m.hf_name = f.hf_name\n"
                            "WHERE m.component = {} AND f.mask_run_id = {}",
                            sql_literal(component), run));
    create_view(con, name + "_features",
                fmt::format("SELECT f.mask_run_id AS run_id, m.layer, f.hf_name, m.component, f.axis, f.feature,\n"
                            "       f.pruned, f.kept_fraction\n"
                            "FROM feature_metrics f JOIN matrices m ON m.run_id = f.mask_run_id AND m.hf_name = f.hf_name\n"
                            "WHERE m.component = {} AND f.other_run_id IS NULL AND f.mask_run_id = {}",
                            sql_literal(component), run));
  }
}

std::string comparison_view_name(std::string_view method_a, const SparsityTarget& target_a, std::string_view component,
                                 std::string_view method_b, const SparsityTarget& target_b) {
  return feature_view_name(method_a, target_a, component) + "_vs_" +
         identifier_part(fmt::format("{}_{}", method_b, target_b.label()));
}

void create_comparison_views(Connection& con, std::string_view method_a, const SparsityTarget& target_a,
                             std::string_view method_b, const SparsityTarget& target_b,
                             const std::vector<std::string>& components) {
  const std::string run_a = newest_prune_run(method_a, target_a), run_b = newest_prune_run(method_b, target_b);
  for (const std::string& component : components)
    create_view(con, comparison_view_name(method_a, target_a, component, method_b, target_b),
                fmt::format("SELECT f.mask_run_id AS run_id, f.other_run_id, f.run_id AS compare_run_id, m.layer,\n"
                            "       f.hf_name, m.component, f.axis, f.feature, f.jaccard, f.hamming, f.cosine\n"
                            "FROM feature_metrics f JOIN matrices m ON m.run_id = f.mask_run_id AND m.hf_name = f.hf_name\n"
                            "WHERE m.component = {} AND f.mask_run_id = {} AND f.other_run_id = {}\n"
                            "  AND f.run_id = (SELECT max(c.run_id) FROM comparisons c\n"
                            "                  WHERE c.run_a = f.mask_run_id AND c.run_b = f.other_run_id)",
                            sql_literal(component), run_a, run_b));
}

}  // namespace sparsa::store
