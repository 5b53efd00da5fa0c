// A study database built from individual commands (`--db FILE` of prune, eval, compare and
// acts; docs/db-commands.md): the runs and rows each adds, the links between them (a compare
// run references the prune runs of its folders), reruns that add nothing, mask files registered
// as prune runs, one-line errors for bad and locked databases, and the dashboard over the result.
#include <httplib.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sparsa/serve.h"
#include "sparsa/store.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_sparsa;
using test::TempDir;

constexpr int64_t kLayers = 6;                 // models/tiny-llama-15m
constexpr int64_t kMatrices = kLayers * 7;     // q, k, v, o, gate, up, down

std::string calib_tokens() { return (test::repo_dir() / "data" / "calib-tokens.safetensors").string(); }
std::string eval_text() { return (test::repo_dir() / "data" / "persuasion.txt").string(); }

// The commands of a small study, in order; each must exit 0.
struct Commands {
  explicit Commands(const TempDir& t) : dir(t.path()), db((t / "db.duckdb").string()) {}
  fs::path dir;
  std::string db;
  std::vector<std::string> prune_magnitude() const {
    return {"prune", "--method", "magnitude", "--sparsity", "0.5", "--out", (dir / "mag").string(), "--db", db};
  }
  std::vector<std::string> prune_wanda() const {
    return {"prune", "--method", "wanda", "--sparsity", "0.5", "--calib", calib_tokens(), "--nsamples", "2",
            "--seqlen", "64", "--out", (dir / "wanda").string(), "--db", db};
  }
  std::vector<std::string> eval_dense() const { return {"eval", "--eval-limit", "1", "--json", "--db", db}; }
  std::vector<std::string> eval_wanda() const {
    return {"eval", "--model", (dir / "wanda").string(), "--eval-limit", "1", "--json", "--db", db};
  }
  std::vector<std::string> compare() const {
    return {"compare", (dir / "mag").string(), (dir / "wanda").string(), "--db", db};
  }
  std::vector<std::string> acts() const {
    return {"acts", "--calib", calib_tokens(), "--calib-key", "calib", "--nsamples", "2", "--seqlen", "64",
            "--act-sparsities", "0.25,0.5", "--eval-text", eval_text(), "--eval-limit", "1", "--json", "--db", db};
  }
};

int64_t scalar(const Store& s, const std::string& sql) { return s.query_json(sql)["rows"][0][0].get<int64_t>(); }
double number(const Store& s, const std::string& sql) { return s.query_json(sql)["rows"][0][0].get<double>(); }

class DbCommandsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = std::make_unique<TempDir>();
    cmd_ = std::make_unique<Commands>(*tmp_);
    for (const auto& args : {cmd_->prune_magnitude(), cmd_->prune_wanda(), cmd_->eval_dense(), cmd_->eval_wanda(),
                             cmd_->compare(), cmd_->acts()})
      results_.push_back(run_sparsa(args));
  }
  static void TearDownTestSuite() {
    cmd_.reset();
    tmp_.reset();
  }
  static bool all_succeeded() {
    bool ok = true;
    for (const auto& r : results_) {
      EXPECT_EQ(r.exit_code, 0) << r.err;
      ok = ok && r.exit_code == 0;
    }
    return ok;
  }
  static std::unique_ptr<Store> open() { return Store::open(cmd_->db, Store::Mode::kReadOnly); }
  static int64_t run_of(const Store& s, const std::string& where) {
    return scalar(s, "SELECT max(run_id) FROM runs WHERE " + where);
  }

  static std::unique_ptr<TempDir> tmp_;
  static std::unique_ptr<Commands> cmd_;
  static std::vector<test::CommandResult> results_;  // in Commands order
};
std::unique_ptr<TempDir> DbCommandsTest::tmp_;
std::unique_ptr<Commands> DbCommandsTest::cmd_;
std::vector<test::CommandResult> DbCommandsTest::results_;

TEST_F(DbCommandsTest, EachCommandAddsOneRunOfItsKind) {
  ASSERT_TRUE(all_succeeded());
  const auto s = open();
  const json runs = s->query_json("SELECT kind, method, structure FROM runs ORDER BY run_id");
  const json expected = json::parse(R"([["prune", "magnitude", "u50"], ["prune", "wanda", "u50"], ["dense", null, null],
                                        ["prune", "wanda", "u50"], ["compare", "magnitude-vs-wanda", "u50"],
                                        ["acts", null, null]])");
  EXPECT_EQ(runs["rows"], expected) << runs.dump();
  for (const auto& r : results_) EXPECT_NE(r.err.find("added run"), std::string::npos) << r.err;
}

