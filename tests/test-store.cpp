// The DuckDB store: schema and version handling, bad files, transactions (including a writer
// killed with SIGKILL), views, read-only and sandboxed modes, query limits, Parquet export.
// Expected values come from the test's own inputs; the database is inspected through a raw
// DuckDB connection where the store's own query path would be checking itself.
#include "test_support.h"

#include <duckdb.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "sparsa/error.h"
#include "sparsa/store.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using Mode = Store::Mode;

// ---- a raw DuckDB connection, independent of src/store ----

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(duckdb_open(path.c_str(), &db_), DuckDBSuccess) << path;
    EXPECT_EQ(duckdb_connect(db_, &con_), DuckDBSuccess);
  }
  ~RawDb() {
    duckdb_disconnect(&con_);
    duckdb_close(&db_);
  }
  void exec(const std::string& sql) {
    duckdb_result r;
    const bool ok = duckdb_query(con_, sql.c_str(), &r) == DuckDBSuccess;
    EXPECT_TRUE(ok) << sql << ": " << duckdb_result_error(&r);
    duckdb_destroy_result(&r);
  }
  // The first column of every row, as text (NULL as "NULL").
  std::vector<std::string> column(const std::string& sql) {
    duckdb_result r;
    std::vector<std::string> out;
    if (duckdb_query(con_, sql.c_str(), &r) != DuckDBSuccess) {
      ADD_FAILURE() << sql << ": " << duckdb_result_error(&r);
    } else {
      for (idx_t i = 0; i < duckdb_row_count(&r); ++i) {
        char* v = duckdb_value_varchar(&r, 0, i);
        out.emplace_back(v ? v : "NULL");
        duckdb_free(v);
      }
    }
    duckdb_destroy_result(&r);
    return out;
  }
  std::string scalar(const std::string& sql) {
    const auto c = column(sql);
    return c.empty() ? "<no row>" : c[0];
  }

 private:
  duckdb_database db_ = nullptr;
  duckdb_connection con_ = nullptr;
};

// Runs `statements` on the database file `db` (creating it) with a raw connection.
void raw_exec(const fs::path& db, std::initializer_list<std::string> statements) {
  RawDb raw(db.string());
  for (const std::string& sql : statements) raw.exec(sql);
}

// ---- fixtures ----

RunInfo prune_info(const std::string& method, SparsityTarget target, const std::string& calib_hash = "fnv1a64:1") {
  RunInfo info;
  info.kind = RunKind::kPrune;
  info.model_name = "tiny-llama-15m";
  info.model_path = "/models/tiny-llama-15m";
  info.architecture = "llama";
  info.method = method;
  info.target = target;
  info.calib_description = "tokens.safetensors:calib [128, 512]";
  info.calib_hash = calib_hash;
  info.nsamples = 128;
  info.seqlen = 512;
  return info;
}
SparsityTarget unstructured(double r) { return SparsityTarget{r, 0, 0}; }
SparsityTarget nm(int n, int m) { return SparsityTarget{0.0, n, m}; }

const std::vector<std::string> kComponents = {"mlp.down_proj", "mlp.up_proj"};

std::string hf(int layer, const std::string& component) {
  return "model.layers." + std::to_string(layer) + "." + component;
}

// A prune run over 2 layers x kComponents; row feature f of every matrix has `base + f`
// pruned weights out of 10. Returns the run id.
int64_t write_prune_run(Store& store, const RunInfo& info, int64_t base, int64_t features = 4) {
  RunWriter run = store.begin_run(info);
  for (int layer = 0; layer < 2; ++layer) {
    for (const std::string& c : kComponents) {
      run.add_matrix({hf(layer, c), features, 10, 0.5, 0.01});
      std::vector<FeatureMetric> rows;
      for (int64_t f = 0; f < features; ++f) rows.push_back({f, base + f, 1.0 - (base + f) / 10.0});
      run.add_feature_metrics({hf(layer, c), FeatureAxis::kRow}, rows);
    }
  }
  run.add_perplexity({"persuasion", PplKind::kPruned, std::nullopt, 100.0 + base, 125952, 3.5});
  run.set_timings({.total = 2.0, .forward = 1.0});
  run.commit();
  return run.run_id();
}

int64_t count_rows(Store& store, const std::string& table) {
  return store.query_json("SELECT count(*) FROM " + table)["rows"][0][0].get<int64_t>();
}

// Runs `f`, expecting Error of `kind`; returns its message.
template <typename F>
std::string error_of(F&& f, ErrorKind kind) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no sparsa::Error thrown";
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const std::vector<std::string> kTables = {
    "act_histograms", "act_thresholds", "benchmarks", "bytes_model", "cluster_null", "cluster_sources", "cluster_summary", "clusters",
    "coherence", "comparisons", "feature_metrics", "matrices", "neighbour_clusters", "perplexities", "runs",
    "sparsa_meta", "task_choices", "task_scores", "tsne"};

// ---- schema, version, bad files ----

TEST(Store, CreatesTheDocumentedSchema) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  {
    auto store = Store::open(db, Mode::kReadWrite);
    EXPECT_EQ(store->schema_version(), kStoreSchemaVersion);
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.column("SELECT table_name FROM duckdb_tables() ORDER BY 1"), kTables);
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'runs' AND column_name = 'mask_file'"),
            "1");
  EXPECT_EQ(raw.column("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"),
            std::vector<std::string>{"cluster_sizes"});
}

TEST(Store, ReopensWithRunsIntact) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  RunInfo info = prune_info("wanda", unstructured(0.5));
  info.mask_file = "/study/masks/wanda_u50.safetensors";
  int64_t id = 0;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    id = write_prune_run(*store, info, 1);
  }
  for (Mode mode : {Mode::kReadWrite, Mode::kReadOnly, Mode::kSandboxed}) {
    auto store = Store::open(db, mode);
    EXPECT_EQ(store->find_run(info), id);
    EXPECT_EQ(count_rows(*store, "matrices"), 4);
    EXPECT_EQ(count_rows(*store, "feature_metrics"), 16);
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.scalar("SELECT status || ' ' || structure || ' ' || method || ' ' || sparsity || ' ' || "
                       "seconds_total || ' ' || (seconds_select IS NULL) FROM runs"),
            "complete u50 wanda 0.5 2.0 true");
  EXPECT_EQ(raw.scalar("SELECT mask_file FROM runs"), "/study/masks/wanda_u50.safetensors");
  EXPECT_EQ(raw.scalar("SELECT finished_at >= started_at FROM runs"), "true");
}

