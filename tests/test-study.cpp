// sparsa study end to end on the bundled demo model (small settings): the database, the
// figures, REPORT.md, agreement with `sparsa eval` / `sparsa prune`, resuming after a finished
// and after a killed run, and bad input.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sparsa/mask_compare.h"
#include "sparsa/store.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_sparsa;
using test::TempDir;

// Small but complete: two methods at one target, two activation targets, k = 4 and 8.
std::vector<std::string> study_args(const fs::path& out) {
  return {"study", "--out", out.string(), "--methods", "wanda,sparsegpt", "--sparsities", "0.5", "--sweep", "none", "--nsamples", "8",
          "--eval-windows", "4", "--act-sparsities", "0.25,0.5", "--bitset-windows", "2", "--ks", "4,8",
          "--kmeans-runs", "2", "--tsne-iterations", "300", "--figure-format", "png,pdf", "--null-shuffles", "3",
          "--neighbour-references", "2", "--json"};
}

// dense, wanda, sparsegpt, their comparison, activations, analysis of the middle block, null model
// and neighbourhoods of every block
constexpr int64_t kRunsPerStudy = 7;

int64_t count(const Store& s, const std::string& sql) {
  const json j = s.query_json(sql);
  return j["rows"][0][0].get<int64_t>();
}

// The study run once for the whole suite (the expensive part).
class StudyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    result_ = run_sparsa(study_args(dir_->path() / "s"));
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static fs::path out() { return dir_->path() / "s"; }
  static json summary() { return json::parse(result_.out); }

  static std::unique_ptr<TempDir> dir_;
  static test::CommandResult result_;
};
std::unique_ptr<TempDir> StudyTest::dir_;
test::CommandResult StudyTest::result_;

TEST_F(StudyTest, FinishesAndSummarises) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  const json j = summary();
  EXPECT_EQ(j["runs_computed"], kRunsPerStudy);
  EXPECT_EQ(j["runs_reused"], 0);
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_GT(j["dense_ppl"].get<double>(), 1.0);
  for (const auto& r : j["runs"]) EXPECT_GT(r["ppl"].get<double>(), j["dense_ppl"].get<double>()) << r.dump();
  EXPECT_EQ(j["act_ppl"].size(), 2u);
}

TEST_F(StudyTest, DensePerplexityEqualsSparsaEval) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  const auto ev = run_sparsa({"eval", "--limit", "4", "--json"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  EXPECT_NEAR(summary()["dense_ppl"].get<double>(), json::parse(ev.out)["ppl"].get<double>(), 1e-9);
}

TEST_F(StudyTest, MasksEqualSparsaPrune) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  TempDir d;
  const auto pr = run_sparsa({"prune", "--method", "wanda", "--sparsity", "0.5", "--calib",
                              (test::repo_dir() / "data" / "calib-tokens.safetensors").string(), "--nsamples", "8",
                              "--out", (d / "p").string()});
  ASSERT_EQ(pr.exit_code, 0) << pr.err;
  const MaskSet mine = MaskSet::open(out() / "masks" / "wanda_u50.safetensors");
  const MaskSet theirs = MaskSet::open(d / "p" / "masks.safetensors");
  ASSERT_EQ(mine.matrices().size(), 6u * 7u);
  ASSERT_EQ(mine.matrices().size(), theirs.matrices().size());
  for (const MaskInfo& m : mine.matrices()) {
    const MaskInfo* t = theirs.find(m.name);
    ASSERT_NE(t, nullptr) << m.name;
    EXPECT_EQ(mine.load_pruned(m).words(), theirs.load_pruned(*t).words()) << m.name;
  }
}

