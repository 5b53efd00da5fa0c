// The runs layer (sparsa/runs.h): target labels read back for every kind of target, mask file
// names, a pruned folder's summary.json written and read back, the mask set origin of a folder,
// the mask runs an analysis names, and two `sparsa prune --db` runs of the same method and target
// both drawn by the dashboard from the mask file each run records.
#include <httplib.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "sparsa/mask_compare.h"
#include "sparsa/prune.h"
#include "sparsa/runs.h"
#include "sparsa/serve.h"
#include "sparsa/store.h"
#include "sparsa/viz.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::TempDir;

SparsityTarget unstructured(double r) {
  SparsityTarget t;
  t.ratio = r;
  return t;
}
SparsityTarget nm(int n, int m) {
  SparsityTarget t;
  t.n = n;
  t.m = m;
  return t;
}

void expect_same_target(const SparsityTarget& got, const SparsityTarget& want) {
  EXPECT_EQ(got.ratio, want.ratio) << want.label();
  EXPECT_EQ(got.n, want.n) << want.label();
  EXPECT_EQ(got.m, want.m) << want.label();
}

// ---- target labels ----

TEST(TargetLabel, ReadsBackEveryKindOfTarget) {
  for (const SparsityTarget& t : {unstructured(0.5), unstructured(0.25), unstructured(0.9), unstructured(0.3),
                                  unstructured(0.125), unstructured(1e-7), nm(2, 4), nm(4, 8), nm(1, 2), nm(3, 16)}) {
    const SparsityTarget back = parse_target_label(t.label());
    expect_same_target(back, t);
    EXPECT_EQ(back.label(), t.label());
  }
  expect_same_target(parse_target_label("u50"), parse_sparsity("0.5"));
  expect_same_target(parse_target_label("2-4"), parse_nm("2:4"));
  // As parse_sparsity reads the ratio label() prints.
  expect_same_target(parse_target_label(unstructured(1.0 / 3).label()), parse_sparsity("0.333333"));
}

TEST(TargetLabel, RefusesWhatLabelDoesNotWrite) {
  for (const char* bad : {"", "u", "u0", "u100", "u150", "u-5", "u050", "u50.0", "u 50", "ux", "50", "0.5", "2:4",
                          "4-2", "2-2", "0-4", "2-", "-4", "2-4-8", "a-b", "02-4", "U50", "u50 "}) {
    const std::string m = test::bad_input_message([&] { parse_target_label(bad); });
    EXPECT_NE(m.find("is not a target label"), std::string::npos) << bad << ": " << m;
  }
}

// ---- mask file names ----

TEST(MaskFileName, NamesAndReadsBack) {
  EXPECT_EQ(mask_file_name(PruneMethod::kWanda, unstructured(0.5)), "wanda_u50.safetensors");
  EXPECT_EQ(mask_file_name(PruneMethod::kSparseGPT, nm(2, 4)), "sparsegpt_2-4.safetensors");
  EXPECT_EQ(mask_file_name(PruneMethod::kMagnitude, nm(4, 8)), "magnitude_4-8.safetensors");
  for (PruneMethod m : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT})
    for (const SparsityTarget& t : {unstructured(0.5), unstructured(0.7), nm(2, 4)}) {
      const auto id = parse_mask_file_name(fs::path("masks") / mask_file_name(m, t));
      ASSERT_TRUE(id) << mask_file_name(m, t);
      EXPECT_EQ(id->method, m);
      expect_same_target(id->target, t);
      const auto prefixed = parse_mask_file_name("opt_" + mask_file_name(m, t));
      ASSERT_TRUE(prefixed);
      EXPECT_EQ(prefixed->method, m);
    }
  for (const char* other : {"masks.safetensors", "wanda.safetensors", "u50.safetensors", "pruned_u50.safetensors",
                            "wanda_u500.safetensors", "wanda_2-4x.safetensors", "wanda-u50"})
    EXPECT_FALSE(parse_mask_file_name(other)) << other;
}

TEST(AnalysisMaskRuns, OptionsNameTheClusteredRuns) {
  const std::string options = "layer=3 ks=2,8 runs=3 seed=0" + analysis_mask_run_option("/s/masks/wanda_u50.safetensors", 4) +
                              analysis_mask_run_option("sparsegpt_2-4.safetensors", 12);
  EXPECT_EQ(options, "layer=3 ks=2,8 runs=3 seed=0 wanda_u50.safetensors=4 sparsegpt_2-4.safetensors=12");
  EXPECT_EQ(analysis_mask_runs(options), (std::vector<int64_t>{4, 12}));
  EXPECT_TRUE(analysis_mask_runs("layer=3 ks=2 runs=3").empty());
  EXPECT_TRUE(analysis_mask_runs("").empty());
  EXPECT_TRUE(analysis_mask_runs("x.safetensors=abc y.safetensors=").empty());
}