TEST(Store, RefusesAFileThatIsNotDuckDB) {
  test::TempDir dir;
  const fs::path db = dir / "garbage.duckdb";
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage += static_cast<char>('A' + (i * 7) % 26);
  test::write_file(db, garbage);
  for (Mode mode : {Mode::kReadWrite, Mode::kReadOnly}) {
    const std::string m = error_of([&] { Store::open(db, mode); }, ErrorKind::kBadInput);
    EXPECT_TRUE(contains(m, db.string())) << m;
  }
  EXPECT_EQ(test::read_file(db), garbage);
  const std::string missing = error_of([&] { Store::open(dir / "absent.duckdb", Mode::kReadOnly); },
                                       ErrorKind::kBadInput);
  EXPECT_TRUE(contains(missing, "absent.duckdb")) << missing;
  EXPECT_FALSE(fs::exists(dir / "absent.duckdb"));
}

TEST(Store, RefusesANewerSchemaVersion) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  Store::open(db, Mode::kReadWrite);
  const std::string newer = std::to_string(kStoreSchemaVersion + 1);
  raw_exec(db, {"UPDATE sparsa_meta SET value = '" + newer + "' WHERE key = 'schema_version'"});
  for (Mode mode : {Mode::kReadWrite, Mode::kReadOnly}) {
    const std::string m = error_of([&] { Store::open(db, mode); }, ErrorKind::kBadInput);
    EXPECT_TRUE(contains(m, "schema version " + newer + " is newer")) << m;
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'schema_version'"), newer);
}

// Version 0: a DuckDB file without the sparsa tables (sparsa_meta saying 0, other tables of
// the user's): read-only refuses it, read-write migrates it and keeps the user's data.
TEST(Store, MigratesAnOlderSchemaVersion) {
  test::TempDir dir;
  const fs::path db = dir / "old.duckdb";
  raw_exec(db, {"CREATE TABLE sparsa_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
                "INSERT INTO sparsa_meta VALUES ('schema_version', '0'), ('note', 'made by hand')",
                "CREATE TABLE notes (id INTEGER, text VARCHAR)",
                "INSERT INTO notes VALUES (1, 'keep me'), (2, 'me too')"});
  const std::string m = error_of([&] { Store::open(db, Mode::kReadOnly); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "schema version 0 is older")) << m;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    EXPECT_EQ(store->schema_version(), kStoreSchemaVersion);
    write_prune_run(*store, prune_info("magnitude", nm(2, 4)), 0);
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'note'"), "made by hand");
  EXPECT_EQ(raw.column("SELECT text FROM notes ORDER BY id"), (std::vector<std::string>{"keep me", "me too"}));
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM runs"), "1");
}

// Version 1: runs without mask_file (here a copy of a current file's runs without the column).
// Read-only refuses it; read-write adds the column, and the old runs keep NULL there and are
// still found.
TEST(Store, MigratesVersionOneRunsWithoutMaskFiles) {
  test::TempDir dir;
  const fs::path current = dir / "current.duckdb", db = dir / "v1.duckdb";
  const RunInfo old = prune_info("wanda", unstructured(0.5));
  int64_t id = 0;
  {
    auto store = Store::open(current, Mode::kReadWrite);
    id = write_prune_run(*store, old, 1);
  }
  raw_exec(db, {"ATTACH '" + current.string() + "' AS current_db (READ_ONLY)",
                "CREATE TABLE sparsa_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
                "INSERT INTO sparsa_meta VALUES ('schema_version', '1')",
                "CREATE SEQUENCE run_id_seq START 100",
                "CREATE TABLE runs AS SELECT * EXCLUDE (mask_file) FROM current_db.runs",
                "CREATE TABLE cluster_summary AS SELECT * FROM current_db.cluster_summary",
                "CREATE TABLE tsne AS SELECT * FROM current_db.tsne",
                "CREATE TABLE coherence AS SELECT * FROM current_db.coherence", "DETACH current_db"});
  const std::string m = error_of([&] { Store::open(db, Mode::kReadOnly); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "schema version 1 is older")) << m;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    EXPECT_EQ(store->find_run(old), id);
    RunWriter w = store->begin_run({.kind = RunKind::kDense, .model_path = "/m", .mask_file = "/out/masks.safetensors"});
    w.commit();
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(raw.column("SELECT coalesce(mask_file, 'NULL') FROM runs ORDER BY run_id"),
            (std::vector<std::string>{"NULL", "/out/masks.safetensors"}));
}

// Version 2: no task tables. Read-write adds them; the old runs are kept and tasks can be stored.
TEST(Store, MigratesVersionTwoWithoutTaskTables) {
  test::TempDir dir;
  const fs::path db = dir / "v2.duckdb";
  const RunInfo old = prune_info("wanda", unstructured(0.5));
  int64_t id = 0;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    id = write_prune_run(*store, old, 1);
  }
  raw_exec(db, {"DROP TABLE task_choices", "DROP TABLE task_scores", "DROP TABLE bytes_model", "DROP TABLE cluster_null",
                "DROP TABLE neighbour_clusters", "DROP TABLE cluster_sources", "UPDATE sparsa_meta SET value = '2' WHERE key = 'schema_version'"});
  const std::string m = error_of([&] { Store::open(db, Mode::kReadOnly); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "schema version 2 is older")) << m;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    EXPECT_EQ(store->find_run(old), id);
    RunWriter w = store->begin_run({.kind = RunKind::kDense, .model_path = "/m"});
    const TaskChoiceRow choices[] = {{.item = 0, .item_id = "q1", .choice = 0, .gold = true, .loglik = -1.5},
                                     {.item = 0, .choice = 1, .loglik = -2.5}};
    w.add_task_scores({.task = "t", .items = 1, .acc = 1, .acc_norm = 1, .chance = 0.5}, choices);
    w.commit();
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(raw.column("SELECT coalesce(item_id, 'NULL') || ':' || gold::VARCHAR FROM task_choices ORDER BY choice"),
            (std::vector<std::string>{"q1:true", "NULL:false"}));
  EXPECT_EQ(raw.scalar("SELECT coalesce(acc_stderr::VARCHAR, 'NULL') FROM task_scores"), "NULL");
}