TEST_F(StudyTest, DatabaseHoldsEveryStep) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  const auto s = Store::open(out() / "study.duckdb", Store::Mode::kReadOnly);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs"), kRunsPerStudy);
  for (const char* kind : {"dense", "acts", "compare"})
    EXPECT_EQ(count(*s, std::string("SELECT count(*) FROM runs WHERE kind = '") + kind + "'"), 1) << kind;
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs WHERE kind = 'analysis' AND method = 'coactivation'"), 1);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs WHERE kind = 'analysis' AND method = 'coactivation-null'"), 1);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs WHERE kind = 'prune'"), 2);
  // Each prune run records its mask file (the dashboard draws from it); no other run does.
  const json files = s->query_json("SELECT method, mask_file FROM runs WHERE mask_file IS NOT NULL ORDER BY method")["rows"];
  ASSERT_EQ(files.size(), 2u);
  for (const json& f : files)
    EXPECT_EQ(fs::path(f[1].get<std::string>()),
              fs::absolute(out() / "masks" / (f[0].get<std::string>() + "_u50.safetensors")).lexically_normal());
  EXPECT_EQ(count(*s, "SELECT count(*) FROM matrices"), 2 * 6 * 7);   // 2 runs x 6 blocks x 7 linears
  EXPECT_EQ(count(*s, "SELECT count(*) FROM comparisons"), 6 * 7);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM act_thresholds"), 2 * 6 * 4);  // 2 targets x 6 blocks x 4 points
  EXPECT_EQ(count(*s, "SELECT count(*) FROM perplexities WHERE kind = 'act-sparsified'"), 2);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_summary"), 3 * 2);  // 3 sources x k in {4, 8}
  EXPECT_EQ(count(*s, "SELECT count(*) FROM clusters"), 3 * 2 * 1024);  // 1024 features each
  EXPECT_EQ(count(*s, "SELECT count(*) FROM coherence WHERE ordering = 'cluster'"), 4);
  EXPECT_EQ(count(*s, "SELECT count(DISTINCT source) FROM tsne"), 2);
  // The Python study's view names, with the per-feature rows of the newest run.
  EXPECT_EQ(count(*s, "SELECT count(*) FROM wanda_0_5_down_proj WHERE axis = 'row' AND other_run_id IS NULL"), 6 * 384);
  EXPECT_GT(count(*s, "SELECT count(*) FROM sparsegpt_0_5_up_proj"), 0);
  // Achieved sparsity: Wanda prunes exactly half of every row; SparseGPT, as the reference, prunes
  // |w|²/d² <= the value at index floor(0.5 n) of each 128-column block, so one weight or so more.
  EXPECT_EQ(count(*s, "SELECT count(*) FROM matrices JOIN runs USING (run_id) WHERE method = 'wanda' AND "
                      "abs(matrices.sparsity - 0.5) > 1e-9"), 0);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM matrices JOIN runs USING (run_id) WHERE method = 'sparsegpt' AND "
                      "(matrices.sparsity < 0.5 OR matrices.sparsity > 0.51)"), 0);
}

TEST_F(StudyTest, FiguresAreRealPngs) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  for (const char* name : {"ppl_by_structure", "ppl_vs_act_sparsity", "jaccard_wanda_sparsegpt", "spy_wanda",
                           "gradient_spy_activations", "clusters_activations_k8", "separation_ratio", "cluster_sizes",
                           "hamming_hist", "tsne_activations", "act_hist_layer3_down_in"}) {
    const fs::path p = out() / "figures" / (std::string(name) + ".png");
    ASSERT_TRUE(fs::exists(p)) << p;
    const std::string bytes = test::read_file(p);
    EXPECT_GT(bytes.size(), 10000u) << p;
    EXPECT_EQ(bytes.substr(1, 3), "PNG") << p;
  }
  // --figure-format png,pdf: every PNG has its PDF beside it, and only those.
  int64_t pngs = 0, pdfs = 0;
  for (const auto& e : fs::directory_iterator(out() / "figures")) {
    if (e.path().extension() == ".pdf") ++pdfs;
    if (e.path().extension() != ".png") continue;
    ++pngs;
    const std::string pdf = test::read_file(fs::path(e.path()).replace_extension(".pdf"));
    EXPECT_EQ(pdf.rfind("%PDF-", 0), 0u) << e.path();
    EXPECT_NE(pdf.find("%%EOF"), std::string::npos) << e.path();
  }
  EXPECT_GT(pngs, 10);
  EXPECT_EQ(pdfs, pngs);
  EXPECT_FALSE(fs::exists(out() / "figures" / "separation_ratio.svg"));
}