TEST_F(DbCommandsTest, PruneRunsHoldEveryMatrixAndItsFeatures) {
  ASSERT_TRUE(all_succeeded());
  const auto s = open();
  for (const char* method : {"magnitude", "wanda"}) {
    const int64_t id = run_of(*s, fmt::format("kind = 'prune' AND method = '{}'", method));
    EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM matrices WHERE run_id = {}", id)), kMatrices) << method;
    EXPECT_NEAR(number(*s, fmt::format("SELECT avg(sparsity) FROM matrices WHERE run_id = {}", id)), 0.5, 5e-3);
    // one own-statistics row per row and per column of every matrix
    EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM feature_metrics WHERE run_id = {} AND other_run_id IS NULL",
                                     id)),
              scalar(*s, fmt::format("SELECT sum(rows + cols) FROM matrices WHERE run_id = {}", id)));
    EXPECT_GT(number(*s, fmt::format("SELECT seconds_total FROM runs WHERE run_id = {}", id)), 0.0);
  }
  // sparsa prune does not evaluate: the first prune runs have no perplexity
  EXPECT_EQ(scalar(*s, "SELECT count(*) FROM perplexities p JOIN runs r USING (run_id) WHERE r.run_id <= 2"), 0);
  const json summary = json::parse(test::read_file(cmd_->dir / "wanda" / "summary.json"));
  EXPECT_EQ(summary["run"]["nsamples"], 2);
  EXPECT_EQ(summary["run"]["seqlen"], 64);
  EXPECT_EQ(summary["run"]["method"], "wanda");
}

TEST_F(DbCommandsTest, EvalStoresTheDenseAndThePrunedPerplexity) {
  ASSERT_TRUE(all_succeeded());
  const auto s = open();
  const double dense = json::parse(results_[2].out)["ppl"].get<double>();
  const double pruned = json::parse(results_[3].out)["ppl"].get<double>();
  EXPECT_DOUBLE_EQ(number(*s, "SELECT ppl FROM perplexities WHERE kind = 'dense' AND run_id = 3"), dense);
  EXPECT_DOUBLE_EQ(number(*s, "SELECT ppl FROM perplexities WHERE kind = 'pruned' AND run_id = 4"), pruned);
  EXPECT_GT(pruned, dense);
  EXPECT_EQ(s->query_json("SELECT dataset FROM perplexities WHERE run_id = 3")["rows"][0][0], "persuasion");
  // the evaluated folder's run carries its masks too, and the identity of its pruning
  EXPECT_EQ(scalar(*s, "SELECT count(*) FROM matrices WHERE run_id = 4"), kMatrices);
  const json keys = s->query_json("SELECT run_key FROM runs WHERE run_id IN (2, 4) ORDER BY run_id")["rows"];
  const std::string prune_key = keys[0][0], eval_key = keys[1][0];
  EXPECT_EQ(eval_key.rfind(prune_key, 0), 0u) << prune_key << " / " << eval_key;
  EXPECT_NE(eval_key.find("eval=persuasion:"), std::string::npos) << eval_key;
}

TEST_F(DbCommandsTest, CompareReferencesThePruneRunsOfItsFolders) {
  ASSERT_TRUE(all_succeeded());
  const auto s = open();
  const int64_t cmp = run_of(*s, "kind = 'compare'");
  EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM comparisons WHERE run_id = {} AND run_a = 1 AND run_b = 2",
                                   cmp)),
            kMatrices);
  EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM comparisons WHERE run_id = {}", cmp)), kMatrices);
  EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM feature_metrics WHERE run_id = {} AND mask_run_id = 1 AND "
                                   "other_run_id = 2 AND jaccard IS NOT NULL",
                                   cmp)),
            scalar(*s, "SELECT sum(rows + cols) FROM matrices WHERE run_id = 1"));
  // both sides were pruned to 50 %: the stored sparsities are the masks'
  EXPECT_NEAR(number(*s, fmt::format("SELECT avg(sparsity_a) FROM comparisons WHERE run_id = {}", cmp)), 0.5, 5e-3);
  const double j = number(*s, fmt::format("SELECT avg(jaccard) FROM comparisons WHERE run_id = {}", cmp));
  EXPECT_GT(j, 0.3);
  EXPECT_LT(j, 1.0);
}