// Version 3: no bytes_model table. Read-write adds it; the old runs are kept and the bytes model
// of a new run is stored, its speed-up bounds the inverse of its fractions (NULL for none).
TEST(Store, MigratesVersionThreeWithoutTheBytesModel) {
  test::TempDir dir;
  const fs::path db = dir / "v3.duckdb";
  const RunInfo old = prune_info("wanda", unstructured(0.5));
  int64_t id = 0;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    id = write_prune_run(*store, old, 1);
  }
  raw_exec(db, {"DROP TABLE bytes_model", "DROP TABLE cluster_null", "DROP TABLE neighbour_clusters",
                "DROP TABLE cluster_sources", "UPDATE sparsa_meta SET value = '3' WHERE key = 'schema_version'"});
  const std::string m = error_of([&] { Store::open(db, Mode::kReadOnly); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "schema version 3 is older")) << m;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    EXPECT_EQ(store->find_run(old), id);
    RunWriter w = store->begin_run({.kind = RunKind::kBench, .model_path = "/m", .method = "speed"});
    const BytesModelRow rows[] = {
        {.act_sparsity = 0.5, .block_rows = 8, .layer = 3, .tokens = 1024, .mlp_params = 300, .mlp_in_fraction = 0.5,
         .down_in_fraction = 0.25, .mlp_fraction = 0.4},
        {.act_sparsity = 0.5, .block_rows = 8, .tokens = 1024, .mlp_params = 1800, .decode_params = 3000,
         .mlp_in_fraction = 0.5, .down_in_fraction = 0.25, .mlp_fraction = 0.4, .decode_fraction = 0.8}};
    w.add_bytes_model(rows);
    w.commit();
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(raw.column("SELECT concat_ws(' ', coalesce(layer::VARCHAR, 'all'), block_rows, tokens, mlp_params, "
                       "coalesce(decode_params::VARCHAR, 'NULL'), mlp_speedup, coalesce(decode_speedup::VARCHAR, 'NULL')) "
                       "FROM bytes_model ORDER BY layer NULLS LAST"),
            (std::vector<std::string>{"3 8 1024 300 NULL 2.5 NULL", "all 8 1024 1800 3000 2.5 1.25"}));
}

// Version 4: no null-model tables. Read-write adds them; the old runs are kept and rows can be
// stored, non-finite numbers as NULL.
TEST(Store, MigratesVersionFourWithoutNullModelTables) {
  test::TempDir dir;
  const fs::path db = dir / "v4.duckdb";
  const RunInfo old = prune_info("wanda", unstructured(0.5));
  int64_t id = 0;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    id = write_prune_run(*store, old, 1);
  }
  raw_exec(db, {"DROP TABLE cluster_null", "DROP TABLE neighbour_clusters", "DROP TABLE cluster_sources",
                "UPDATE sparsa_meta SET value = '4' WHERE key = 'schema_version'"});
  const std::string m = error_of([&] { Store::open(db, Mode::kReadOnly); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "schema version 4 is older")) << m;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    EXPECT_EQ(store->find_run(old), id);
    RunWriter w = store->begin_run({.kind = RunKind::kAnalysis, .model_path = "/m"});
    const ClusterNullRow null_rows[] = {
        {.layer = 3, .source = "acts", .k = 4, .metric = "separation_ratio", .observed = 1.5, .null_mean = 1.01,
         .null_sd = 0.01, .null_lo = 1.0, .null_hi = 1.02, .p_value = 1.0 / 6, .z = 49, .shuffles = 5},
        {.layer = 3, .source = "acts", .k = 4, .metric = "ari", .observed = 1, .null_mean = 1, .null_lo = 1,
         .null_hi = 1, .p_value = 1, .z = std::numeric_limits<double>::infinity(), .shuffles = 5}};
    w.add_cluster_null(null_rows);
    const NeighbourClusterRow near[] = {{.layer = 3, .source = "acts", .reference_feature = 17, .k = 4, .size = 128,
                                         .separation_ratio = std::numeric_limits<double>::quiet_NaN(), .objective = 2}};
    w.add_neighbour_clusters(near);
    w.commit();
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.scalar("SELECT value FROM sparsa_meta WHERE key = 'schema_version'"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(raw.column("SELECT metric || ':' || coalesce(z::VARCHAR, 'NULL') FROM cluster_null ORDER BY metric"),
            (std::vector<std::string>{"ari:NULL", "separation_ratio:49.0"}));
  EXPECT_EQ(raw.scalar("SELECT reference_feature::VARCHAR || ':' || coalesce(separation_ratio::VARCHAR, 'NULL') "
                       "FROM neighbour_clusters"),
            "17:NULL");
}