TEST_F(StudyTest, ReportStatesTheNumbers) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  const std::string report = test::read_file(out() / "REPORT.md");
  char dense[32];
  std::snprintf(dense, sizeof dense, "%.4f", summary()["dense_ppl"].get<double>());
  EXPECT_NE(report.find(dense), std::string::npos);
  for (const char* heading : {"## Perplexity after pruning", "## Which weights do the methods keep?",
                              "## Activation sparsity", "## Co-activation and clustering", "## Runs"})
    EXPECT_NE(report.find(heading), std::string::npos) << heading;
  EXPECT_NE(report.find("](figures/separation_ratio.png)"), std::string::npos);
  EXPECT_EQ(report.find("nan"), std::string::npos);

  // `sparsa report` regenerates it from the database alone.
  fs::remove(out() / "REPORT.md");
  const auto r = run_sparsa({"report", "--db", (out() / "study.duckdb").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(test::read_file(out() / "REPORT.md").find(dense), std::string::npos);
}

// The null model and the seed's neighbourhood procedure on every block (--analysis-layer all, the
// default): one cluster_null row per block, k and metric, 128-feature neighbourhoods, and their
// tables in REPORT.md.
TEST_F(StudyTest, NullModelAndNeighbourhoodsOfEveryBlock) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  const auto s = Store::open(out() / "study.duckdb", Store::Mode::kReadOnly);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_null WHERE metric = 'separation_ratio'"), 6 * 2);  // 6 blocks x k in {4, 8}
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_null"), 6 * 2);  // the study runs one k-means per copy: no 'ari' rows
  EXPECT_EQ(count(*s, "SELECT count(DISTINCT layer) FROM cluster_null"), 6);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_null WHERE shuffles <> 3 OR NOT (null_lo <= null_mean AND "
                      "null_mean <= null_hi) OR p_value < 0.25 - 1e-12 OR p_value > 1"), 0);
  // The middle block's source is the one cluster_summary clustered.
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_null n JOIN cluster_summary c USING (source, k) WHERE n.layer = 3 "
                      "AND n.metric = 'separation_ratio'"), 2);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM neighbour_clusters"), 6 * 2 * 2);  // 6 blocks x 2 references x 2 ks
  EXPECT_EQ(count(*s, "SELECT count(*) FROM neighbour_clusters WHERE size <> 128"), 0);
  EXPECT_EQ(count(*s, "SELECT count(DISTINCT (layer, reference_feature)) FROM neighbour_clusters"), 6 * 2);
  const std::string report = test::read_file(out() / "REPORT.md");
  for (const char* part : {"### Null model: are the clusters more than chance?",
                           "### The seed's procedure: clusters among a feature's nearest neighbours", "| block | k = 4 | k = 8 |",
                           "s per block)", "128 nearest features"})
    EXPECT_NE(report.find(part), std::string::npos) << part;
  for (int block = 0; block < 6; ++block)
    EXPECT_NE(report.find("\n| " + std::to_string(block) + " | "), std::string::npos) << block;
}