// ---- summary.json ----

PruneSummary sample_summary() {
  PruneSummary s;
  s.model = "/models/tiny";
  s.method = PruneMethod::kSparseGPT;
  s.target = nm(2, 4);
  s.overall_sparsity = 0.5;
  s.matrices = {{"model.layers.0.self_attn.q_proj", 0, "q", 8, 16, 64, 0.25},
                {"model.layers.1.mlp.down_proj", 1, "down", 16, 8, 64, 1.5}};
  s.timings = {.load = 0.5, .forward = 1.0, .stats = 2.0, .select = 3.0, .total = 6.0, .save = 0.75};
  s.calibration = nlohmann::ordered_json{{"file", "tokens.safetensors"}, {"key", "calib"}, {"nsamples", 4}};
  s.blocksize = 64;
  s.percdamp = 0.02;
  s.dtype = "float32";
  s.threads = 2;
  s.checkpoint = {12, 4096, {"config.json", "tokenizer.json"}};
  s.restored_blocks = 1;
  s.pruned_blocks = 1;
  RunInfo run;
  run.kind = RunKind::kPrune;
  run.model_name = "tiny";
  run.model_path = "/models/tiny";
  run.architecture = "llama";
  run.method = "sparsegpt";
  run.target = nm(2, 4);
  run.calib_description = "tokens [4, 64]";
  run.calib_hash = "fnv1a64:0123456789abcdef";
  run.nsamples = 4;
  run.seqlen = 64;
  run.options = "blocksize=64 percdamp=0.02";
  s.run = run;
  s.device = {{"device", "cpu"}};
  return s;
}

TEST(PrunedFolder, SummaryRoundTrip) {
  TempDir dir;
  const PrunedFolder folder(dir.path());
  const PruneSummary s = sample_summary();
  folder.write_summary(s);
  const PruneSummary r = folder.read_summary();
  EXPECT_EQ(r.version, SPARSA_VERSION);
  EXPECT_EQ(r.model, s.model);
  EXPECT_EQ(r.method, s.method);
  ASSERT_TRUE(r.target);
  expect_same_target(*r.target, *s.target);
  EXPECT_EQ(r.overall_sparsity, s.overall_sparsity);
  ASSERT_EQ(r.matrices.size(), s.matrices.size());
  for (size_t i = 0; i < s.matrices.size(); ++i) {
    EXPECT_EQ(r.matrices[i].name, s.matrices[i].name);
    EXPECT_EQ(r.matrices[i].layer, s.matrices[i].layer);
    EXPECT_EQ(r.matrices[i].role, s.matrices[i].role);
    EXPECT_EQ(r.matrices[i].rows, s.matrices[i].rows);
    EXPECT_EQ(r.matrices[i].cols, s.matrices[i].cols);
    EXPECT_EQ(r.matrices[i].pruned, s.matrices[i].pruned);
    EXPECT_EQ(r.matrices[i].seconds, s.matrices[i].seconds);
  }
  EXPECT_EQ(r.timings.load, s.timings.load);
  EXPECT_EQ(r.timings.forward, s.timings.forward);
  EXPECT_EQ(r.timings.stats, s.timings.stats);
  EXPECT_EQ(r.timings.select, s.timings.select);
  EXPECT_EQ(r.timings.total, s.timings.total);
  EXPECT_EQ(r.timings.save, s.timings.save);
  EXPECT_EQ(r.calibration, s.calibration);
  EXPECT_EQ(r.blocksize, s.blocksize);
  EXPECT_EQ(r.percdamp, s.percdamp);
  EXPECT_EQ(r.dtype, s.dtype);
  EXPECT_EQ(r.threads, s.threads);
  EXPECT_EQ(r.checkpoint.tensors, s.checkpoint.tensors);
  EXPECT_EQ(r.checkpoint.bytes, s.checkpoint.bytes);
  EXPECT_EQ(r.checkpoint.copied_files, s.checkpoint.copied_files);
  EXPECT_EQ(r.restored_blocks, s.restored_blocks);
  EXPECT_EQ(r.pruned_blocks, s.pruned_blocks);
  ASSERT_TRUE(r.run);
  EXPECT_EQ(run_key(*r.run), run_key(*s.run));
  EXPECT_EQ(run_info_json(*r.run), run_info_json(*s.run));
  EXPECT_EQ(r.device, s.device);
  // Written again, the file is the same bytes.
  TempDir again;
  PrunedFolder(again.path()).write_summary(r);
  EXPECT_EQ(test::read_file(again / "summary.json"), test::read_file(dir / "summary.json"));
}