// Version 5: co-activation sources were sentences. Read-write turns them into short keys in every
// table, moves the sentences to cluster_sources with the block they name, and gives cluster_null and
// neighbour_clusters primary keys with the block (so one key can hold every block's rows).
TEST(Store, MigratesVersionFiveSentenceSourcesToKeys) {
  test::TempDir dir;
  const fs::path db = dir / "v5.duckdb";
  const std::string mask = "wanda u50 model.layers.3.mlp.up_proj rows";
  const auto acts = [](int block) {
    return "activations of block " + std::to_string(block) + " at down_in, active above 0.0123 (50 % sparsity), 1024 tokens";
  };
  {
    auto store = Store::open(db, Mode::kReadWrite);
    RunWriter w = store->begin_run({.kind = RunKind::kAnalysis, .model_path = "/m", .method = "coactivation"});
    const std::vector<int32_t> assignment = {0, 1};
    const int64_t a = w.add_clustering({.source = mask, .hf_name = "model.layers.3.mlp.up_proj", .k = 2}, assignment);
    w.add_clustering({.source = acts(3), .k = 2}, assignment);
    const TsnePoint pts[] = {{0, 0.5, -0.5}};
    w.add_tsne(mask, pts);
    const CoherenceRow coherence[] = {{acts(3), CoherenceOrdering::kCluster, a, 16, 0.25}};
    w.add_coherence(coherence);
    const ClusterNullRow null_rows[] = {{.layer = 2, .source = acts(2), .k = 2, .metric = "separation_ratio", .shuffles = 3},
                                        {.layer = 3, .source = acts(3), .k = 2, .metric = "separation_ratio", .shuffles = 3}};
    w.add_cluster_null(null_rows);
    const NeighbourClusterRow near[] = {{.layer = 2, .source = acts(2), .reference_feature = 1, .k = 2, .size = 2}};
    w.add_neighbour_clusters(near);
    w.commit();
  }
  raw_exec(db, {"DROP TABLE cluster_sources", "UPDATE sparsa_meta SET value = '5' WHERE key = 'schema_version'"});
  const std::string m = error_of([&] { Store::open(db, Mode::kReadOnly); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "schema version 5 is older")) << m;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    EXPECT_EQ(store->schema_version(), kStoreSchemaVersion);
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.column("SELECT source FROM cluster_summary ORDER BY analysis_id"),
            (std::vector<std::string>{"wanda/u50", "activations/down_in"}));
  EXPECT_EQ(raw.scalar("SELECT source FROM tsne"), "wanda/u50");
  EXPECT_EQ(raw.scalar("SELECT source FROM coherence"), "activations/down_in");
  EXPECT_EQ(raw.column("SELECT layer || ' ' || source FROM cluster_null ORDER BY layer"),
            (std::vector<std::string>{"2 activations/down_in", "3 activations/down_in"}));
  EXPECT_EQ(raw.scalar("SELECT layer || ' ' || source FROM neighbour_clusters"), "2 activations/down_in");
  EXPECT_EQ(raw.column("SELECT concat_ws(' | ', source, layer, coalesce(hf_name, 'NULL'), description) FROM cluster_sources "
                       "ORDER BY layer, source"),
            (std::vector<std::string>{"activations/down_in | 2 | NULL | " + acts(2),
                                      "activations/down_in | 3 | NULL | " + acts(3),
                                      "wanda/u50 | 3 | model.layers.3.mlp.up_proj | " + mask}));
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'cluster_null' AND "
                       "constraint_type = 'PRIMARY KEY' AND list_contains(constraint_column_names, 'layer')"), "1");
}

TEST(Store, RefusesADatabaseWithClashingTables) {
  test::TempDir dir;
  const fs::path db = dir / "other.duckdb";
  raw_exec(db, {"CREATE TABLE runs (x INTEGER)"});
  const std::string m = error_of([&] { Store::open(db, Mode::kReadWrite); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "runs")) << m;
  RawDb raw(db.string());
  EXPECT_EQ(raw.column("SELECT table_name FROM duckdb_tables()"), std::vector<std::string>{"runs"});
}

// ---- transactions ----

TEST(Store, AnUncommittedRunLeavesNoRows) {
  test::TempDir dir;
  auto store = Store::open(dir / "study.duckdb", Mode::kReadWrite);
  const RunInfo info = prune_info("sparsegpt", unstructured(0.5));
  {
    RunWriter run = store->begin_run(info);
    run.add_matrix({hf(0, "mlp.down_proj"), 4, 10, 0.5, 0.01});
    const std::vector<FeatureMetric> fm = {{0, 5, 0.5}, {1, 4, 0.6}};
    run.add_feature_metrics({hf(0, "mlp.down_proj"), FeatureAxis::kCol}, fm);
    run.add_perplexity({"persuasion", PplKind::kDense, std::nullopt, 89.67, 125952, 2.0});
    const std::vector<ActThresholdRow> thresholds = {{0, ObsPoint::kMlpIn, 0.5, 0.125}};
    run.add_act_thresholds(thresholds);
    const std::vector<double> edges = {0, 1, 2};
    const std::vector<int64_t> counts = {3, 4};
    run.add_act_histogram(0, ObsPoint::kDownIn, edges, counts);
    const std::vector<int32_t> assignment = {0, 1, 1, 0};
    const int64_t analysis = run.add_clustering({"rows", "", 2, 7, 1.0, 0.5, 2.0, 4.0}, assignment);
    const std::vector<TsnePoint> points = {{0, 0.5, -0.5}};
    run.add_tsne("rows", points);
    const std::vector<CoherenceRow> coherence = {{"rows", CoherenceOrdering::kCluster, analysis, 16, 0.25}};
    run.add_coherence(coherence);
    const std::vector<BenchmarkRow> bench = {{"gemv", "384x1024", "f32", 0.5, 12.5, 20.0, "cpu"}};
    run.add_benchmarks(bench);
  }  // destroyed without commit()
  for (const std::string& table : kTables)
    if (table != "sparsa_meta") EXPECT_EQ(count_rows(*store, table), 0) << table;
  EXPECT_FALSE(store->find_run(info).has_value());
}

TEST(Store, AFailedCommitRollsTheRunBack) {
  test::TempDir dir;
  auto store = Store::open(dir / "study.duckdb", Mode::kReadWrite);
  const RunInfo info{.kind = RunKind::kCompare, .model_path = "/m"};
  {
    RunWriter run = store->begin_run(info);
    const std::vector<ComparisonRow> rows = {{run.run_id(), 999, hf(0, "mlp.up_proj"), 0.5, 0.1, 0.6, 0.5, 0.5}};
    run.add_comparisons(rows);  // run 999 does not exist: the foreign key fails at commit
    const std::string m = error_of([&] { run.commit(); }, ErrorKind::kRuntime);
    EXPECT_TRUE(contains(m, "foreign key")) << m;
  }
  EXPECT_EQ(count_rows(*store, "runs"), 0);
  EXPECT_EQ(count_rows(*store, "comparisons"), 0);
  EXPECT_FALSE(store->find_run(info).has_value());
}

TEST(Store, RefusesMetricsOfAnUnknownRun) {
  test::TempDir dir;
  auto store = Store::open(dir / "study.duckdb", Mode::kReadWrite);
  RunWriter run = store->begin_run({.kind = RunKind::kCompare});
  const std::vector<FeatureMetric> fm = {{0, 1, 0.9}};
  const std::string m = error_of(
      [&] { run.add_feature_metrics({hf(0, "mlp.up_proj"), FeatureAxis::kRow, 12345, std::nullopt}, fm); },
      ErrorKind::kRuntime);
  EXPECT_TRUE(contains(m, "12345")) << m;
}