// One block index runs the whole analysis, null model included, on that block alone.
TEST(StudySingleBlock, AnalysisLayerIndexLimitsTheNullModelToIt) {
  TempDir d;
  const auto r = run_sparsa({"study", "--out", (d / "s").string(), "--methods", "wanda", "--sparsities", "0.5", "--sweep",
                             "none", "--nsamples", "2", "--eval-windows", "1", "--act-sparsities", "0.5",
                             "--bitset-windows", "1", "--ks", "4", "--kmeans-runs", "1", "--tsne-iterations", "300",
                             "--no-figures", "--analysis-layer", "2", "--null-shuffles", "2", "--neighbour-references",
                             "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto s = Store::open(d / "s" / "study.duckdb", Store::Mode::kReadOnly);
  EXPECT_EQ(s->query_json("SELECT DISTINCT layer, shuffles FROM cluster_null")["rows"], json::parse("[[2, 2]]"));
  EXPECT_EQ(count(*s, "SELECT count(*) FROM neighbour_clusters WHERE layer = 2"), 1);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_summary WHERE source LIKE 'activations of block 2 %'"), 1);
  for (const char* bad : {"-2", "6", "some"}) {
    const auto b = run_sparsa({"study", "--out", (d / "b").string(), "--analysis-layer", bad});
    EXPECT_EQ(b.exit_code, 2) << bad << ": " << b.err;
    EXPECT_TRUE(test::one_line(b.err)) << b.err;
  }
  const auto zero = run_sparsa({"study", "--out", (d / "z").string(), "--null-shuffles", "0"});
  EXPECT_EQ(zero.exit_code, 2) << zero.err;
  EXPECT_NE(zero.err.find("at least 1 shuffle"), std::string::npos) << zero.err;
}

TEST_F(StudyTest, RerunReusesEveryRun) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  const auto again = run_sparsa(study_args(out()));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json j = json::parse(again.out);
  EXPECT_EQ(j["runs_computed"], 0);
  EXPECT_EQ(j["runs_reused"], kRunsPerStudy);
  EXPECT_EQ(j["dense_ppl"], summary()["dense_ppl"]);
  const auto s = Store::open(out() / "study.duckdb", Store::Mode::kReadOnly);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs"), kRunsPerStudy);
}

// A perplexity belongs to the windows it was measured on: a rerun on other windows reuses no
// run that holds one (dense, prune, activations), nor what was built from them.
TEST_F(StudyTest, RerunOnOtherEvalWindowsReusesNoPerplexity) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  TempDir d;
  const fs::path copy = d / "s";
  fs::copy(out(), copy, fs::copy_options::recursive);
  std::vector<std::string> args = study_args(copy);
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--eval-windows") args[i + 1] = "3";
    if (args[i] == "--methods") args[i + 1] = "wanda";
  }
  const auto again = run_sparsa(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json j = json::parse(again.out);
  EXPECT_EQ(j["runs_reused"], 1);    // the null model: bitsets of the calibration windows, no perplexity
  EXPECT_EQ(j["runs_computed"], 4);  // dense, wanda, activations, analysis
  const auto s = Store::open(copy / "study.duckdb", Store::Mode::kReadOnly);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs WHERE kind = 'prune' AND method = 'wanda'"), 2);
  EXPECT_EQ(count(*s, "SELECT count(DISTINCT ppl) FROM perplexities WHERE kind = 'pruned' AND run_id IN "
                      "(SELECT run_id FROM runs WHERE method = 'wanda')"), 2);
}