TEST_F(DbCommandsTest, ActsStoresThresholdsHistogramsAndPerplexities) {
  ASSERT_TRUE(all_succeeded());
  const auto s = open();
  const int64_t id = run_of(*s, "kind = 'acts'");
  EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM act_thresholds WHERE run_id = {}", id)), kLayers * 4 * 2);
  EXPECT_EQ(scalar(*s, fmt::format("SELECT count(DISTINCT (layer, point)) FROM act_histograms WHERE run_id = {}", id)),
            kLayers * 4);
  const json out = json::parse(results_[5].out);
  const json ppl = s->query_json(fmt::format(
      "SELECT act_sparsity, ppl FROM perplexities WHERE run_id = {} AND kind = 'act-sparsified' ORDER BY 1", id));
  ASSERT_EQ(ppl["rows"].size(), 2u);
  EXPECT_DOUBLE_EQ(ppl["rows"][0][1].get<double>(), out["ppl"]["0.25"].get<double>());
  EXPECT_DOUBLE_EQ(ppl["rows"][1][1].get<double>(), out["ppl"]["0.5"].get<double>());
  EXPECT_NEAR(number(*s, fmt::format("SELECT threshold FROM act_thresholds WHERE run_id = {} AND layer = 2 AND point "
                                     "= 'down_in' AND target_sparsity = 0.5",
                                     id)),
              out["thresholds"]["0.5"]["2"]["down_in"].get<double>(), 1e-6);
}

// Adds runs (gtest keeps file order: the tests above see the six commands' runs only).
TEST_F(DbCommandsTest, RerunsAddNothingAndMaskFilesBecomeRuns) {
  ASSERT_TRUE(all_succeeded());
  const auto runs = [&] { return scalar(*open(), "SELECT count(*) FROM runs"); };
  const int64_t before = runs();
  // Each rerun prints its result all the same (--json: the first run's numbers, "reused": true).
  auto compare_json = cmd_->compare();
  compare_json.push_back("--json");
  const auto first_compare = run_sparsa({"compare", (cmd_->dir / "mag").string(), (cmd_->dir / "wanda").string(), "--json"});
  ASSERT_EQ(first_compare.exit_code, 0) << first_compare.err;
  const std::pair<std::vector<std::string>, std::string> reruns[] = {
      {cmd_->prune_magnitude(), ""},          {cmd_->eval_dense(), results_[2].out},
      {cmd_->eval_wanda(), results_[3].out},  {cmd_->compare(), ""},
      {compare_json, first_compare.out},      {cmd_->acts(), results_[5].out}};
  for (const auto& [args, first_out] : reruns) {
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("already holds"), std::string::npos) << r.err;
    EXPECT_NE(r.out, "") << args[0];
    if (first_out.empty()) continue;
    const json a = json::parse(first_out), b = json::parse(r.out);
    EXPECT_FALSE(a.contains("reused")) << args[0];
    EXPECT_EQ(b["reused"], true) << args[0];
    EXPECT_TRUE(b["run"].is_number_integer()) << args[0];
    std::vector<std::string> same = {"ppl", "predicted_tokens", "windows", "seqlen", "tokens", "model"};  // eval
    if (args[0] == "acts") same = {"thresholds", "ppl", "calib", "eval"};
    if (args[0] == "compare") same = {"a", "b", "matrices", "summary"};
    for (const std::string& k : same) {
      EXPECT_TRUE(b.contains(k)) << args[0] << " " << k;
      EXPECT_EQ(a[k], b[k]) << args[0] << " " << k;
    }
    if (args[0] == "eval") EXPECT_NEAR(a["mean_nll"].get<double>(), b["mean_nll"].get<double>(), 1e-12);
  }
  EXPECT_EQ(runs(), before);

  // A mask file that is no run yet becomes a prune run (from its metadata) the comparison references.
  const std::vector<std::string> file_vs_folder = {"compare", (cmd_->dir / "mag" / "masks.safetensors").string(),
                                                   (cmd_->dir / "wanda").string(), "--db", cmd_->db, "--json"};
  const auto first = run_sparsa(file_vs_folder);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(json::parse(first.out)["matrices"].size(), static_cast<size_t>(kMatrices));
  auto s = open();
  EXPECT_EQ(scalar(*s, "SELECT count(*) FROM runs"), before + 2);
  const int64_t file_run = run_of(*s, "kind = 'prune' AND options LIKE 'source=%masks.safetensors'");
  EXPECT_EQ(s->query_json(fmt::format("SELECT method, structure FROM runs WHERE run_id = {}", file_run))["rows"],
            json::parse(R"([["magnitude", "u50"]])"));
  EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM matrices WHERE run_id = {}", file_run)), kMatrices);
  EXPECT_EQ(scalar(*s, fmt::format("SELECT count(*) FROM comparisons WHERE run_a = {} AND run_b = 2", file_run)),
            kMatrices);
  // same masks as the folder's run: Jaccard 1 against it would hold; here simply equal to the folder comparison
  EXPECT_NEAR(number(*s, fmt::format("SELECT avg(jaccard) FROM comparisons WHERE run_a = {}", file_run)),
              number(*s, "SELECT avg(jaccard) FROM comparisons WHERE run_a = 1"), 1e-12);
  s.reset();
  const auto again = run_sparsa(file_vs_folder);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(runs(), before + 2);

  // --series records every pair as compare would: (mag, wanda) is held already, the two pairs with
  // the mask file exist or are added once.
  const std::vector<std::string> series = {"compare", "--series", (cmd_->dir / "mag").string(),
                                           (cmd_->dir / "wanda").string(),
                                           (cmd_->dir / "mag" / "masks.safetensors").string(), "--db", cmd_->db};
  const auto sr = run_sparsa(series);
  ASSERT_EQ(sr.exit_code, 0) << sr.err;
  EXPECT_NE(sr.err.find("of 3 pairs"), std::string::npos) << sr.err;
  EXPECT_EQ(runs(), before + 4);  // (mag, file) and (wanda, file) are new
  EXPECT_EQ(run_sparsa(series).exit_code, 0);
  EXPECT_EQ(runs(), before + 4);
}