TEST(PrunedFolder, SummaryKeepsTheDocumentedLayout) {
  TempDir dir;
  PrunedFolder(dir.path()).write_summary(sample_summary());
  const std::string text = test::read_file(dir / "summary.json");
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(text);
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"tool", "version", "model", "method", "target", "overall_sparsity",
                                            "matrices", "timings", "calibration", "blocksize", "percdamp", "dtype",
                                            "threads", "checkpoint", "resume", "run", "device"}));
  EXPECT_EQ(j["target"].dump(), R"({"type":"n:m","n":2,"m":4,"sparsity":0.5,"label":"2-4"})");
  EXPECT_EQ(j["matrices"][0].dump(),
            R"({"name":"model.layers.0.self_attn.q_proj","layer":0,"role":"q","shape":[8,16],"pruned":64,)"
            R"("sparsity":0.5,"seconds":0.25})");
  EXPECT_EQ(j["timings"].dump(), R"({"load":0.5,"forward":1.0,"stats":2.0,"select":3.0,"total":6.0,"save":0.75})");
  EXPECT_EQ(text.back(), '\n');
}

TEST(PrunedFolder, MalformedSummariesAreOneLineErrors) {
  TempDir dir;
  const PrunedFolder folder(dir.path());
  EXPECT_FALSE(folder.is_finished());
  EXPECT_NE(test::bad_input_message([&] { folder.read_summary(); }).find("summary.json"), std::string::npos);
  for (const char* text : {"{not json", "[1, 2]", R"({"target": {"label": "u500"}})", R"({"method": "random"})",
                           R"({"run": {"model_name": "x"}})", R"({"blocksize": "big"})"}) {
    test::write_file(folder.summary_file(), text);
    const std::string m = test::bad_input_message([&] { folder.read_summary(); });
    EXPECT_NE(m.find(folder.summary_file().string()), std::string::npos) << text << ": " << m;
  }
  // A summary written before runs were recorded reads without one.
  test::write_file(folder.summary_file(), R"({"method": "wanda", "target": {"label": "u50"}, "model": "/m"})");
  const PruneSummary old = folder.read_summary();
  EXPECT_FALSE(old.run);
  EXPECT_EQ(old.method, PruneMethod::kWanda);
  EXPECT_EQ(old.model, "/m");
}

TEST(PrunedFolder, SummarizesAPruningResult) {
  PruneResult r;
  Mask a(2, 4), b(4, 2);
  a.pruned = {1, 1, 0, 0, 1, 0, 0, 0};
  b.pruned = {1, 1, 1, 1, 0, 0, 0, 1};
  r.linears.push_back({0, LinearRole::kQ, "model.layers.0.self_attn.q_proj", a, 0.5});
  r.linears.push_back({0, LinearRole::kDown, "model.layers.0.mlp.down_proj", b, 0.25});
  r.timings = {1, 2, 3, 6};
  const PruneSummary s = summarize_prune(r);
  EXPECT_DOUBLE_EQ(s.overall_sparsity, 8.0 / 16.0);
  ASSERT_EQ(s.matrices.size(), 2u);
  EXPECT_EQ(s.matrices[0].pruned, 3);
  EXPECT_EQ(s.matrices[1].role, "down");
  EXPECT_EQ(s.matrices[1].pruned, 5);
  EXPECT_EQ(s.timings.total, 6.0);
  EXPECT_FALSE(s.timings.load);
}

// ---- mask set origins ----

TEST(MaskSetOrigin, AFolderIsItsSummarysRunWithItsMaskFile) {
  TempDir dir;
  const PrunedFolder folder(dir / "pruned");
  fs::create_directories(folder.dir());
  PruneSummary s = sample_summary();
  folder.write_summary(s);
  PruneResult r;
  Mask m(8, 16);  // 2:4, as its label says (write_mask_file refuses anything else)
  for (size_t i = 0; i < m.pruned.size(); ++i) m.pruned[i] = i % 4 < 2;
  r.linears.push_back({0, LinearRole::kQ, "model.layers.0.self_attn.q_proj", m, 0.25});
  write_mask_file(folder.mask_file(), r, PruneMethod::kSparseGPT, nm(2, 4));
  EXPECT_TRUE(folder.is_finished());
  const MaskSetOrigin o = mask_set_origin(folder.dir());
  EXPECT_EQ(run_key(o.info), run_key(*s.run));
  EXPECT_EQ(o.info.mask_file, fs::weakly_canonical(folder.mask_file()));
  EXPECT_EQ(o.timings.total, 6.0);
  EXPECT_EQ(o.matrix_seconds["model.layers.1.mlp.down_proj"], 1.5);
  // The bare mask file: its metadata, its own path.
  const MaskSetOrigin f = mask_set_origin(folder.mask_file());
  EXPECT_EQ(f.info.method, "sparsegpt");
  ASSERT_TRUE(f.info.target);
  EXPECT_EQ(f.info.target->label(), "2-4");
  EXPECT_EQ(f.info.mask_file, fs::weakly_canonical(folder.mask_file()));
}