// A child process commits run A, starts run B, appends rows until told to die, and is killed
// with SIGKILL mid-run. The database must open with run A whole and nothing of run B; a rerun
// of B then completes without duplicating A.
TEST(Store, AWriterKilledMidRunLeavesNoHalfRun) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  const RunInfo a = prune_info("wanda", unstructured(0.5));
  const RunInfo b = prune_info("sparsegpt", unstructured(0.5));
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(ready[0]);
    try {
      auto store = Store::open(db, Mode::kReadWrite);
      write_prune_run(*store, a, 1);
      RunWriter run = store->begin_run(b);
      run.add_matrix({hf(0, "mlp.down_proj"), 1 << 30, 10, 0.5, 0.01});
      std::vector<FeatureMetric> rows(10000);
      for (size_t f = 0; f < rows.size(); ++f) rows[f] = {static_cast<int64_t>(f), 5, 0.5};
      for (int batch = 0;; ++batch) {
        run.add_feature_metrics({hf(0, "mlp.down_proj"), FeatureAxis::kRow}, rows);
        if (batch == 30 && write(ready[1], "x", 1) != 1) _exit(3);  // 310,000 rows appended
      }
    } catch (...) {
      _exit(2);
    }
  }
  close(ready[1]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the child failed before writing run B";
  close(ready[0]);
  usleep(100 * 1000);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;

  auto store = Store::open(db, Mode::kReadWrite);
  EXPECT_EQ(count_rows(*store, "runs"), 1);
  EXPECT_EQ(count_rows(*store, "matrices"), 4);
  EXPECT_EQ(count_rows(*store, "feature_metrics"), 16);
  const auto id_a = store->find_run(a);
  ASSERT_TRUE(id_a.has_value());
  EXPECT_FALSE(store->find_run(b).has_value());

  // The rerun: A is found and skipped, B is written.
  for (const RunInfo* info : {&a, &b})
    if (!store->find_run(*info)) write_prune_run(*store, *info, 2);
  EXPECT_EQ(store->find_run(a), id_a);
  EXPECT_TRUE(store->find_run(b).has_value());
  EXPECT_EQ(count_rows(*store, "runs"), 2);
  EXPECT_EQ(count_rows(*store, "feature_metrics"), 32);
}

// ---- bulk rows ----

TEST(Store, AppendsAMillionFeatureRows) {
  test::TempDir dir;
  auto store = Store::open(dir / "study.duckdb", Mode::kReadWrite);
  constexpr int kMatrices = 100, kFeatures = 10000;
  std::vector<FeatureMetric> rows(kFeatures);
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  RunWriter run = store->begin_run(prune_info("wanda", unstructured(0.5)));
  int64_t expected_pruned = 0;
  for (int m = 0; m < kMatrices; ++m) {
    for (int f = 0; f < kFeatures; ++f) {
      rows[f] = {f, (f * 31 + m) % 97, 1.0 - ((f * 31 + m) % 97) / 97.0};
      if (f % 3 == 0) rows[f].jaccard = 0.25;
      expected_pruned += rows[f].pruned;
    }
    run.add_feature_metrics({hf(m, "mlp.down_proj"), FeatureAxis::kCol}, rows);
  }
  run.commit();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  std::printf("[ figure   ] 1,000,000 feature rows appended and committed in %.2f s wall, %.2f s CPU (%.0f rows/s)\n",
              seconds, cpu, 1e6 / seconds);

  const auto r = store->query_json(
      "SELECT count(*), sum(pruned), count(jaccard), count(DISTINCT hf_name), max(feature) FROM feature_metrics");
  EXPECT_EQ(r["rows"][0][0], 1000000);
  EXPECT_EQ(r["rows"][0][1].get<int64_t>(), expected_pruned);
  EXPECT_EQ(r["rows"][0][2], kMatrices * ((kFeatures + 2) / 3));
  EXPECT_EQ(r["rows"][0][3], kMatrices);
  EXPECT_EQ(r["rows"][0][4], kFeatures - 1);
  const auto one = store->query_json(
      "SELECT pruned, kept_fraction, axis FROM feature_metrics WHERE hf_name = 'model.layers.42.mlp.down_proj' "
      "AND feature = 1234");
  EXPECT_EQ(one["rows"][0][0], (1234 * 31 + 42) % 97);
  EXPECT_DOUBLE_EQ(one["rows"][0][1].get<double>(), 1.0 - ((1234 * 31 + 42) % 97) / 97.0);
  EXPECT_EQ(one["rows"][0][2], "col");
}

TEST(Store, WritersOfSeveralRunsMayBeOpenAtOnce) {
  test::TempDir dir;
  auto store = Store::open(dir / "study.duckdb", Mode::kReadWrite);
  RunWriter a = store->begin_run(prune_info("wanda", unstructured(0.5)));
  RunWriter b = store->begin_run(prune_info("sparsegpt", unstructured(0.5)));
  EXPECT_NE(a.run_id(), b.run_id());
  a.add_matrix({hf(0, "mlp.up_proj"), 4, 10, 0.5, 0.01});
  b.add_matrix({hf(0, "mlp.up_proj"), 4, 10, 0.4, 0.01});
  b.add_matrix({hf(1, "mlp.up_proj"), 4, 10, 0.4, 0.01});
  EXPECT_EQ(count_rows(*store, "matrices"), 0);  // neither is visible before its commit
  b.commit();
  EXPECT_EQ(count_rows(*store, "matrices"), 2);
  a.commit();
  EXPECT_EQ(count_rows(*store, "matrices"), 3);
  EXPECT_EQ(count_rows(*store, "runs"), 2);
}

// ---- views ----

TEST(Store, ViewsShowTheLatestRunOfEachMethodAndSparsity) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  int64_t wanda_new = 0;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    write_prune_run(*store, prune_info("wanda", unstructured(0.5), "fnv1a64:old"), 1);
    write_prune_run(*store, prune_info("sparsegpt", unstructured(0.5)), 3);
    write_prune_run(*store, prune_info("wanda", nm(2, 4)), 4);
    wanda_new = write_prune_run(*store, prune_info("wanda", unstructured(0.5), "fnv1a64:new"), 2);
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.column("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"),
            (std::vector<std::string>{"cluster_sizes", "sparsegpt_u50_down_proj", "sparsegpt_u50_down_proj_features",
                                      "sparsegpt_u50_up_proj", "sparsegpt_u50_up_proj_features", "wanda_2_4_down_proj",
                                      "wanda_2_4_down_proj_features", "wanda_2_4_up_proj", "wanda_2_4_up_proj_features",
                                      "wanda_u50_down_proj", "wanda_u50_down_proj_features", "wanda_u50_up_proj",
                                      "wanda_u50_up_proj_features"}));
  // Latest wanda u50 run (base 2): rows of layers 0 and 1, down_proj only, pruned = 2 + feature.
  EXPECT_EQ(raw.column("SELECT DISTINCT run_id FROM wanda_u50_down_proj"),
            std::vector<std::string>{std::to_string(wanda_new)});
  EXPECT_EQ(raw.column("SELECT layer || ':' || feature || ':' || pruned FROM wanda_u50_down_proj "
                       "ORDER BY layer, feature"),
            (std::vector<std::string>{"0:0:2", "0:1:3", "0:2:4", "0:3:5", "1:0:2", "1:1:3", "1:2:4", "1:3:5"}));
  EXPECT_EQ(raw.column("SELECT DISTINCT hf_name FROM sparsegpt_u50_up_proj ORDER BY 1"),
            (std::vector<std::string>{"model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"}));
  EXPECT_EQ(raw.scalar("SELECT sum(pruned) FROM sparsegpt_u50_up_proj"), std::to_string(2 * (3 + 4 + 5 + 6)));
  EXPECT_EQ(raw.scalar("SELECT min(pruned) FROM wanda_2_4_down_proj"), "4");
}