TEST_F(DbCommandsTest, TheDashboardServesTheDatabase) {
  ASSERT_TRUE(all_succeeded());
  serve::ServeOptions o;
  o.db = cmd_->db;
  o.port = 0;
  serve::Server server(o);
  std::thread t([&] { server.run(); });
  httplib::Client c("127.0.0.1", server.port());
  c.set_default_headers({{"X-Sparsa-Token", server.token()}});
  const auto res = c.Get("/api/q/comparison?a=1&b=2");
  const auto runs = c.Get("/api/q/prune_runs");
  server.stop();
  t.join();
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["rows"].size(), static_cast<size_t>(kMatrices));
  ASSERT_TRUE(runs);
  EXPECT_EQ(json::parse(runs->body)["rows"][0][4], kMatrices);  // matrices of run 1
}

// The report takes each method's newest *evaluated* prune run: a newer run of the same masks
// without perplexity (a mask file registered by compare) does not hide it.
TEST_F(DbCommandsTest, ReportShowsTheEvaluatedRunsOfADatabaseOfCommands) {
  ASSERT_TRUE(all_succeeded());
  const auto cmp = run_sparsa({"compare", (cmd_->dir / "wanda" / "masks.safetensors").string(),
                               (cmd_->dir / "mag").string(), "--db", cmd_->db});
  ASSERT_EQ(cmp.exit_code, 0) << cmp.err;
  const double wanda_ppl = json::parse(results_[3].out)["ppl"].get<double>();
  const fs::path report = cmd_->dir / "REPORT.md";
  const auto r = run_sparsa({"report", "--db", cmd_->db, "--out", report.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = test::read_file(report);
  EXPECT_NE(text.find(fmt::format("| Wanda | 50 % unstructured | {:.4f} |", wanda_ppl)), std::string::npos) << text;
}

TEST(DbCommands, BadAndLockedDatabasesAreOneLineErrors) {
  TempDir tmp;
  const fs::path not_db = tmp / "notes.duckdb";
  {
    std::FILE* f = std::fopen(not_db.c_str(), "w");
    std::fputs("not a database\n", f);
    std::fclose(f);
  }
  const auto bad = run_sparsa({"eval", "--eval-limit", "1", "--db", not_db.string()});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_TRUE(test::one_line(bad.err)) << bad.err;
  EXPECT_NE(bad.err.find(not_db.string()), std::string::npos) << bad.err;

  const fs::path db = tmp / "locked.duckdb";
  const auto holder = Store::open(db, Store::Mode::kReadWrite);  // DuckDB locks the file for this process
  const auto locked = run_sparsa({"compare", "x", "y", "--db", db.string()});
  EXPECT_EQ(locked.exit_code, 1) << locked.err;
  EXPECT_TRUE(test::one_line(locked.err)) << locked.err;
  EXPECT_NE(locked.err.find(db.string()), std::string::npos) << locked.err;
}

// eval --task with --db: a rerun prints the stored scores (no per-item scores: those are rows).
TEST(DbCommands, TaskRerunPrintsTheStoredScores) {
  TempDir tmp;
  const std::vector<std::string> args = {"eval", "--task", (test::repo_dir() / "data" / "tasks" / "persuasion-next.jsonl").string(),
                                         "--eval-limit", "3", "--json", "--db", (tmp / "db.duckdb").string()};
  const auto first = run_sparsa(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto again = run_sparsa(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json a = json::parse(first.out), b = json::parse(again.out);
  EXPECT_EQ(b["reused"], true);
  EXPECT_EQ(b["run"], 1);
  for (const char* k : {"task", "n", "acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "chance", "truncated", "file",
                        "model"})
    EXPECT_EQ(a[k], b[k]) << k;
  EXPECT_FALSE(b.contains("items"));
}

TEST(DbCommands, HelpDescribesTheFlag) {
  for (const char* command : {"eval", "prune", "compare", "acts"}) {
    const auto r = run_sparsa({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find("--db"), std::string::npos) << command;
    EXPECT_NE(r.out.find("study database"), std::string::npos) << command;
  }
}

}  // namespace
}  // namespace sparsa