// Starts `sparsa args...`, SIGKILLs it once its stderr has a line starting with `line_prefix`,
// and returns whether that happened before the process ended by itself.
bool kill_after_line(const std::vector<std::string>& args, const std::string& line_prefix) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return false;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    close(pipefd[0]);
    std::vector<char*> argv{const_cast<char*>(SPARSA_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(SPARSA_BINARY, argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string buf;
  bool killed = false;
  char chunk[4096];
  for (ssize_t n; (n = read(pipefd[0], chunk, sizeof chunk)) > 0;) {
    buf.append(chunk, static_cast<size_t>(n));
    if (buf.find("\n" + line_prefix) != std::string::npos || buf.rfind(line_prefix, 0) == 0) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
  }
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return killed && WIFSIGNALED(status);
}

// A digest of `table`'s rows without what may differ between two runs of the same study: timings,
// timestamps and the machine name are left out, ids drawn from sequences are replaced by what
// they stand for (a run's run_key; a clustering's run, source, matrix, k and seed), and mask
// files by their names (each study writes into its own folder).
std::string table_digest(const Store& s, const std::string& table) {
  const json cols = s.query_json("SELECT column_name FROM duckdb_columns() WHERE table_name = '" + table +
                                 "' ORDER BY column_index")["rows"];
  const auto run_key = [](const std::string& id) { return "(SELECT run_key FROM runs r WHERE r.run_id = t." + id + ")"; };
  std::string select;
  for (const json& c : cols) {
    const std::string name = c[0];
    if (name.starts_with("seconds") || name.ends_with("microseconds") || name == "started_at" ||
        name == "finished_at" || name == "machine")
      continue;
    std::string expr = "t." + name;
    if (name == "run_id" || name.ends_with("_run_id") || name == "run_a" || name == "run_b") expr = run_key(name);
    if (name == "mask_file") expr = "regexp_extract(t.mask_file, '[^/]*$')";  // the study folders differ
    if (name == "analysis_id")
      expr = "(SELECT concat_ws('/', (SELECT run_key FROM runs r WHERE r.run_id = c.run_id), c.source, c.hf_name, c.k, "
             "c.seed) FROM cluster_summary c WHERE c.analysis_id = t.analysis_id)";
    select += (select.empty() ? "" : ", ") + expr + " AS " + name;
  }
  const json r = s.query_json("SELECT count(*)::VARCHAR || ' rows ' || coalesce(md5(string_agg(q::VARCHAR, '|' ORDER BY "
                              "q::VARCHAR)), '') FROM (SELECT " + select + " FROM " + table + " t) q");
  return r["rows"][0][0].get<std::string>();
}

TEST_F(StudyTest, KilledStudyCompletesWithoutRecomputingOrDuplicating) {
  ASSERT_EQ(result_.exit_code, 0) << result_.err;
  TempDir d;
  const fs::path resumed = d / "s";
  ASSERT_TRUE(kill_after_line(study_args(resumed), "study: wanda u50: perplexity"));
  const auto again = run_sparsa(study_args(resumed));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json j = json::parse(again.out);
  EXPECT_GE(j["runs_reused"].get<int64_t>(), 2);  // dense and wanda were committed before the kill
  EXPECT_EQ(j["runs_reused"].get<int64_t>() + j["runs_computed"].get<int64_t>(), kRunsPerStudy);
  const auto s = Store::open(resumed / "study.duckdb", Store::Mode::kReadOnly);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs"), kRunsPerStudy);
  EXPECT_EQ(count(*s, "SELECT count(DISTINCT run_key) FROM runs"), kRunsPerStudy);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM runs WHERE status <> 'complete'"), 0);
  // Every table holds what the uninterrupted study's does.
  const auto whole = Store::open(out() / "study.duckdb", Store::Mode::kReadOnly);
  const json tables = whole->query_json("SELECT table_name FROM duckdb_tables() ORDER BY table_name")["rows"];
  ASSERT_GE(tables.size(), 10u);
  for (const json& t : tables) {
    const std::string digest = table_digest(*whole, t[0]);
    std::printf("%s: %s\n", t[0].get<std::string>().c_str(), digest.c_str());
    EXPECT_EQ(table_digest(*s, t[0]), digest) << t[0];
  }
}

TEST(StudyBadInput, ClearErrorsAndExitTwo) {
  TempDir d;
  const std::vector<std::vector<std::string>> cases{
      {"study", "--out", (d / "a").string(), "--sparsities", "1.5"},
      {"study", "--out", (d / "b").string(), "--model", (d / "no-such-model").string()},
      {"study", "--out", (d / "c").string(), "--ks", "1"},
      {"study", "--out", (d / "d").string(), "--methods", "random"},
      {"study", "--out", (d / "e").string(), "--act-sparsities", "0.5,x"},
      {"study", "--out", (d / "h").string(), "--figure-format", "png,svg"},
  };
  for (const auto& args : cases) {
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 2) << args[4] << ": " << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
  }
  // SparseGPT's N:M groups must tile its 128-column blocks: refused before any run starts.
  const auto nm = run_sparsa({"study", "--out", (d / "g").string(), "--sparsities", "0.5,3:5"});
  EXPECT_EQ(nm.exit_code, 2) << nm.err;
  EXPECT_NE(nm.err.find("--sparsities: SparseGPT blocksize 128 is not a multiple of M = 5"), std::string::npos) << nm.err;
  EXPECT_FALSE(fs::exists(d / "g" / "study.duckdb"));
  test::write_file(d / "garbage.duckdb", std::string(4096, 'x'));
  const auto r = run_sparsa({"study", "--out", (d / "f").string(), "--db", (d / "garbage.duckdb").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
}

}  // namespace
}  // namespace sparsa