// A compare run of a against b: every feature row of kComponents, jaccard = `jaccard`.
int64_t write_compare_run(Store& store, int64_t a, int64_t b, double jaccard) {
  RunInfo info;
  info.kind = RunKind::kCompare;
  info.method = "wanda-vs-sparsegpt";
  info.options = "pair=" + std::to_string(a) + "," + std::to_string(b) + " j=" + std::to_string(jaccard);
  RunWriter run = store.begin_run(info);
  for (int layer = 0; layer < 2; ++layer)
    for (const std::string& c : kComponents) {
      const ComparisonRow row{a, b, hf(layer, c), jaccard, 0.1, std::nullopt, 0.5, 0.5};
      run.add_comparisons({&row, 1});
      std::vector<FeatureMetric> rows;
      for (int64_t f = 0; f < 4; ++f) rows.push_back({f, 5, 0.5, jaccard, 0.1, std::nullopt});
      run.add_feature_metrics({hf(layer, c), FeatureAxis::kRow, a, b}, rows);
    }
  run.commit();
  return run.run_id();
}

// The old per-(method, target, component) view mixes a mask's own rows with its comparisons
// (kept as documented); `_features` holds only the own rows and `_vs_<method>_<level>` only the
// comparison rows of the newest compare run of the pair.
TEST(Store, FeatureAndComparisonRowsHaveTheirOwnViews) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  int64_t wanda = 0, sgpt = 0, newer = 0;
  {
    auto store = Store::open(db, Mode::kReadWrite);
    wanda = write_prune_run(*store, prune_info("wanda", unstructured(0.5)), 1);
    sgpt = write_prune_run(*store, prune_info("sparsegpt", unstructured(0.5)), 3);
    write_compare_run(*store, wanda, sgpt, 0.25);
    newer = write_compare_run(*store, wanda, sgpt, 0.75);
  }
  RawDb raw(db.string());
  EXPECT_EQ(raw.column("SELECT view_name FROM duckdb_views() WHERE NOT internal AND view_name LIKE '%_vs_%' ORDER BY 1"),
            (std::vector<std::string>{"wanda_u50_down_proj_vs_sparsegpt_u50", "wanda_u50_up_proj_vs_sparsegpt_u50"}));
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM wanda_u50_down_proj"), std::to_string(2 * 4 + 2 * 2 * 4));  // mixed
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM wanda_u50_down_proj_features"), "8");
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM wanda_u50_down_proj_features WHERE run_id <> " + std::to_string(wanda)), "0");
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM wanda_u50_down_proj_vs_sparsegpt_u50"), "8");
  EXPECT_EQ(raw.column("SELECT DISTINCT compare_run_id || ':' || other_run_id || ':' || jaccard FROM "
                       "wanda_u50_down_proj_vs_sparsegpt_u50"),
            std::vector<std::string>{std::to_string(newer) + ":" + std::to_string(sgpt) + ":0.75"});
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM sparsegpt_u50_down_proj_features"), "8");  // b's own rows only
}

TEST(Store, FindsRunsByTheirIdentity) {
  test::TempDir dir;
  auto store = Store::open(dir / "study.duckdb", Mode::kReadWrite);
  const RunInfo base = prune_info("wanda", unstructured(0.5));
  const int64_t first = write_prune_run(*store, base, 1);
  EXPECT_EQ(store->find_run(base), first);
  RunInfo other = base;
  other.calib_hash = "fnv1a64:2";
  EXPECT_FALSE(store->find_run(other).has_value());
  other = base;
  other.target = nm(2, 4);
  EXPECT_FALSE(store->find_run(other).has_value());
  other = base;
  other.calib_description = "described differently";  // not part of the identity
  EXPECT_EQ(store->find_run(other), first);
  const int64_t second = write_prune_run(*store, base, 1);
  EXPECT_EQ(store->find_run(base), second);
}

// ---- read-only modes ----

TEST(Store, ReadOnlyModesChangeNothing) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  {
    auto store = Store::open(db, Mode::kReadWrite);
    write_prune_run(*store, prune_info("wanda", unstructured(0.5)), 1);
  }
  const std::string before = test::read_file(db);
  const std::vector<std::string> writes = {
      "INSERT INTO runs (run_id) VALUES (99)",
      "DROP TABLE feature_metrics",
      "UPDATE runs SET status = 'running'",
      "DELETE FROM perplexities",
      "CREATE TABLE t (x INTEGER)",
      "COPY runs TO '" + (dir / "copied.csv").string() + "'",
      "ATTACH '" + (dir / "other.duckdb").string() + "' AS other",
      "INSTALL json",
      "LOAD parquet",
      "SET memory_limit = '1GB'",
      "PRAGMA disable_checkpoint_on_shutdown",
      "CHECKPOINT",
      "SELECT 1; DROP TABLE runs",
  };
  for (Mode mode : {Mode::kReadOnly, Mode::kSandboxed}) {
    auto store = Store::open(db, mode);
    for (const std::string& sql : writes) error_of([&] { store->query_json(sql); }, ErrorKind::kBadInput);
    // Beneath the statement filter, DuckDB itself refuses a SELECT that writes.
    const std::string seq = error_of([&] { store->query_json("SELECT nextval('run_id_seq')"); }, ErrorKind::kBadInput);
    EXPECT_TRUE(contains(seq, "read-only")) << seq;
    error_of([&] { store->begin_run(prune_info("magnitude", unstructured(0.5))); }, ErrorKind::kBadInput);
    EXPECT_EQ(store->query_json("SELECT count(*) FROM runs")["rows"][0][0], 1);
  }
  {
    auto store = Store::open(db, Mode::kSandboxed);
    const std::string m = error_of([&] { store->query_json("SELECT * FROM read_csv('/etc/hostname')"); },
                                   ErrorKind::kBadInput);
    EXPECT_TRUE(contains(m, "disabled")) << m;
    error_of([&] { store->export_parquet(dir / "export"); }, ErrorKind::kBadInput);
  }
  EXPECT_FALSE(fs::exists(dir / "copied.csv"));
  EXPECT_FALSE(fs::exists(dir / "other.duckdb"));
  EXPECT_FALSE(fs::exists(dir / "export"));
  EXPECT_EQ(test::read_file(db), before);
  EXPECT_FALSE(fs::exists(db.string() + ".wal"));
}