// ---- two command-built runs of one method and target, both in the dashboard ----

std::string calib_tokens() { return (test::repo_dir() / "data" / "calib-tokens.safetensors").string(); }

viz::SpyOptions spy_options(const std::string& title) {
  viz::SpyOptions o;
  o.frame = {600, 400, title, "input feature (column)", "output feature (row)"};
  o.set_label = "pruned";
  o.clear_label = "kept";
  return o;
}

// Two `sparsa prune --db` runs of Wanda at 50 % (other calibration) in two folders, and an
// analysis run clustering each one's mask: the dashboard draws every image from the mask file
// the run records.
TEST(CommandRuns, TwoPruneRunsOfOneMethodAndTargetAreBothViewable) {
  TempDir dir;
  const std::string db = (dir / "db.duckdb").string();
  const std::string matrix = "model.layers.2.mlp.up_proj";
  const std::vector<std::string> nsamples = {"2", "3"};
  for (const std::string& n : nsamples) {
    const auto r = test::run_sparsa({"prune", "--method", "wanda", "--sparsity", "0.5", "--calib", calib_tokens(),
                                     "--nsamples", n, "--seqlen", "64", "--out", (dir / ("wanda-" + n)).string(),
                                     "--db", db});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<int64_t> runs, analyses;
  {
    const auto store = Store::open(db, Store::Mode::kReadWrite);
    const json rows = store->query_json("SELECT run_id, method, structure, mask_file FROM runs ORDER BY run_id")["rows"];
    ASSERT_EQ(rows.size(), 2u);
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i][1], "wanda");
      EXPECT_EQ(rows[i][2], "u50");
      const fs::path mask_file = PrunedFolder(dir / ("wanda-" + nsamples[i])).mask_file();
      EXPECT_EQ(fs::path(rows[i][3].get<std::string>()), mask_file);
      runs.push_back(rows[i][0].get<int64_t>());
      RunWriter w = store->begin_run({.kind = RunKind::kAnalysis, .method = "coactivation",
                                      .options = "layer=2" + analysis_mask_run_option(mask_file, runs.back())});
      w.add_cluster_source({.source = "wanda/u50", .layer = 2, .hf_name = matrix, .description = "wanda u50 " + matrix + " rows"});
      analyses.push_back(w.add_clustering({.source = "wanda/u50", .hf_name = matrix, .k = 1}, {}));
      w.commit();
    }
  }
  serve::ServeOptions o;
  o.db = db;
  o.port = 0;
  serve::Server server(o);
  std::thread t([&] { server.run(); });
  httplib::Client c("127.0.0.1", server.port());
  c.set_default_headers({{"X-Sparsa-Token", server.token()}});
  const auto get = [&](const std::string& path) {
    const auto res = c.Get(path.c_str());
    return res && res->status == 200 ? res->body
                                     : "status " + std::to_string(res ? res->status : 0) + ": " + (res ? res->body : "");
  };
  std::vector<std::string> spies, gradients;
  for (size_t i = 0; i < runs.size(); ++i) {
    spies.push_back(get("/api/img/spy.png?run=" + std::to_string(runs[i]) + "&matrix=" + matrix + "&width=600&height=400"));
    gradients.push_back(get("/api/img/gradient_spy.png?analysis=" + std::to_string(analyses[i]) +
                            "&feature=0&width=600&height=400"));
  }
  server.stop();
  t.join();
  std::vector<BitMatrix> masks;
  for (size_t i = 0; i < runs.size(); ++i) {
    const MaskSet set = MaskSet::open(dir / ("wanda-" + nsamples[i]));
    masks.push_back(set.load_pruned(*set.find(matrix)));
    const BitMatrix& bits = masks.back();
    EXPECT_TRUE(spies[i] == viz::spy_plot(bits, spy_options("wanda u50 (run " + std::to_string(runs[i]) + "): " + matrix)).png())
        << spies[i].substr(0, 200);
    EXPECT_TRUE(gradients[i] == viz::gradient_spy_plot(bits, coactivation_order(bits, 0), 0,
                                                       spy_options("wanda u50 " + matrix +
                                                                   " rows: features by Hamming distance to feature 0"))
                                    .png())
        << gradients[i].substr(0, 200);
  }
  bool differ = false;
  for (int64_t r = 0; r < masks[0].rows(); ++r)
    for (int64_t col = 0; col < masks[0].cols(); ++col) differ = differ || masks[0].get(r, col) != masks[1].get(r, col);
  EXPECT_TRUE(differ) << "the two runs should hold different masks";
}

}  // namespace
}  // namespace sparsa
