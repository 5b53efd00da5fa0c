// sparsa serve: the dashboard's HTTP API over a small study database written here with the
// store API (so every expected number is known), the embedded files, the sandbox (no statement
// changes the file), the limits, JSON errors, and a load test of concurrent requests during a
// long query. Everything runs in-process on an ephemeral loopback port.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sparsa/prune.h"
#include "sparsa/serve.h"
#include "sparsa/store.h"
#include "sparsa/viz.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::TempDir;

constexpr int64_t kRows = 16, kCols = 24;
const std::string kMatrix = "model.layers.0.mlp.up_proj";
const std::string kSource = "wanda/u50";  // the masks of the Wanda run (sparsa/runs.h mask_source_key)
const std::string kSourceDescription = "wanda u50 model.layers.0.mlp.up_proj rows";

// Row r prunes its first (r % 8) + 4 columns: row r keeps kCols - (r % 8) - 4 of kCols.
Mask test_mask() {
  Mask m(kRows, kCols);
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t c = 0; c < (r % 8) + 4; ++c) m.pruned[static_cast<size_t>(r * kCols + c)] = 1;
  return m;
}
double kept_fraction_of_row(int64_t r) { return static_cast<double>(kCols - (r % 8) - 4) / kCols; }

struct StudyIds {
  int64_t dense = 0, wanda = 0, sgpt = 0, analysis_k2 = 0;
};

// A small study: a dense run, two prune runs (one mask file), their comparison, activation
// thresholds with a histogram, and a clustering of the Wanda mask's rows with its t-SNE.
StudyIds write_study(const fs::path& dir) {
  const auto store = Store::open(dir / "study.duckdb", Store::Mode::kReadWrite);
  StudyIds ids;
  {
    RunWriter w = store->begin_run({.kind = RunKind::kDense, .model_name = "tiny", .model_path = "/nonexistent/tiny"});
    ids.dense = w.run_id();
    w.add_perplexity({.dataset = "persuasion", .kind = PplKind::kDense, .ppl = 10.0, .tokens = 2048, .seconds = 1});
    w.commit();
  }
  const Mask mask = test_mask();
  auto prune_run = [&](const std::string& method, double ppl) {
    RunWriter w = store->begin_run({.kind = RunKind::kPrune, .model_name = "tiny", .model_path = "/nonexistent/tiny",
                                    .method = method, .target = SparsityTarget{0.5}});
    w.add_matrix({.hf_name = kMatrix, .rows = kRows, .cols = kCols,
                  .sparsity = static_cast<double>(mask.count()) / (kRows * kCols), .seconds = 0.1});
    w.add_perplexity({.dataset = "persuasion", .kind = PplKind::kPruned, .ppl = ppl, .tokens = 2048, .seconds = 1});
    std::vector<FeatureMetric> rows;
    for (int64_t r = 0; r < kRows; ++r) rows.push_back({r, (r % 8) + 4, kept_fraction_of_row(r)});
    w.add_feature_metrics({kMatrix, FeatureAxis::kRow}, rows);
    const int64_t id = w.run_id();
    w.commit();
    return id;
  };
  ids.wanda = prune_run("wanda", 12.5);
  ids.sgpt = prune_run("sparsegpt", 11.5);
  PruneResult pr;
  pr.linears.push_back({.layer = 0, .role = LinearRole::kUp, .name = kMatrix, .mask = mask});
  fs::create_directories(dir / "masks");
  write_mask_file(dir / "masks" / "wanda_u50.safetensors", pr, PruneMethod::kWanda, SparsityTarget{0.5});
  {
    RunWriter w = store->begin_run({.kind = RunKind::kCompare, .model_name = "tiny", .options = "pair"});
    const ComparisonRow c{.run_a = ids.wanda, .run_b = ids.sgpt, .hf_name = kMatrix, .jaccard = 0.75,
                          .hamming = 0.125, .cosine = 0.9, .sparsity_a = 0.3, .sparsity_b = 0.3};
    w.add_comparisons({&c, 1});
    w.commit();
  }
  {
    RunWriter w = store->begin_run({.kind = RunKind::kActs, .model_name = "tiny"});
    const ActThresholdRow t[] = {{0, ObsPoint::kDownIn, 0.25, 0.1}, {0, ObsPoint::kDownIn, 0.5, 0.3}};
    w.add_act_thresholds(t);
    const double edges[] = {-1, 0, 1};
    const int64_t counts[] = {3, 5};
    w.add_act_histogram(0, ObsPoint::kDownIn, edges, counts);
    w.commit();
  }
  {
    RunWriter w = store->begin_run({.kind = RunKind::kAnalysis, .model_name = "tiny", .method = "coactivation"});
    std::vector<int32_t> assignment;
    std::vector<TsnePoint> pts;
    for (int64_t r = 0; r < kRows; ++r) {
      assignment.push_back(static_cast<int32_t>(r % 2));
      pts.push_back({r, static_cast<double>(r), static_cast<double>(-r)});
    }
    w.add_cluster_source({.source = kSource, .layer = 0, .hf_name = kMatrix, .description = kSourceDescription});
    ids.analysis_k2 = w.add_clustering({.source = kSource, .hf_name = kMatrix, .k = 2, .separation_ratio = 1.5},
                                       assignment);
    w.add_tsne(kSource, pts);
    w.commit();
  }
  return ids;
}