// ---- query_json ----

TEST(Store, QueryJsonConvertsTypesAndHonoursLimits) {
  test::TempDir dir;
  auto store = Store::open(dir / "study.duckdb", Mode::kReadWrite);
  const auto r = store->query_json(
      "SELECT 1::TINYINT AS a, 0.25 AS b, 'x''y' AS c, NULL AS d, DATE '2024-01-02' AS e, "
      "TIMESTAMP '2024-01-02 03:04:05.5' AS f, true AS g, 12345678901234::HUGEINT AS h, 2.5::FLOAT AS i, "
      "'nan'::DOUBLE AS j, 'b'::ENUM('a', 'b') AS k");
  EXPECT_EQ(r["columns"], nlohmann::json({"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}));
  EXPECT_EQ(r["types"][1], "DECIMAL");
  EXPECT_EQ(r["rows"][0][0], 1);
  EXPECT_DOUBLE_EQ(r["rows"][0][1].get<double>(), 0.25);
  EXPECT_EQ(r["rows"][0][2], "x'y");
  EXPECT_TRUE(r["rows"][0][3].is_null());
  EXPECT_EQ(r["rows"][0][4], "2024-01-02");
  EXPECT_EQ(r["rows"][0][5], "2024-01-02T03:04:05.500000");
  EXPECT_EQ(r["rows"][0][6], true);
  EXPECT_EQ(r["rows"][0][7], 12345678901234LL);
  EXPECT_EQ(r["rows"][0][8], 2.5);
  EXPECT_EQ(r.dump().find("NaN"), std::string::npos);
  EXPECT_EQ(r["rows"][0][10], "b");
  EXPECT_EQ(r["truncated"], false);

  const auto many = store->query_json("SELECT range AS i FROM range(5000)", {.max_rows = 2500});
  EXPECT_EQ(many["rows"].size(), 2500u);
  EXPECT_EQ(many["rows"][2499][0], 2499);
  EXPECT_EQ(many["truncated"], true);

  const std::string list = error_of([&] { store->query_json("SELECT [1, 2] AS sizes"); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(list, "sizes::VARCHAR")) << list;
  const std::string bad = error_of([&] { store->query_json("SELECT * FROM no_such_table"); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(bad, "no_such_table")) << bad;

  const auto start = std::chrono::steady_clock::now();
  const std::string slow = error_of(
      [&] { store->query_json("SELECT sum(i * i) FROM range(100000000000) t(i)", {.max_seconds = 0.3}); },
      ErrorKind::kBadInput);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(contains(slow, "time limit")) << slow;
  EXPECT_LT(waited, 10.0);
}

// ---- Parquet export ----

TEST(Store, ExportsEveryTableToParquet) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  const fs::path out = dir / "export";
  {
    auto store = Store::open(db, Mode::kReadWrite);
    const int64_t id = write_prune_run(*store, prune_info("wanda", unstructured(0.5)), 1);
    RunWriter run = store->begin_run({.kind = RunKind::kAnalysis});
    const std::vector<int32_t> assignment = {0, 1, 1, 2, 2, 2};
    run.add_clustering({"wanda u50 rows", hf(0, "mlp.up_proj"), 3, 42, 5.0, 1.0, 3.0, 3.0, 0.75, id}, assignment);
    run.commit();
  }
  auto store = Store::open(db, Mode::kReadOnly);
  EXPECT_EQ(store->query_json("SELECT cluster, size FROM cluster_sizes ORDER BY cluster")["rows"],
            nlohmann::json::parse("[[0, 1], [1, 2], [2, 3]]"));
  const auto counts = store->export_parquet(out);
  EXPECT_EQ(counts.size(), kTables.size());
  const auto manifest = nlohmann::json::parse(test::read_file(out / "manifest.json"));
  EXPECT_EQ(manifest["schema_version"], kStoreSchemaVersion);
  EXPECT_EQ(manifest["tables"]["feature_metrics"], 16);
  EXPECT_EQ(manifest["tables"]["clusters"], 6);
  EXPECT_EQ(manifest["tables"]["runs"], 2);

  RawDb mem(":memory:");
  auto parquet = [&](const std::string& table) { return "read_parquet('" + (out / (table + ".parquet")).string() + "')"; };
  for (const std::string& table : kTables)
    EXPECT_EQ(mem.scalar("SELECT count(*) FROM " + parquet(table)), manifest["tables"][table].dump()) << table;
  EXPECT_EQ(mem.scalar("SELECT ppl FROM " + parquet("perplexities")), "101.0");
  EXPECT_EQ(mem.scalar("SELECT sum(pruned) FROM " + parquet("feature_metrics")), std::to_string(4 * (1 + 2 + 3 + 4)));
  EXPECT_EQ(mem.column("SELECT cluster FROM " + parquet("clusters") + " ORDER BY feature"),
            (std::vector<std::string>{"0", "1", "1", "2", "2", "2"}));
  EXPECT_EQ(mem.scalar("SELECT method || ' ' || structure FROM " + parquet("runs") + " WHERE kind = 'prune'"),
            "wanda u50");

  // A second export replaces the first; the list of what it wrote names every file.
  const auto listed = nlohmann::json::parse(test::read_file(out / "sparsa-export.json"));
  EXPECT_EQ(listed["tool"], "sparsa");
  EXPECT_EQ(listed["version"], SPARSA_VERSION);
  EXPECT_EQ(listed["files"].size(), kTables.size() + 2);
  EXPECT_EQ(store->export_parquet(out).size(), kTables.size());
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_FALSE(contains(entry.path().filename().string(), ".tmp-")) << entry.path();
}

// Only what an export's sparsa-export.json names is replaced or deleted: a user's files, Parquet
// or not, are left as they are, and one whose name the export needs is refused.
TEST(Store, ExportNeverTouchesFilesItDidNotWrite) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  {
    auto store = Store::open(db, Mode::kReadWrite);
    write_prune_run(*store, prune_info("wanda", unstructured(0.5)), 1);
  }
  auto store = Store::open(db, Mode::kReadOnly);
  const fs::path out = dir / "export";
  fs::create_directories(out);
  test::write_file(out / "mine.parquet", "precious parquet");
  test::write_file(out / "notes.txt", "precious notes");
  ASSERT_EQ(store->export_parquet(out).size(), kTables.size());  // written beside them
  EXPECT_EQ(test::read_file(out / "mine.parquet"), "precious parquet");
  EXPECT_EQ(test::read_file(out / "notes.txt"), "precious notes");
  const auto listed = nlohmann::json::parse(test::read_file(out / "sparsa-export.json"));
  for (const auto& f : listed["files"]) EXPECT_NE(f, "mine.parquet");

  // A re-export replaces its own files, deletes those it no longer writes, keeps the user's.
  auto stale = listed;
  stale["files"].push_back("dropped_table.parquet");
  test::write_file(out / "sparsa-export.json", stale.dump());
  test::write_file(out / "dropped_table.parquet", "an earlier export's");
  test::write_file(out / "runs.parquet", "an earlier export's runs");
  ASSERT_EQ(store->export_parquet(out).size(), kTables.size());
  EXPECT_FALSE(fs::exists(out / "dropped_table.parquet"));
  EXPECT_NE(test::read_file(out / "runs.parquet"), "an earlier export's runs");
  EXPECT_EQ(test::read_file(out / "mine.parquet"), "precious parquet");
  EXPECT_EQ(test::read_file(out / "notes.txt"), "precious notes");

  // A file the export needs, in a folder no export wrote: refused, nothing changed.
  const fs::path theirs = dir / "theirs";
  fs::create_directories(theirs);
  test::write_file(theirs / "runs.parquet", "the user's own runs");
  const std::string m = error_of([&] { store->export_parquet(theirs); }, ErrorKind::kBadInput);
  EXPECT_TRUE(contains(m, "runs.parquet") && contains(m, theirs.string())) << m;
  EXPECT_EQ(test::read_file(theirs / "runs.parquet"), "the user's own runs");
  EXPECT_EQ(std::distance(fs::directory_iterator(theirs), fs::directory_iterator()), 1);
  // ... and a list of files that is not sparsa's names nothing.
  test::write_file(theirs / "sparsa-export.json", R"({"tool": "other", "files": ["runs.parquet"]})");
  error_of([&] { store->export_parquet(theirs); }, ErrorKind::kBadInput);
  EXPECT_EQ(test::read_file(theirs / "runs.parquet"), "the user's own runs");

  // An export by a version without sparsa-export.json: its manifest.json names its tables.
  const fs::path legacy = dir / "legacy";
  ASSERT_EQ(store->export_parquet(legacy).size(), kTables.size());
  fs::remove(legacy / "sparsa-export.json");
  test::write_file(legacy / "mine.parquet", "precious parquet");
  ASSERT_EQ(store->export_parquet(legacy).size(), kTables.size());
  EXPECT_TRUE(fs::exists(legacy / "sparsa-export.json"));
  EXPECT_EQ(test::read_file(legacy / "mine.parquet"), "precious parquet");

  const auto cli = test::run_sparsa({"export", "--db", db.string(), "--parquet", theirs.string()});
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_TRUE(test::one_line(cli.err)) << cli.err;
  EXPECT_TRUE(contains(cli.err, "--parquet") && contains(cli.err, "runs.parquet")) << cli.err;
}

TEST(Store, ExportCommandWritesParquetAndRejectsBadFiles) {
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  {
    auto store = Store::open(db, Mode::kReadWrite);
    write_prune_run(*store, prune_info("wanda", unstructured(0.5)), 1);
  }
  const auto ok = test::run_sparsa({"export", "--db", db.string(), "--parquet", (dir / "out").string(), "--json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const auto j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j["tables"]["matrices"], 4);
  EXPECT_EQ(j["tables"].size(), kTables.size());
  EXPECT_TRUE(fs::exists(dir / "out" / "feature_metrics.parquet"));

  test::write_file(dir / "garbage.duckdb", std::string(4096, 'x'));
  const auto bad = test::run_sparsa({"export", "--db", (dir / "garbage.duckdb").string(), "--parquet",
                                     (dir / "out2").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(test::one_line(bad.err)) << bad.err;
  EXPECT_TRUE(contains(bad.err, "garbage.duckdb")) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "out2"));
}

// ---- helpers ----

TEST(Store, ParsesMatrixNames) {
  const MatrixName a = parse_matrix_name("model.layers.3.mlp.down_proj");
  EXPECT_EQ(a.layer, 3);
  EXPECT_EQ(a.component, "mlp.down_proj");
  const MatrixName b = parse_matrix_name("model.decoder.layers.11.fc1");
  EXPECT_EQ(b.layer, 11);
  EXPECT_EQ(b.component, "fc1");
  for (const char* bad : {"lm_head", "model.layers.x.mlp", "model.layers.3", "model.layers.3.", "model.mylayers.3.fc1"})
    error_of([&] { parse_matrix_name(bad); }, ErrorKind::kBadInput);
}

TEST(Store, HashesTokensWithFnv1a) {
  // Reference values: FNV-1a 64 of the little-endian bytes, computed with Python.
  EXPECT_EQ(token_hash({}), "fnv1a64:cbf29ce484222325");
  const std::vector<int32_t> abcd = {0x64636261};  // the bytes "abcd"
  EXPECT_EQ(token_hash(abcd), "fnv1a64:fc179f83ee0724dd");
  const std::vector<int32_t> mixed = {1, -2, 70000};
  EXPECT_EQ(token_hash(mixed), "fnv1a64:c5e4aecd8c1d4a3f");
}

}  // namespace
}  // namespace sparsa
