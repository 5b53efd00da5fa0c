// sparsa study end to end on the bundled demo model (small settings): the database, the
// figures, REPORT.md, agreement with `sparsa eval` / `sparsa prune`, resuming after a finished
// and after a killed run, and bad input.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sparsa/bytes_model.h"
#include "sparsa/calibration.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/mask_compare.h"
#include "sparsa/report.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/sparse_gemv_blocks.h"
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
  return {"study", "--out", out.string(), "--methods", "wanda,sparsegpt", "--targets", "0.5", "--sweep", "none", "--nsamples", "8",
          "--eval-limit", "4", "--act-sparsities", "0.25,0.5", "--bitset-windows", "2", "--ks", "4,8",
          "--kmeans-runs", "2", "--tsne-iterations", "500", "--figure-format", "png,pdf", "--null-shuffles", "3",
          "--neighbour-references", "2", "--json"};
}

// dense, wanda, sparsegpt, their comparison, activations, analysis of the middle block, null model
// and neighbourhoods of every block, speed
constexpr int64_t kRunsPerStudy = 8;

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
  const auto ev = run_sparsa({"eval", "--eval-limit", "4", "--json"});
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
  for (const char* kind : {"dense", "acts", "compare", "bench"})
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
  // Sources are short keys; cluster_sources says what each is, with the block (the middle one, 3).
  EXPECT_EQ(s->query_json("SELECT DISTINCT source FROM cluster_summary ORDER BY 1")["rows"],
            json::parse(R"([["activations/down_in"], ["sparsegpt/u50"], ["wanda/u50"]])"));
  EXPECT_EQ(s->query_json("SELECT d.source, d.layer, d.hf_name, d.description FROM cluster_sources d JOIN runs r USING "
                          "(run_id) WHERE r.method = 'coactivation' ORDER BY 1")["rows"][2],
            json::parse(R"(["wanda/u50", 3, "model.layers.3.mlp.up_proj", "wanda u50 model.layers.3.mlp.up_proj rows"])"));
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_sources d JOIN runs r USING (run_id) WHERE r.method = "
                      "'coactivation-null' AND d.source = 'activations/down_in' AND d.description LIKE 'activations of "
                      "block ' || d.layer || ' at down_in, %'"), 6);
  // The bytes model: 2 activation sparsities x 6 block sizes x (6 blocks + the whole model).
  EXPECT_EQ(count(*s, "SELECT count(*) FROM bytes_model"), 2 * 6 * (6 + 1));
  EXPECT_EQ(count(*s, "SELECT count(*) FROM bytes_model WHERE layer IS NULL AND decode_fraction >= mlp_fraction AND "
                      "decode_fraction <= 1 AND abs(decode_speedup * decode_fraction - 1) < 1e-12"), 2 * 6);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM bytes_model WHERE layer IS NOT NULL AND decode_fraction IS NULL AND "
                      "mlp_fraction > 0 AND mlp_fraction <= 1 AND abs(mlp_speedup * mlp_fraction - 1) < 1e-12"), 2 * 6 * 6);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM bytes_model WHERE tokens = 2 * 512"), 2 * 6 * 7);  // --bitset-windows 2
  // B = 1 reads about the rows the thresholds leave active (they are estimated on all 8 windows).
  EXPECT_EQ(count(*s, "SELECT count(*) FROM bytes_model WHERE block_rows = 1 AND layer IS NOT NULL AND "
                      "abs(mlp_in_fraction - (1 - act_sparsity)) > 0.06"), 0);
  // Measured GEMV rows only with a GPU.
  EXPECT_EQ(count(*s, "SELECT count(*) FROM benchmarks"), cuda_device_count() > 0 ? 2 * 2 : 0);
  // The Python study's view names, with the per-feature rows of the newest run.
  EXPECT_EQ(count(*s, "SELECT count(*) FROM wanda_u50_down_proj WHERE axis = 'row' AND other_run_id IS NULL"), 6 * 384);
  EXPECT_GT(count(*s, "SELECT count(*) FROM sparsegpt_u50_up_proj"), 0);
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
                              "## Activation sparsity", "## Co-activation and clustering", "## Speed", "## Runs"})
    EXPECT_NE(report.find(heading), std::string::npos) << heading;
  const size_t speed = report.find("## Speed");
  ASSERT_NE(speed, std::string::npos);
  const std::string section = report.substr(speed, report.find("## Runs") - speed);
  EXPECT_NE(section.find("| 50 % | "), std::string::npos) << section;
  EXPECT_NE(section.find("| decode step speed-up ≤ |"), std::string::npos) << section;
  if (cuda_device_count() == 0)
    EXPECT_NE(section.find("No GPU was present when this study ran"), std::string::npos) << section;
  else
    EXPECT_NE(section.find("### Measured on "), std::string::npos) << section;
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
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_null n JOIN cluster_summary c USING (source, k) JOIN cluster_sources d "
                      "ON d.run_id = c.run_id AND d.source = c.source AND d.layer = n.layer WHERE n.metric = "
                      "'separation_ratio'"), 2);
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
  const auto r = run_sparsa({"study", "--out", (d / "s").string(), "--methods", "wanda", "--targets", "0.5", "--sweep",
                             "none", "--nsamples", "2", "--eval-limit", "1", "--act-sparsities", "0.5",
                             "--bitset-windows", "1", "--ks", "4", "--kmeans-runs", "1", "--tsne-iterations", "500",
                             "--no-figures", "--analysis-layer", "2", "--null-shuffles", "2", "--neighbour-references",
                             "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto s = Store::open(d / "s" / "study.duckdb", Store::Mode::kReadOnly);
  EXPECT_EQ(s->query_json("SELECT DISTINCT layer, shuffles FROM cluster_null")["rows"], json::parse("[[2, 2]]"));
  EXPECT_EQ(count(*s, "SELECT count(*) FROM neighbour_clusters WHERE layer = 2"), 1);
  EXPECT_EQ(count(*s, "SELECT count(*) FROM cluster_summary c JOIN cluster_sources d USING (run_id, source) WHERE "
                      "c.source = 'activations/down_in' AND d.layer = 2"), 1);
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
    if (args[i] == "--eval-limit") args[i + 1] = "3";
    if (args[i] == "--methods") args[i + 1] = "wanda";
  }
  const auto again = run_sparsa(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json j = json::parse(again.out);
  EXPECT_EQ(j["runs_reused"], 1);    // the null model: bitsets of the calibration windows, no perplexity
  EXPECT_EQ(j["runs_computed"], 5);  // dense, wanda, activations, analysis, speed
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

// ---- the bytes model (sparsa/bytes_model.h) on hand-made activations ----

TEST(BytesModel, CountsTheRowsOfTheBlocksThatHoldAnActiveInput) {
  // dim 8; blocks of 1, 4 and 3 rows (the last block of 3 has 2 rows). An input is active when
  // |x| > t: 0.5 at t = 0.5 is not.
  const std::vector<float> x = {0, 0, 0, 0, 0, 0, 0, 1,           // block 1 of 4, the short last block of 3
                                -3, 0, 0, 0, 0, 0, 0, 0,          // block 0 of 4 and of 3
                                0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, -0.5f};  // inactive at t = 0.5
  BlockReadCounter c(8, {0.5f, 2.0f}, {1, 4, 3});
  c.add(x.data(), 3);
  EXPECT_EQ(c.tokens(), 3);
  const double n = 3 * 8;
  EXPECT_DOUBLE_EQ(c.row_fraction(0, 0), 2 / n);
  EXPECT_DOUBLE_EQ(c.row_fraction(0, 1), 8 / n);
  EXPECT_DOUBLE_EQ(c.row_fraction(0, 2), 5 / n);  // 2 rows of the short block + 3
  EXPECT_DOUBLE_EQ(c.row_fraction(1, 0), 1 / n);  // only the -3
  EXPECT_DOUBLE_EQ(c.row_fraction(1, 1), 4 / n);
  EXPECT_DOUBLE_EQ(c.row_fraction(1, 2), 3 / n);
  // Counting in parts and merging gives the same counts.
  BlockReadCounter a(8, {0.5f, 2.0f}, {1, 4, 3}), b(8, {0.5f, 2.0f}, {1, 4, 3});
  a.add(x.data(), 1);
  b.add(x.data() + 8, 2);
  a.merge(b);
  for (size_t t = 0; t < 2; ++t)
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(a.row_fraction(t, k), c.row_fraction(t, k)) << t << " " << k;
  EXPECT_EQ(BlockReadCounter(8, {0.5f}, {1}).row_fraction(0, 0), 0.0);  // no token yet
  EXPECT_THROW(BlockReadCounter(8, {0.5f}, {0}), Error);
  EXPECT_THROW(BlockReadCounter(0, {0.5f}, {1}), Error);
  EXPECT_THROW(a.merge(BlockReadCounter(8, {0.5f}, {1, 4, 3})), Error);
}

// The block a counter reads is the one the block kernel reads (gemv_blocks_read, batch 1).
TEST(BytesModel, AgreesWithTheBlockKernelsDefinition) {
  constexpr int64_t kDim = 256, kTokens = 40;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(kDim * kTokens);
  for (float& v : x) v = normal(rng);
  const std::vector<int> blocks = {1, 2, 8, 16, 32};
  BlockReadCounter c(kDim, {0.3f, 1.5f}, blocks);
  c.add(x.data(), kTokens);
  for (size_t t = 0; t < 2; ++t)
    for (size_t b = 0; b < blocks.size(); ++b) {
      double sum = 0;
      for (int64_t i = 0; i < kTokens; ++i) sum += gemv_blocks_read(x.data() + i * kDim, 1, kDim, t == 0 ? 0.3f : 1.5f, blocks[b]);
      EXPECT_NEAR(c.row_fraction(t, b), sum / kTokens, 1e-12) << blocks[b];
    }
}

TEST(BytesModel, WeighsTheFractionsByTheBytesOfEachMatrix) {
  BytesModel m;
  m.act_sparsities = {0.5};
  m.block_rows = {1};
  m.n_layers = 2;
  m.weights.mlp_in = {100, 300};
  m.weights.down_in = {50, 50};
  m.weights.dense = 500;
  m.mlp_in_fraction = {0.5, 0.25};
  m.down_in_fraction = {1.0, 0.5};
  EXPECT_EQ(m.weights.mlp(), 500);
  EXPECT_EQ(m.weights.total(), 1000);
  EXPECT_DOUBLE_EQ(m.layer_mlp_fraction(0, 0, 0), 100.0 / 150.0);
  EXPECT_DOUBLE_EQ(m.layer_mlp_fraction(0, 0, 1), 100.0 / 350.0);
  EXPECT_DOUBLE_EQ(m.mlp_in_fraction_all(0, 0), 125.0 / 400.0);
  EXPECT_DOUBLE_EQ(m.down_in_fraction_all(0, 0), 75.0 / 100.0);
  EXPECT_DOUBLE_EQ(m.mlp_fraction(0, 0), 200.0 / 500.0);
  EXPECT_DOUBLE_EQ(m.decode_fraction(0, 0), 700.0 / 1000.0);  // the 500 dense weights are always read
}

// The demo model: 6 blocks, d_model 384, d_ff 1024, 2 KV heads of 64, vocabulary 8192, untied.
TEST(BytesModel, DecodeWeightsOfTheDemoModel) {
  const Model m = load_hf_model(test::repo_dir() / "models" / "tiny-llama-15m");
  const DecodeWeights w = decode_weights(m);
  const int64_t h = 384, ff = 1024, kv = 128, vocab = 8192;
  ASSERT_EQ(w.mlp_in.size(), 6u);
  for (int64_t l = 0; l < 6; ++l) {
    EXPECT_EQ(w.mlp_in[static_cast<size_t>(l)], 2 * h * ff);
    EXPECT_EQ(w.down_in[static_cast<size_t>(l)], h * ff);
  }
  const int64_t attention = 2 * h * h + 2 * kv * h, norms = 2 * h;
  EXPECT_EQ(w.dense, 6 * (attention + norms) + h /* final norm */ + h /* one embedding row */ + vocab * h /* lm_head */);
}

// On real activations: with the thresholds of the same windows, B = 1 reads 1 - s of the rows
// (up to the histogram's resolution), and coarser blocks and lower sparsities never read less.
TEST(BytesModel, MeasuredOnTheDemoModel) {
  const Model m = load_hf_model(test::repo_dir() / "models" / "tiny-llama-15m");
  CalibrationSpec spec;
  spec.tokens_file = test::repo_dir() / "data" / "calib-tokens.safetensors";
  spec.nsamples = 1;
  const TensorI32 windows = load_calibration(spec, m.config).tokens;  // [1, 512]
  const ActivationProfile profile = capture_activation_profile(m, windows);
  const std::vector<ActivationThresholds> t = {profile.thresholds(0.25), profile.thresholds(0.5), profile.thresholds(0.9)};
  const BytesModel bm = measure_bytes_model(m, windows, t, default_bytes_model_block_rows());
  EXPECT_EQ(bm.tokens, 512);
  ASSERT_EQ(bm.block_rows, (std::vector<int>{1, 8, 16, 32, 64, 128}));
  for (size_t s = 0; s < 3; ++s)
    for (int64_t l = 0; l < 6; ++l) {
      EXPECT_NEAR(bm.mlp_in_at(s, 0, l), 1 - t[s].sparsity, 0.01) << s << " " << l;
      EXPECT_NEAR(bm.down_in_at(s, 0, l), 1 - t[s].sparsity, 0.01) << s << " " << l;
      for (size_t b = 1; b < bm.block_rows.size(); ++b) {
        EXPECT_GE(bm.mlp_in_at(s, b, l), bm.mlp_in_at(s, b - 1, l));
        EXPECT_GE(bm.down_in_at(s, b, l), bm.down_in_at(s, b - 1, l));
        if (s > 0) EXPECT_LE(bm.layer_mlp_fraction(s, b, l), bm.layer_mlp_fraction(s - 1, b, l));
      }
    }
  EXPECT_LT(bm.decode_fraction(2, 0), bm.decode_fraction(0, 0));
  EXPECT_GT(bm.decode_fraction(2, 0), bm.mlp_fraction(2, 0));  // the dense part is always read
  EXPECT_THROW(measure_bytes_model(m, windows, {ActivationThresholds{0.5, {}}}, {1}), Error);
}

// The Speed section of a study measured on a GPU, from a database made by hand (no GPU here): the
// measured table sits next to the bytes model's bound, and the no-GPU sentence is absent.
TEST(SpeedReport, ShowsMeasuredSpeedUpsNextToTheBound) {
  TempDir d;
  {
    const auto store = Store::open(d / "study.duckdb", Store::Mode::kReadWrite);
    RunWriter dense = store->begin_run({.kind = RunKind::kDense, .model_name = "m", .model_path = "/m"});
    dense.add_perplexity({.dataset = "text", .kind = PplKind::kDense, .ppl = 10, .tokens = 100});
    dense.commit();
    RunWriter acts = store->begin_run({.kind = RunKind::kActs, .model_path = "/m"});
    acts.add_perplexity({.dataset = "text", .kind = PplKind::kActSparsified, .act_sparsity = 0.5, .ppl = 10.2, .tokens = 100});
    acts.commit();
    RunWriter w = store->begin_run({.kind = RunKind::kBench, .model_path = "/m", .method = "speed"});
    std::vector<BytesModelRow> rows;
    for (int64_t b : {1, 32}) {
      const double f = b == 1 ? 0.5 : 0.8;
      rows.push_back({.act_sparsity = 0.5, .block_rows = b, .layer = 3, .tokens = 64, .mlp_params = 300,
                      .mlp_in_fraction = f, .down_in_fraction = 0.25, .mlp_fraction = f});
      rows.push_back({.act_sparsity = 0.5, .block_rows = b, .tokens = 64, .mlp_params = 300, .decode_params = 600,
                      .mlp_in_fraction = f, .down_in_fraction = 0.25, .mlp_fraction = f, .decode_fraction = (1 + f) / 2});
    }
    w.add_bytes_model(rows);
    const BenchmarkRow bench[] = {{.name = "gemv_sparse_act mlp_in block 3", .shape = "1024x384", .dtype = "bf16",
                                   .sparsity = 0.5, .microseconds = 4, .baseline_microseconds = 6, .machine = "NVIDIA Test"}};
    w.add_benchmarks(bench);
    w.commit();
    write_study_report(*store, d / "figures", d / "REPORT.md");
  }
  const std::string report = test::read_file(d / "REPORT.md");
  const size_t at = report.find("## Speed");
  ASSERT_NE(at, std::string::npos) << report;
  const std::string section = report.substr(at, report.find("## Runs") - at);
  EXPECT_EQ(section.find("No GPU was present"), std::string::npos) << section;
  EXPECT_NE(section.find("### Measured on NVIDIA Test"), std::string::npos) << section;
  // sparse 4 µs vs dense 6 µs: 1.50×; the bound for mlp_in at B = 1 is 1 / 0.5.
  EXPECT_NE(section.find("| 50 % | gemv_sparse_act mlp_in block 3 | 1024x384 | bf16 | 4.00 | 6.00 | 1.50× | 2.00× |"),
            std::string::npos) << section;
  EXPECT_NE(section.find("| 50 % | +2.0 % | 1 | 50.0 % | 25.0 % | 50.0 % (50.0–50.0 %) | 2.00× | 1.33× |"),
            std::string::npos) << section;
  EXPECT_NE(section.find("|  |  | 32 | 80.0 % | 25.0 % | 80.0 % (80.0–80.0 %) | 1.25× | 1.11× |"), std::string::npos) << section;
  EXPECT_NE(section.find("50.0 % of the 600 weights"), std::string::npos) << section;
}

// The measured path's timing function: its arguments are checked before any device work; on a GPU
// both kernels give positive times (the study's GPU run shows them in the report).
TEST(SpeedMeasured, TimesTheSparseAndTheDenseGemv) {
  const std::vector<float> x(4 * 384, 1.0f);
  const GemvShape shape{DType::BF16, 1, 384, 1024};
#ifdef SPARSA_WITH_CUDA
  const auto refused = [&](GemvShape s, std::span<const float> v, int reps) {
    try {
      time_sparse_vs_dense_gemv(s, v, 0.5f, 0.5f, reps);
    } catch (const Error& e) {
      return e.kind() == ErrorKind::kBadInput;
    }
    return false;
  };
  EXPECT_TRUE(refused({DType::BF16, 2, 384, 1024}, x, 10));                          // batch 2
  EXPECT_TRUE(refused({DType::F32, 1, 384, 1024}, x, 10));                           // fp32 weights
  EXPECT_TRUE(refused(shape, std::span<const float>(x).first(383), 10));              // not whole rows
  EXPECT_TRUE(refused(shape, {}, 10));                                               // no input
  EXPECT_TRUE(refused(shape, x, 0));                                                 // no replay
#else
  EXPECT_THROW(time_sparse_vs_dense_gemv(shape, x, 0.5f, 0.5f, 10), Error);  // built without CUDA
#endif
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  std::vector<float> acts(16 * 384);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : acts) v = normal(rng);
  const GemvSpeed s = time_sparse_vs_dense_gemv(shape, acts, sparsity_threshold(acts, 0.5f), 0.5f, 20);
  EXPECT_GT(s.sparse_us, 0.0);
  EXPECT_GT(s.dense_us, 0.0);
}

TEST(StudyBadInput, ClearErrorsAndExitTwo) {
  TempDir d;
  const std::vector<std::vector<std::string>> cases{
      {"study", "--out", (d / "a").string(), "--targets", "1.5"},
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
  const auto nm = run_sparsa({"study", "--out", (d / "g").string(), "--targets", "0.5,3:5"});
  EXPECT_EQ(nm.exit_code, 2) << nm.err;
  EXPECT_NE(nm.err.find("--targets: SparseGPT blocksize 128 is not a multiple of M = 5"), std::string::npos) << nm.err;
  EXPECT_FALSE(fs::exists(d / "g" / "study.duckdb"));
  test::write_file(d / "garbage.duckdb", std::string(4096, 'x'));
  const auto r = run_sparsa({"study", "--out", (d / "f").string(), "--db", (d / "garbage.duckdb").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
}

}  // namespace
}  // namespace sparsa