// A server over the test study on an ephemeral port, serving on its own thread.
class Running {
 public:
  explicit Running(serve::ServeOptions o) : server_(std::make_unique<serve::Server>(o)), host_(o.host) {
    thread_ = std::thread([this] { server_->run(); });
  }
  ~Running() {
    server_->stop();
    thread_.join();
  }
  // A client that sends the server's token (as a script of the dashboard's pages would, in its cookie).
  httplib::Client client() const {
    httplib::Client c = bare_client();
    if (!server_->token().empty()) c.set_default_headers({{"X-Sparsa-Token", server_->token()}});
    return c;
  }
  // A client without the token.
  httplib::Client bare_client() const {
    httplib::Client c(host_ == "0.0.0.0" ? "127.0.0.1" : host_, server_->port());
    c.set_read_timeout(60, 0);
    return c;
  }
  const serve::Server& server() const { return *server_; }
  std::string port_text() const { return std::to_string(server_->port()); }

 private:
  std::unique_ptr<serve::Server> server_;
  std::string host_;
  std::thread thread_;
};

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    ids_ = write_study(dir_->path());
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static fs::path db() { return dir_->path() / "study.duckdb"; }
  static serve::ServeOptions options() {
    serve::ServeOptions o;
    o.db = db();
    o.port = 0;
    o.bench_results = test::repo_dir() / "bench" / "RESULTS.md";
    return o;
  }
  // GET `path` and parse the JSON body; expects `status`.
  static json get_json(const Running& s, const std::string& path, int status = 200) {
    auto res = s.client().Get(path.c_str());
    EXPECT_TRUE(res) << path;
    if (!res) return {};
    EXPECT_EQ(res->status, status) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << path;
    return json::parse(res->body);
  }
  static json post_sql(const Running& s, const std::string& sql, int status) {
    auto res = s.client().Post("/api/sql", json{{"sql", sql}}.dump(), "application/json");
    EXPECT_TRUE(res) << sql;
    if (!res) return {};
    EXPECT_EQ(res->status, status) << sql << ": " << res->body;
    return json::parse(res->body);
  }

  static std::unique_ptr<TempDir> dir_;
  static StudyIds ids_;
};
std::unique_ptr<TempDir> ServeTest::dir_;
StudyIds ServeTest::ids_;

void expect_json_error(const json& j, int status) {
  EXPECT_EQ(j.value("status", 0), status) << j.dump();
  ASSERT_TRUE(j.contains("error")) << j.dump();
  EXPECT_FALSE(j["error"].get<std::string>().empty());
}

TEST_F(ServeTest, ServesTheEmbeddedPagesAndChartLibrary) {
  Running s(options());
  auto c = s.client();
  auto index = c.Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_EQ(index->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(index->body, test::read_file(test::repo_dir() / "web" / "index.html"));
  for (const char* f : {"vega.min.js", "vega-lite.min.js", "vega-embed.min.js"}) {
    auto res = c.Get(std::string("/vendor/") + f);
    ASSERT_TRUE(res) << f;
    EXPECT_EQ(res->status, 200) << f;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
    EXPECT_EQ(res->body, test::read_file(test::repo_dir() / "third_party" / "web" / f)) << f;
  }
  auto page = c.Get("/pages/matrix.js");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->body, test::read_file(test::repo_dir() / "web" / "pages" / "matrix.js"));
  EXPECT_EQ(index->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_NE(index->get_header_value("Content-Security-Policy").find("default-src 'self'"), std::string::npos);
}

TEST_F(ServeTest, NoPathReachesTheFileSystem) {
  Running s(options());
  auto c = s.client();
  for (const char* path : {"/../CMakeLists.txt", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
                           "/web/index.html", "/pages/../../CMakeLists.txt", "/vendor/../../README.md",
                           "//etc/passwd", "/index.html%00.js", "/style.css/"}) {
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_TRUE(res->status == 404 || res->status == 400) << path << " -> " << res->status;
    EXPECT_EQ(res->body.find("root:"), std::string::npos) << path;
    EXPECT_EQ(res->body.find("cmake_minimum_required"), std::string::npos) << path;
  }
}

TEST_F(ServeTest, NamedQueriesReturnTheStudy) {
  Running s(options());
  const json runs = get_json(s, "/api/q/runs");
  ASSERT_EQ(runs["rows"].size(), 6u);
  EXPECT_EQ(runs["columns"][0], "run_id");
  const json ppl = get_json(s, "/api/q/perplexities");
  ASSERT_EQ(ppl["rows"].size(), 3u);
  const json mats = get_json(s, "/api/q/matrices?run=" + std::to_string(ids_.wanda));
  ASSERT_EQ(mats["rows"].size(), 1u);
  EXPECT_EQ(mats["rows"][0][0], kMatrix);
  EXPECT_EQ(mats["rows"][0][3], kRows);
  EXPECT_EQ(mats["rows"][0][4], kCols);
  const json feats = get_json(s, "/api/q/features?run=" + std::to_string(ids_.wanda) + "&matrix=" + kMatrix + "&axis=row");
  ASSERT_EQ(feats["rows"].size(), static_cast<size_t>(kRows));
  for (int64_t r = 0; r < kRows; ++r) {
    EXPECT_EQ(feats["rows"][r][0], r);
    EXPECT_DOUBLE_EQ(feats["rows"][r][2].get<double>(), kept_fraction_of_row(r));
  }
  const json cmp = get_json(s, "/api/q/comparison?a=" + std::to_string(ids_.wanda) + "&b=" + std::to_string(ids_.sgpt));
  ASSERT_EQ(cmp["rows"].size(), 1u);
  EXPECT_DOUBLE_EQ(cmp["rows"][0][3].get<double>(), 0.75);
  // A clustering names its source by key and by description (the dashboard's picker shows the latter).
  const json clusterings = get_json(s, "/api/q/clusterings");
  ASSERT_EQ(clusterings["rows"].size(), 1u);
  const json& cols = clusterings["columns"];
  const auto at = [&](const char* name) { return std::find(cols.begin(), cols.end(), name) - cols.begin(); };
  EXPECT_EQ(clusterings["rows"][0][at("source")], kSource);
  EXPECT_EQ(clusterings["rows"][0][at("description")], kSourceDescription);
  const json tsne = get_json(s, "/api/q/tsne?analysis=" + std::to_string(ids_.analysis_k2));
  ASSERT_EQ(tsne["rows"].size(), static_cast<size_t>(kRows));
  EXPECT_EQ(tsne["rows"][3][3], 1);  // feature 3 is in cluster 3 % 2
  const json hist = get_json(s, "/api/q/act_histogram?layer=0&point=down_in");
  ASSERT_EQ(hist["rows"].size(), 2u);
  EXPECT_EQ(hist["rows"][1][3], 5);
  const json tables = get_json(s, "/api/q/tables");
  EXPECT_GE(tables["rows"].size(), 12u);
  const json info = get_json(s, "/api/info");
  EXPECT_EQ(info["db"], db().string());
  EXPECT_TRUE(info["queries"].contains("features"));
  const json notes = get_json(s, "/api/bench-results");
  EXPECT_EQ(notes["markdown"], test::read_file(test::repo_dir() / "bench" / "RESULTS.md"));
}

// With no --bench-results file the benchmarks page shows the notes built into the binary, so an
// installed binary needs no source tree.
TEST_F(ServeTest, BenchmarkNotesAreBuiltIn) {
  serve::ServeOptions o = options();
  o.bench_results.clear();
  Running s(o);
  const json notes = get_json(s, "/api/bench-results");
  EXPECT_EQ(notes["markdown"], test::read_file(test::repo_dir() / "bench" / "RESULTS.md"));
  EXPECT_EQ(notes["path"], "bench/RESULTS.md (built in)");
}

TEST_F(ServeTest, TextParametersAreQuotedNotInjected) {
  Running s(options());
  const std::string w = std::to_string(ids_.wanda);
  EXPECT_EQ(get_json(s, "/api/q/features?run=" + w + "&matrix=x'%20OR%20'1'='1&axis=row")["rows"].size(), 0u);
  const json err = get_json(s, "/api/q/features?run=" + w + "%20OR%20true&matrix=a&axis=row", 400);
  expect_json_error(err, 400);
}

TEST_F(ServeTest, ErrorsAreJsonWithStatusCodes) {
  Running s(options());
  expect_json_error(get_json(s, "/api/q/no_such_query", 404), 404);
  expect_json_error(get_json(s, "/api/q/matrices", 400), 400);
  expect_json_error(get_json(s, "/api/q/matrices?run=abc", 400), 400);
  expect_json_error(get_json(s, "/api/nothing", 404), 404);
  expect_json_error(get_json(s, "/api/img/spy.png?run=999999&matrix=x", 404), 404);
  expect_json_error(get_json(s, "/no/such/page.html", 404), 404);
  auto c = s.client();
  auto put = c.Put("/api/sql", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  expect_json_error(json::parse(put->body), 405);
  auto bad_json = c.Post("/api/sql", "not json", "application/json");
  ASSERT_TRUE(bad_json);
  EXPECT_EQ(bad_json->status, 400);
  expect_json_error(json::parse(bad_json->body), 400);
  const json bad_sql = post_sql(s, "SELEC 1", 400);
  EXPECT_NE(bad_sql["error"].get<std::string>().find("syntax"), std::string::npos) << bad_sql.dump();
}

TEST_F(ServeTest, OnlyLoopbackHostNamesAreServed) {
  Running s(options());
  auto c = s.client();
  auto evil = c.Get("/api/q/runs", {{"Host", "attacker.example:80"}});
  ASSERT_TRUE(evil);
  EXPECT_EQ(evil->status, 403);
  expect_json_error(json::parse(evil->body), 403);
  auto local = c.Get("/api/q/runs", {{"Host", "localhost:" + std::to_string(s.server().port())}});
  ASSERT_TRUE(local);
  EXPECT_EQ(local->status, 200);
}

TEST_F(ServeTest, SqlConsoleAnswersReadOnlyQueries) {
  Running s(options());
  const json j = post_sql(s, "SELECT method, count(*) AS n FROM runs WHERE kind = 'prune' GROUP BY method ORDER BY method", 200);
  EXPECT_EQ(j["columns"], json({"method", "n"}));
  EXPECT_EQ(j["rows"], json::parse(R"([["sparsegpt", 1], ["wanda", 1]])"));
  EXPECT_FALSE(j["truncated"].get<bool>());
}

TEST_F(ServeTest, NoStatementChangesTheDatabaseOrReachesOtherFiles) {
  const std::string before = test::read_file(db());
  TempDir other;
  const std::string copy_target = (other.path() / "leak.csv").string();
  const std::string attach_target = (other.path() / "other.duckdb").string();
  {
    Running s(options());
    for (const std::string& sql : std::vector<std::string>{
             "DROP TABLE runs",
             "DELETE FROM runs",
             "UPDATE runs SET kind = 'x'",
             "INSERT INTO runs (run_id, kind) VALUES (999, 'dense')",
             "CREATE TABLE t AS SELECT 1",
             "COPY runs TO '" + copy_target + "'",
             "EXPORT DATABASE '" + other.path().string() + "'",
             "ATTACH '" + attach_target + "' AS other",
             "INSTALL httpfs",
             "LOAD httpfs",
             "SET enable_external_access = true",
             "PRAGMA enable_profiling",
             "CHECKPOINT",
             "SELECT * FROM read_csv('/etc/passwd')",
             "SELECT * FROM read_text('/etc/hostname')",
             "SELECT nextval('run_id_seq')",
             "SELECT 1; DROP TABLE runs",
         }) {
      const json j = post_sql(s, sql, 400);
      expect_json_error(j, 400);
    }
    EXPECT_EQ(post_sql(s, "SELECT count(*) FROM runs", 200)["rows"][0][0], 6);
  }
  EXPECT_FALSE(fs::exists(copy_target));
  EXPECT_FALSE(fs::exists(attach_target));
  EXPECT_TRUE(test::read_file(db()) == before) << "the database file changed";
}

// A study that is still writing its database (it holds the file open read-write, which locks
// it against any other DuckDB) is served: the dashboard starts, answers from a snapshot, and
// shows the runs the writer commits afterwards, while the writer goes on writing.
TEST_F(ServeTest, AStudyStillWritingIsServedAndItsNewRunsAppear) {
  TempDir dir;
  write_study(dir.path());
  const fs::path db = dir.path() / "study.duckdb";
  const auto writer = Store::open(db, Store::Mode::kReadWrite);  // held, as a running study holds it
  serve::ServeOptions o;
  o.db = db;
  o.port = 0;
  Running s(o);
  const auto count_runs = [&] { return post_sql(s, "SELECT count(*) FROM runs", 200)["rows"][0][0].get<int64_t>(); };
  EXPECT_EQ(count_runs(), 6);
  EXPECT_EQ(get_json(s, "/api/info")["snapshot"], 1);
  for (int i = 1; i <= 3; ++i) {
    RunWriter w = writer->begin_run({.kind = RunKind::kDense, .model_name = "tiny", .options = std::to_string(i)});
    w.add_perplexity({.dataset = "persuasion", .kind = PplKind::kDense, .ppl = 10.0 + i, .tokens = 2048, .seconds = 1});
    w.commit();
    EXPECT_EQ(count_runs(), 6 + i) << "the dashboard does not show the run committed " << i << " runs ago";
  }
  EXPECT_EQ(post_sql(s, "SELECT max(ppl) FROM perplexities WHERE kind = 'dense'", 200)["rows"][0][0], 13.0);
  const json info = get_json(s, "/api/info");
  EXPECT_EQ(info["db"], db.string());  // the user's file, never the private copy
  EXPECT_GE(info["snapshot"].get<int64_t>(), 4);
  const int64_t snapshot = info["snapshot"].get<int64_t>();
  EXPECT_EQ(count_runs(), 9);
  EXPECT_EQ(get_json(s, "/api/info")["snapshot"], snapshot);  // no change, no new copy
}

TEST_F(ServeTest, QueriesStopAtTheTimeLimit) {
  serve::ServeOptions o = options();
  o.limits.max_seconds = 1.0;
  Running s(o);
  const auto start = std::chrono::steady_clock::now();
  const json j = post_sql(s, "SELECT sum(hash(a.range * b.range)) FROM range(200000) a, range(200000) b", 400);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(j.value("error", "").find("time limit"), std::string::npos) << j.dump();
  EXPECT_LT(seconds, 10.0);
}

TEST_F(ServeTest, ResultsAreLimitedInRowsAndBytes) {
  serve::ServeOptions o = options();
  o.limits.max_rows = 7;
  o.max_response_bytes = 4000;
  Running s(o);
  const json few = post_sql(s, "SELECT range AS i FROM range(100)", 200);
  EXPECT_EQ(few["rows"].size(), 7u);
  EXPECT_TRUE(few["truncated"].get<bool>());
  const json big = post_sql(s, "SELECT repeat('x', 1000) AS s FROM range(10)", 413);
  expect_json_error(big, 413);
}

TEST_F(ServeTest, LargeRequestsAreRefused) {
  serve::ServeOptions o = options();
  o.max_request_bytes = 1024;
  Running s(o);
  auto res = s.client().Post("/api/sql", json{{"sql", "SELECT '" + std::string(4096, 'x') + "'"}}.dump(),
                             "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  expect_json_error(json::parse(res->body), 413);
  const json small = post_sql(s, "SELECT 42 AS answer", 200);
  EXPECT_EQ(small["rows"][0][0], 42);
}

TEST_F(ServeTest, SpyImageIsTheMaskOfTheRun) {
  Running s(options());
  auto res = s.client().Get(("/api/img/spy.png?run=" + std::to_string(ids_.wanda) + "&matrix=" + kMatrix +
                             "&width=600&height=400").c_str());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "image/png");
  viz::SpyOptions o;
  o.frame = {600, 400, "wanda u50 (run " + std::to_string(ids_.wanda) + "): " + kMatrix, "input feature (column)",
             "output feature (row)"};
  o.set_label = "pruned";
  o.clear_label = "kept";
  const Mask m = test_mask();
  EXPECT_TRUE(res->body == viz::spy_plot(viz::BoolMatrixView(m.pruned.data(), m.rows, m.cols), o).png());
  // The SparseGPT run has no mask file in this study.
  expect_json_error(get_json(s, "/api/img/spy.png?run=" + std::to_string(ids_.sgpt) + "&matrix=" + kMatrix, 404), 404);
}

TEST_F(ServeTest, CoactivationImagesOfAMaskClustering) {
  Running s(options());
  auto c = s.client();
  const std::string a = std::to_string(ids_.analysis_k2);
  for (const std::string& path : {"/api/img/clustered_spy.png?analysis=" + a,
                                  "/api/img/gradient_spy.png?analysis=" + a + "&feature=3"}) {
    auto res = c.Get(path.c_str());
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path << ": " << res->body;
    EXPECT_EQ(res->body.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << path;
  }
  expect_json_error(get_json(s, "/api/img/gradient_spy.png?analysis=" + a + "&feature=16", 400), 400);
  expect_json_error(get_json(s, "/api/img/no_such.png", 404), 404);
}

// 50 concurrent API requests while a long query runs: every one is answered, none dropped.
TEST_F(ServeTest, ConcurrentRequestsDuringALongQueryAreAllAnswered) {
  serve::ServeOptions o = options();
  o.limits.max_seconds = 10.0;  // far longer than answering the 50 requests takes (about 2 s on 2 cores)
  Running s(o);
  std::atomic<bool> long_done{false};
  int long_status = 0;
  std::thread long_query([&] {
    auto res = s.client().Post("/api/sql",
                               json{{"sql", "SELECT sum(hash(a.range * b.range)) FROM range(300000) a, range(300000) b"}}.dump(),
                               "application/json");
    long_status = res ? res->status : -1;
    long_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  constexpr int kClients = 50;
  std::vector<int> status(kClients, 0);
  std::vector<size_t> rows(kClients, 0);
  std::vector<std::thread> clients;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      auto c = s.client();
      auto res = c.Get(i % 2 ? "/api/q/runs" : "/api/q/perplexities");
      status[static_cast<size_t>(i)] = res ? res->status : -1;
      if (res && res->status == 200) rows[static_cast<size_t>(i)] = json::parse(res->body)["rows"].size();
    });
  for (auto& t : clients) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(long_done.load()) << "the long query ended before the 50 requests were answered";
  long_query.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(status[static_cast<size_t>(i)], 200) << "request " << i;
    EXPECT_EQ(rows[static_cast<size_t>(i)], i % 2 ? 6u : 3u) << "request " << i;
  }
  EXPECT_EQ(long_status, 400);  // stopped at the time limit
  std::printf("50 concurrent requests answered in %.2f s during the long query\n", seconds);
}

TEST_F(ServeTest, APortInUseIsAnError) {
  Running s(options());
  serve::ServeOptions o = options();
  o.port = s.server().port();
  try {
    serve::Server second(o);
    ADD_FAILURE() << "a second server bound port " << o.port;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find(std::to_string(o.port)), std::string::npos) << e.what();
  }
}

// ---- access: token, origin, Host ----

TEST_F(ServeTest, EveryApiRequestNeedsTheLaunchToken) {
  Running s(options());
  const std::string token = s.server().token();
  ASSERT_EQ(token.size(), 48u);
  EXPECT_EQ(s.server().url(), "http://127.0.0.1:" + s.port_text() + "/?token=" + token);
  auto bare = s.bare_client();
  for (const char* path : {"/api/q/runs", "/api/info", "/api/img/spy.png?run=1&matrix=x", "/api/nothing"}) {
    auto res = bare.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
    expect_json_error(json::parse(res->body), 401);
  }
  auto post = bare.Post("/api/sql", R"({"sql": "SELECT 1"})", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 401);
  auto wrong = bare.Get("/api/q/runs", {{"X-Sparsa-Token", std::string(48, '0')}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  const std::string cookie = "sparsa_token_" + s.port_text();
  auto other_cookie = bare.Get("/api/q/runs", {{"Cookie", "sparsa_token_1=" + token}});
  ASSERT_TRUE(other_cookie);
  EXPECT_EQ(other_cookie->status, 401);
  auto by_cookie = bare.Get("/api/q/runs", {{"Cookie", "a=b; " + cookie + "=" + token + "; c=d"}});
  ASSERT_TRUE(by_cookie);
  EXPECT_EQ(by_cookie->status, 200) << by_cookie->body;
  // Pages hold no data and load without it; the URL's token becomes the cookie.
  auto page = bare.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  auto visit = bare.Get(("/?token=" + token).c_str());
  ASSERT_TRUE(visit);
  EXPECT_EQ(visit->status, 302);
  EXPECT_EQ(visit->get_header_value("Location"), "/");
  EXPECT_EQ(visit->get_header_value("Set-Cookie"), cookie + "=" + token + "; Path=/; HttpOnly; SameSite=Strict");
  auto bad_visit = bare.Get("/?token=nope");
  ASSERT_TRUE(bad_visit);
  EXPECT_EQ(bad_visit->status, 401);
  EXPECT_TRUE(bad_visit->get_header_value("Set-Cookie").empty());
}

TEST_F(ServeTest, TheTokenCanBeTurnedOffOnLoopback) {
  serve::ServeOptions o = options();
  o.require_token = false;
  Running s(o);
  EXPECT_EQ(s.server().url(), "http://127.0.0.1:" + s.port_text() + "/");
  auto res = s.bare_client().Get("/api/q/runs");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  // The origin checks hold without a token.
  auto cross = s.bare_client().Get("/api/q/runs", {{"Sec-Fetch-Site", "cross-site"}});
  ASSERT_TRUE(cross);
  EXPECT_EQ(cross->status, 403);
}

TEST_F(ServeTest, CrossOriginApiRequestsAreRefused) {
  Running s(options());
  auto c = s.client();
  const std::string self = "http://127.0.0.1:" + s.port_text();
  const std::vector<httplib::Headers> refused = {
      {{"Origin", "http://attacker.example"}},
      {{"Origin", "null"}},
      {{"Origin", "http://127.0.0.1:1"}},
      {{"Origin", "https://127.0.0.1:" + s.port_text()}},
      {{"Sec-Fetch-Site", "cross-site"}},
      {{"Sec-Fetch-Site", "same-site"}},
      {{"Origin", self}, {"Sec-Fetch-Site", "cross-site"}},
  };
  for (const httplib::Headers& h : refused) {
    const std::string what = h.begin()->first + ": " + h.begin()->second;
    auto get = c.Get("/api/q/runs", h);
    ASSERT_TRUE(get) << what;
    EXPECT_EQ(get->status, 403) << what;
    expect_json_error(json::parse(get->body), 403);
    // A "simple" POST, as any page may send without asking: refused before the query runs.
    auto post = c.Post("/api/sql", h, R"({"sql": "SELECT 1"})", "text/plain");
    ASSERT_TRUE(post) << what;
    EXPECT_EQ(post->status, 403) << what;
  }
  for (const httplib::Headers& h : std::vector<httplib::Headers>{{{"Origin", self}},
                                                                  {{"Sec-Fetch-Site", "same-origin"}},
                                                                  {{"Sec-Fetch-Site", "none"}},
                                                                  {{"Origin", self}, {"Sec-Fetch-Site", "same-origin"}}}) {
    auto post = c.Post("/api/sql", h, R"({"sql": "SELECT 1"})", "application/json");
    ASSERT_TRUE(post);
    EXPECT_EQ(post->status, 200) << h.begin()->first << ": " << post->body;
  }
}

// The Host check holds for every bind address, not only 127.0.0.1.
TEST_F(ServeTest, HostMustNameTheBoundAddress) {
  struct Case {
    std::string bind;
    std::vector<std::string> allowed, refused;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1", {"127.0.0.1:P", "localhost:P", "LOCALHOST:P", "[::1]:P"},
       {"attacker.example:P", "127.0.0.1:1", "127.0.0.1", "127.0.0.2:P", "", "::1:P", "127.0.0.1:P:P"}},
      {"127.0.0.2", {"127.0.0.2:P", "localhost:P", "127.0.0.1:P"}, {"attacker.example:P", "127.0.0.3:P", "127.0.0.2"}},
      {"localhost", {"localhost:P", "127.0.0.1:P"}, {"attacker.example:P", "localhost.attacker.example:P"}},
  };
  for (const Case& c : cases) {
    serve::ServeOptions o = options();
    o.host = c.bind;
    Running s(o);
    auto client = s.client();
    const auto with_port = [&](std::string h) {
      for (size_t at; (at = h.find(":P")) != std::string::npos;) h.replace(at, 2, ":" + s.port_text());
      return h;
    };
    for (const std::string& h : c.allowed) {
      auto res = client.Get("/api/q/runs", {{"Host", with_port(h)}});
      ASSERT_TRUE(res) << c.bind << " " << h;
      EXPECT_EQ(res->status, 200) << c.bind << " Host " << with_port(h);
    }
    for (const std::string& h : c.refused) {
      auto res = client.Get("/api/q/runs", {{"Host", with_port(h)}});
      ASSERT_TRUE(res) << c.bind << " " << h;
      EXPECT_EQ(res->status, 403) << c.bind << " Host " << with_port(h);
    }
  }
}

TEST_F(ServeTest, HostOfAnIpv6LoopbackBind) {
  serve::ServeOptions o = options();
  o.host = "::1";
  std::unique_ptr<Running> s;
  try {
    s = std::make_unique<Running>(o);
  } catch (const Error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  EXPECT_EQ(s->server().url(), "http://[::1]:" + s->port_text() + "/?token=" + s->server().token());
  auto c = s->client();
  for (const std::string& h : {"[::1]:" + s->port_text(), "localhost:" + s->port_text()}) {
    auto res = c.Get("/api/q/runs", {{"Host", h}});
    ASSERT_TRUE(res) << h;
    EXPECT_EQ(res->status, 200) << h;
  }
  auto evil = c.Get("/api/q/runs", {{"Host", "attacker.example:" + s->port_text()}});
  ASSERT_TRUE(evil);
  EXPECT_EQ(evil->status, 403);
}

TEST_F(ServeTest, ANonLoopbackAddressMustBeAskedForAndKeepsTheToken) {
  serve::ServeOptions o = options();
  o.host = "0.0.0.0";
  try {
    serve::Server refused(o);
    ADD_FAILURE() << "served 0.0.0.0 without allow_remote";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find("0.0.0.0"), std::string::npos) << e.what();
  }
  o.allow_remote = true;
  o.require_token = false;
  EXPECT_THROW(serve::Server no_token(o), Error);
  o.require_token = true;
  Running s(o);
  auto c = s.client();
  for (const std::string& h : {"127.0.0.1:P", "10.1.2.3:P", "[::1]:P"}) {
    auto res = c.Get("/api/q/runs", {{"Host", h.substr(0, h.size() - 1) + s.port_text()}});
    ASSERT_TRUE(res) << h;
    EXPECT_EQ(res->status, 200) << h;
  }
  auto rebound = c.Get("/api/q/runs", {{"Host", "attacker.example:" + s.port_text()}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403);
  auto bare = s.bare_client().Get("/api/q/runs");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->status, 401);
}

// ---- request bodies: counted while read, whatever the transfer encoding ----

// A raw HTTP/1.1 connection to the server (cpp-httplib's client cannot send a chunked body).
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  }
  ~RawConnection() { close(fd_); }
  bool send_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Everything the server sends until it closes the connection.
  std::string receive_all() {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = recv(fd_, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  int fd_;
};

std::string chunk(std::string_view data) { return fmt::format("{:x}\r\n{}\r\n", data.size(), data); }

std::string chunked_head(const Running& s, const std::string& method, const std::string& path) {
  return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + s.port_text() + "\r\nX-Sparsa-Token: " +
         s.server().token() + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
}

TEST_F(ServeTest, ChunkedBodiesAreHeldToTheRequestLimit) {
  serve::ServeOptions o = options();
  o.max_request_bytes = 4096;
  Running s(o);
  {  // a small chunked body is read and answered
    RawConnection c(s.server().port());
    const std::string body = json{{"sql", "SELECT 42 AS answer"}}.dump();
    ASSERT_TRUE(c.send_all(chunked_head(s, "POST", "/api/sql") + chunk(body.substr(0, 5)) + chunk(body.substr(5)) +
                           "0\r\n\r\n"));
    const std::string reply = c.receive_all();
    EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 200") << reply;
    EXPECT_NE(reply.find(R"("rows":[[42]])"), std::string::npos) << reply;
  }
  // A chunked body of up to 256 MiB: refused once it passes 4 KiB, the connection closed, so the
  // sender is stopped long before it has sent the whole body (the server never holds it).
  for (const std::string& target : {"POST /api/sql", "POST /api/other", "PUT /api/sql", "PATCH /", "DELETE /api/sql",
                                    "PRI /api/sql"}) {
    RawConnection c(s.server().port());
    const std::string method = target.substr(0, target.find(' ')), path = target.substr(target.find(' ') + 1);
    ASSERT_TRUE(c.send_all(chunked_head(s, method, path)));
    std::atomic<size_t> sent{0};
    std::thread sender([&] {
      const std::string piece = chunk(std::string(64 * 1024, 'x'));
      while (sent < (size_t{256} << 20) && c.send_all(piece)) sent += piece.size();
    });
    const std::string reply = c.receive_all();
    sender.join();
    const std::string expected = method == "POST" && path == "/api/sql" ? "HTTP/1.1 413" : "HTTP/1.1 405";
    EXPECT_EQ(reply.substr(0, 12), expected) << target << ": " << reply.substr(0, 200);
    EXPECT_LT(sent.load(), size_t{64} << 20) << target << ": the server kept reading the refused body";
  }
}

// ---- queries: DuckDB's memory and threads, answers capped while built, queries at once ----

TEST_F(ServeTest, DuckDbRunsWithTheMemoryAndThreadLimits) {
  TempDir own;  // a database of its own: no other test's queries may have left a spill folder
  fs::copy_file(db(), own / "study.duckdb");
  serve::ServeOptions o = options();
  o.db = own / "study.duckdb";
  o.query_memory_bytes = size_t{64} << 20;
  o.query_threads = 1;
  o.limits.max_seconds = 30;
  Running s(o);
  const json settings = post_sql(s, "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t, "
                                    "current_setting('enable_external_access') AS e, "
                                    "current_setting('lock_configuration') AS l", 200);
  EXPECT_EQ(settings["rows"][0][2], false) << settings.dump();
  EXPECT_EQ(settings["rows"][0][3], true) << settings.dump();
  EXPECT_EQ(settings["rows"][0][0], "64.0 MiB") << settings.dump();
  EXPECT_EQ(settings["rows"][0][1], 1) << settings.dump();
  // A query needing far more than 64 MiB fails (nothing spills to disk) instead of taking it.
  const json big = post_sql(s, "SELECT count(*) FROM (SELECT DISTINCT range::VARCHAR || 'x' FROM range(20000000))", 400);
  EXPECT_NE(big.value("error", "").find("emory"), std::string::npos) << big.dump();
  EXPECT_FALSE(fs::exists(own / "study.duckdb.tmp")) << "DuckDB spilled to disk";
  // ... and the sandbox still holds: no setting can be changed back.
  expect_json_error(post_sql(s, "SET temp_directory = '/tmp'", 400), 400);
}

TEST_F(ServeTest, AnAnswerIsRefusedAsSoonAsItPassesTheResponseLimit) {
  serve::ServeOptions o = options();
  o.limits.max_rows = 1'000'000'000;
  o.limits.max_seconds = 60;
  o.max_response_bytes = 100'000;
  Running s(o);
  const auto start = std::chrono::steady_clock::now();
  const json j = post_sql(s, "SELECT range AS i, repeat('x', 100) AS s FROM range(200000000)", 413);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expect_json_error(j, 413);
  EXPECT_NE(j.value("error", "").find("100000 bytes"), std::string::npos) << j.dump();
  EXPECT_LT(seconds, 5.0) << "the answer was built before it was refused";
  // Named queries are held to it too; under it both answer.
  const json small = post_sql(s, "SELECT range AS i FROM range(10)", 200);
  EXPECT_EQ(small["rows"].size(), 10u);
  EXPECT_EQ(get_json(s, "/api/info")["limits"]["max_bytes"], 100'000);
}

TEST_F(ServeTest, QueriesBeyondTheConcurrentLimitWait) {
  serve::ServeOptions o = options();
  o.max_queries = 1;
  o.limits.max_seconds = 1.0;
  Running s(o);
  const std::string slow = "SELECT sum(hash(a.range * b.range)) FROM range(300000) a, range(300000) b";
  std::vector<int> status(2, 0);
  std::vector<double> seconds(2, 0);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (size_t i = 0; i < 2; ++i)
    clients.emplace_back([&, i] {
      if (i == 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      auto res = s.client().Post("/api/sql", json{{"sql", slow}}.dump(), "application/json");
      status[i] = res ? res->status : -1;
      seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(status[0], 400);  // the time limit
  // The second waited for the only slot: it ran after the first (its own time limit too), or gave up.
  EXPECT_TRUE((status[1] == 400 && seconds[1] > 1.8) || status[1] == 503) << status[1] << " after " << seconds[1];
}

TEST(ServeCli, RefusesAMissingDatabaseWithOneLine) {
  TempDir d;
  const auto r = test::run_sparsa({"serve", "--db", (d.path() / "none.duckdb").string(), "--port", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("none.duckdb"), std::string::npos) << r.err;
}

TEST(ServeCli, HelpExplainsTheOptions) {
  const auto r = test::run_sparsa({"serve", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--db", "--host", "--port", "--max-rows", "--max-seconds", "--max-request-bytes",
                          "--max-response-bytes", "--no-token", "--allow-remote", "--query-memory", "--query-threads",
                          "--max-queries", "Origin", "token"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
}

TEST(ServeCli, ANonLoopbackHostNeedsAllowRemote) {
  TempDir d;
  const std::string db = (d.path() / "s.duckdb").string();
  Store::open(db, Store::Mode::kReadWrite);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"serve", "--db", db, "--port", "0", "--host", "0.0.0.0"},
        std::vector<std::string>{"serve", "--db", db, "--port", "0", "--host", "0.0.0.0", "--allow-remote", "--no-token"}}) {
    const auto r = test::run_sparsa(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("0.0.0.0"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(args.back() == "--no-token" ? "--no-token" : "--allow-remote"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace sparsa
