// `sparsa prune` end to end on the demo model: the output folder (checkpoint, masks,
// summary.json), the magnitude golden reproduced exactly through the CLI, calibration from
// tokens and from text, the staging folder, and bad input (exit 2, one line on stderr).
// Every run is small (magnitude, or 2 samples x 64 tokens) so the whole file takes seconds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "sparsa/cuda.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::CommandResult;
using test::run_sparsa;
using test::TempDir;

constexpr int64_t kLayers = 6;
constexpr size_t kLinears = kLayers * kNumLinearRoles;

fs::path demo_model() { return test::repo_dir() / "models" / "tiny-llama-15m"; }
fs::path golden_dir() { return test::shared_dir() / "golden"; }
fs::path golden_tokens() { return golden_dir() / "tokens.safetensors"; }
fs::path persuasion() { return test::repo_dir() / "data" / "persuasion.txt"; }


json read_json(const fs::path& p) { return json::parse(test::read_file(p)); }

// Every linear's HF module name, layer-major, role order within a layer.
std::vector<std::string> linear_names() {
  std::vector<std::string> names;
  for (int64_t l = 0; l < kLayers; ++l)
    for (int r = 0; r < kNumLinearRoles; ++r) names.push_back(hf_linear_name(Arch::kLlama, l, static_cast<LinearRole>(r)));
  return names;
}

// Entries beside `out` named "<out name>.tmp-*" (the staging folder of a run).
std::vector<std::string> staging_leftovers(const fs::path& out) {
  std::vector<std::string> found;
  const std::string prefix = out.filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(out.parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) found.push_back(e.path().string());
  return found;
}

CommandResult prune(const fs::path& out, std::vector<std::string> args) {
  args.insert(args.begin(), {"prune", "--out", out.string()});
  return run_sparsa(args);
}

// Runs a prune that must succeed and leave no staging folder behind.
void expect_prune_ok(const fs::path& out, const std::vector<std::string>& args) {
  const CommandResult r = prune(out, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(staging_leftovers(out).empty());
}

// A failed prune: exit 2, one line naming `what`, nothing on stdout, and no output folder or
// staging folder left.
void expect_bad_input(const fs::path& out, const std::vector<std::string>& args, const std::string& what) {
  const CommandResult r = prune(out, args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << "stderr is not one line: " << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << "stderr does not mention '" << what << "': " << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(fs::exists(out)) << out;
  EXPECT_TRUE(staging_leftovers(out).empty());
}

// The masks of a pruned folder by linear name.
std::map<std::string, Mask> read_masks(const fs::path& out, const TensorStore& weights) {
  const auto store = TensorStore::open(out / "masks.safetensors");
  std::map<std::string, Mask> masks;
  for (const std::string& name : linear_names()) {
    const TensorInfo& w = weights.info(name + ".weight");
    const TensorInfo& m = store->info(name + ".mask");
    masks.emplace(name, unpack_mask(m.data, w.shape[0], w.shape[1]));
  }
  return masks;
}

// FNV-1a 64 over the little-endian bytes of int32 ids, as summary.json records it.
std::string fnv1a64_hex(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids)
    for (int b = 0; b < 4; ++b) {
      h ^= (static_cast<uint32_t>(id) >> (8 * b)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// One CLI magnitude 50 % run (--json), shared by the tests that only read its output.
struct MagnitudeRun {
  TempDir dir;
  fs::path out = dir / "mag-u50";
  CommandResult result = prune(out, {"--method", "magnitude", "--sparsity", "0.5", "--json"});
};
const MagnitudeRun& magnitude_u50() {
  static const MagnitudeRun run;
  return run;
}

TEST(PruneCli, MagnitudeWritesACompleteFolder) {
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                        "model.safetensors", "masks.safetensors", "summary.json"})
    EXPECT_TRUE(fs::exists(run.out / f)) << f;
  EXPECT_TRUE(staging_leftovers(run.out).empty());

  const auto source = TensorStore::open(demo_model());
  const auto masks = TensorStore::open(run.out / "masks.safetensors");
  EXPECT_EQ(masks->names().size(), kLinears);
  for (const std::string& name : linear_names()) {
    const auto& w = source->info(name + ".weight").shape;
    const TensorInfo& m = masks->info(name + ".mask");
    EXPECT_EQ(m.dtype, DType::U8) << name;
    EXPECT_EQ(m.shape, (std::vector<int64_t>{w[0], (w[1] + 7) / 8})) << name;
  }

  const json s = read_json(run.out / "summary.json");
  EXPECT_EQ(s["method"], "magnitude");
  EXPECT_EQ(s["version"], SPARSA_VERSION);
  EXPECT_EQ(s["target"]["sparsity"], 0.5);
  EXPECT_GE(s["overall_sparsity"].get<double>(), 0.5);
  EXPECT_LT(s["overall_sparsity"].get<double>(), 0.51);
  EXPECT_TRUE(s["calibration"].is_null());
  ASSERT_EQ(s["matrices"].size(), kLinears);
  const json& first = s["matrices"][0];
  EXPECT_EQ(first["name"], "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(first["role"], "q");
  EXPECT_EQ(first["shape"], json({384, 384}));
  EXPECT_NEAR(first["sparsity"].get<double>(), first["pruned"].get<double>() / (384.0 * 384.0), 1e-12);
  for (const char* k : {"forward", "stats", "select", "total", "save"}) EXPECT_TRUE(s["timings"].contains(k)) << k;
}

TEST(PruneCli, JsonPrintsACompactSummary) {
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  ASSERT_TRUE(test::one_line(run.result.out)) << run.result.out;
  const json j = json::parse(run.result.out);
  EXPECT_EQ(j["method"], "magnitude");
  EXPECT_EQ(j["target"]["label"], "u50");
  EXPECT_GE(j["sparsity"].get<double>(), 0.5);
  EXPECT_EQ(fs::path(j["out"].get<std::string>()), run.out);
  for (const char* k : {"forward", "stats", "select", "total", "save"}) EXPECT_TRUE(j["timings"].contains(k)) << k;
}

// Magnitude needs no calibration, so the CLI must reproduce the golden bit for bit.
TEST(PruneCli, MagnitudeMasksEqualTheGoldenExactly) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  const auto ours = TensorStore::open(run.out / "masks.safetensors");
  const auto golden = TensorStore::open(golden_dir() / "magnitude_u50.safetensors");
  for (const std::string& name : linear_names()) {
    const TensorInfo& a = ours->info(name + ".mask");
    const TensorInfo& g = golden->info(name + ".mask");
    ASSERT_EQ(a.shape, g.shape) << name;
    EXPECT_EQ(std::memcmp(a.data, g.data, a.nbytes), 0) << name << " differs from the golden";
  }
}

// Pruned entries are exactly zero; every other weight is the source's, bit for bit.
TEST(PruneCli, PrunedWeightsAreZeroExactlyWhereTheMaskSays) {
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  const auto source = TensorStore::open(demo_model());
  const auto pruned = TensorStore::open(run.out);
  for (const auto& [name, mask] : read_masks(run.out, *pruned)) {
    const Tensor before = source->load_f32(name + ".weight");
    const Tensor after = pruned->load_f32(name + ".weight");
    int64_t wrong = 0;
    for (size_t i = 0; i < after.numel(); ++i)
      wrong += mask.pruned[i] ? after.data[i] != 0.0f : after.data[i] != before.data[i];
    EXPECT_EQ(wrong, 0) << name;
  }
}

TEST(PruneCli, KeepsTheSourceTensorsAndDtypesByDefault) {
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  const auto source = TensorStore::open(demo_model());
  const auto pruned = TensorStore::open(run.out);
  ASSERT_EQ(pruned->names(), source->names());
  for (const std::string& name : source->names()) {
    EXPECT_EQ(pruned->info(name).dtype, DType::BF16) << name;
    EXPECT_EQ(pruned->info(name).shape, source->info(name).shape) << name;
  }
  // config.json: the source's, byte for byte (the sparsity metadata only with --sparsity-config,
  // ConfigRecordsTheSparsity...: transformers loads that only with compressed-tensors installed).
  EXPECT_EQ(test::read_file(run.out / "config.json"), test::read_file(demo_model() / "config.json"));
  const Tensor embed_src = source->load_f32("model.embed_tokens.weight");
  EXPECT_EQ(pruned->load_f32("model.embed_tokens.weight").data, embed_src.data);
}

// The zeros of every parameter of a checkpoint / their number, on its stored values.
double zero_fraction(const fs::path& checkpoint) {
  const auto store = TensorStore::open(checkpoint);
  int64_t zeros = 0, total = 0;
  for (const std::string& name : store->names()) {
    const Tensor t = store->load_f32(name);
    for (float v : t.data) zeros += v == 0.0f;
    total += static_cast<int64_t>(t.numel());
  }
  return static_cast<double>(zeros) / static_cast<double>(total);
}

// With --sparsity-config, config.json carries the compressed-tensors sparsity metadata
// llm-compressor writes (dense weights with zeros), so vLLM and llm-compressor can tell the
// structure; the rest of the file is the source's, key for key in the same order.
TEST(PruneCli, ConfigRecordsTheSparsityAsLlmCompressorDoes) {
  TempDir tmp;
  const fs::path u50 = tmp / "mag-u50";
  expect_prune_ok(u50, {"--method", "magnitude", "--sparsity", "0.5", "--sparsity-config"});
  nlohmann::ordered_json rest = nlohmann::ordered_json::parse(test::read_file(u50 / "config.json"));
  rest.erase("quantization_config");
  EXPECT_EQ(rest, nlohmann::ordered_json::parse(test::read_file(demo_model() / "config.json")));
  const json config = read_json(u50 / "config.json");
  const json& q = config["quantization_config"];
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_EQ(q["transform_config"], json::object());
  const json& s = q["sparsity_config"];
  EXPECT_EQ(s["format"], "dense");
  EXPECT_EQ(s["sparsity_structure"], "unstructured");
  EXPECT_EQ(s["targets"], json::array({"Linear"}));
  EXPECT_EQ(s["ignore"], json::array({"lm_head"}));
  EXPECT_EQ(s["registry_requires_subclass"], false);
  // a fraction (not a percentage) of every parameter, embeddings and norms included
  EXPECT_NEAR(s["global_sparsity"].get<double>(), zero_fraction(u50), 1e-12);
  EXPECT_GT(s["global_sparsity"].get<double>(), 0.3);
  EXPECT_LT(s["global_sparsity"].get<double>(), 0.5);

  const fs::path nm = tmp / "mag-2-4";
  expect_prune_ok(nm, {"--method", "magnitude", "--nm", "2:4", "--sparsity-config"});
  EXPECT_EQ(read_json(nm / "config.json")["quantization_config"]["sparsity_config"]["sparsity_structure"], "2:4");
  // Pruning it again without the flag drops the stale metadata: the source's config.json again.
  const fs::path plain = tmp / "plain";
  expect_prune_ok(plain, {"--model", nm.string(), "--method", "magnitude", "--sparsity", "0.7"});
  EXPECT_FALSE(read_json(plain / "config.json").contains("quantization_config"));
  EXPECT_EQ(nlohmann::ordered_json::parse(test::read_file(plain / "config.json")),
            nlohmann::ordered_json::parse(test::read_file(demo_model() / "config.json")));
  // With the flag it replaces the metadata; sparsa loads the result.
  const fs::path again = tmp / "again";
  expect_prune_ok(again, {"--model", nm.string(), "--method", "magnitude", "--sparsity", "0.7", "--sparsity-config"});
  const json again_config = read_json(again / "config.json");
  EXPECT_EQ(again_config["quantization_config"]["sparsity_config"]["sparsity_structure"], "unstructured");
  EXPECT_NEAR(again_config["quantization_config"]["sparsity_config"]["global_sparsity"].get<double>(),
              zero_fraction(again), 1e-12);
  const CommandResult ev = run_sparsa({"eval", "--model", again.string(), "--eval-limit", "1", "--json"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  EXPECT_TRUE(std::isfinite(json::parse(ev.out)["ppl"].get<double>()));
}

// With --db, a rerun that finds its result prints it all the same, saying it was reused.
TEST(PruneCli, JsonOfARerunWithDbIsTheStoredResult) {
  TempDir tmp;
  const std::vector<std::string> args = {"--method", "magnitude", "--sparsity", "0.5", "--json", "--db",
                                         (tmp / "db.duckdb").string()};
  const CommandResult first = prune(tmp / "mag", args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const CommandResult again = prune(tmp / "mag", args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("already holds"), std::string::npos) << again.err;
  const json a = json::parse(first.out), b = json::parse(again.out);
  EXPECT_FALSE(a.contains("reused"));
  EXPECT_EQ(b["reused"], true);
  EXPECT_EQ(b["run"], 1);
  for (const char* k : {"method", "target", "sparsity", "matrices", "out", "timings"}) EXPECT_EQ(a[k], b[k]) << k;
  std::vector<std::string> text_args = args;
  std::erase(text_args, std::string("--json"));
  const CommandResult text = prune(tmp / "mag", text_args);
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("already pruned 42 matrices"), std::string::npos) << text.out;
}

TEST(PruneCli, Float32DtypeWritesF32AndUpdatesTheConfig) {
  TempDir tmp;
  const fs::path out = tmp / "mag-f32";
  expect_prune_ok(out, {"--method", "magnitude", "--sparsity", "0.5", "--dtype", "float32"});
  const auto pruned = TensorStore::open(out);
  for (const std::string& name : pruned->names()) EXPECT_EQ(pruned->info(name).dtype, DType::F32) << name;
  EXPECT_EQ(read_json(out / "config.json")["dtype"], "float32");
  // bf16 -> fp32 is exact, so the values equal the default (bf16) run's.
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  const std::string name = hf_linear_name(Arch::kLlama, 3, LinearRole::kDown) + ".weight";
  EXPECT_EQ(pruned->load_f32(name).data, TensorStore::open(run.out)->load_f32(name).data);
}

TEST(PruneCli, EvalLoadsThePrunedFolder) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  const CommandResult r = run_sparsa({"eval", "--model", run.out.string(), "--eval-tokens", golden_tokens().string(), "--eval-key",
                                      "eval", "--eval-limit", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double ppl = json::parse(r.out)["ppl"].get<double>();
  EXPECT_TRUE(std::isfinite(ppl) && ppl > 1.0) << ppl;
}

TEST(PruneCli, WandaTwoFourFromGoldenCalibrationTokens) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  TempDir tmp;
  const fs::path out = tmp / "wanda-2-4";
  expect_prune_ok(out, {"--method", "wanda", "--nm", "2:4", "--calib", golden_tokens().string(), "--calib-key",
                        "calib", "--nsamples", "2", "--seqlen", "64"});
  const auto pruned = TensorStore::open(out);
  for (const auto& [name, mask] : read_masks(out, *pruned)) {
    EXPECT_TRUE(mask_is_nm(mask, 2, 4)) << name;
    EXPECT_EQ(mask.count() * 2, mask.rows * mask.cols) << name;
  }
  const json s = read_json(out / "summary.json");
  EXPECT_DOUBLE_EQ(s["overall_sparsity"].get<double>(), 0.5);
  const json& c = s["calibration"];
  EXPECT_EQ(c["kind"], "tokens");
  EXPECT_EQ(c["key"], "calib");
  EXPECT_EQ(c["nsamples"], 2);
  EXPECT_EQ(c["seqlen"], 64);
  // The first 64 tokens of the first 2 rows were used.
  const TensorI32 calib = TensorStore::open(golden_tokens())->load_i32("calib");
  std::vector<int32_t> used;
  for (int64_t r = 0; r < 2; ++r) used.insert(used.end(), calib.data.begin() + r * calib.dim(1), calib.data.begin() + r * calib.dim(1) + 64);
  EXPECT_EQ(c["tokens_fnv1a64"], fnv1a64_hex(used));
}

TEST(PruneCli, CalibTextRecordsOffsetsAndIsReproducible) {
  TempDir tmp;
  const auto run_with_seed = [&](const std::string& name, const std::string& seed) {
    const fs::path out = tmp / name;
    expect_prune_ok(out, {"--method", "wanda", "--sparsity", "0.5", "--calib-text", persuasion().string(), "--nsamples",
                          "2", "--seqlen", "64", "--seed", seed});
    return out;
  };
  const fs::path a = run_with_seed("a", "7"), b = run_with_seed("b", "7"), c = run_with_seed("c", "8");
  const json ca = read_json(a / "summary.json")["calibration"];
  EXPECT_EQ(ca["kind"], "text");
  EXPECT_EQ(ca["seed"], 7);
  ASSERT_EQ(ca["offsets"].size(), 2u);
  const int64_t last = ca["stream_tokens"].get<int64_t>() - 64;
  for (const json& off : ca["offsets"]) {
    EXPECT_GE(off.get<int64_t>(), 0);
    EXPECT_LE(off.get<int64_t>(), last);
  }
  const json cb = read_json(b / "summary.json")["calibration"];
  EXPECT_EQ(cb["offsets"], ca["offsets"]);
  EXPECT_EQ(cb["tokens_fnv1a64"], ca["tokens_fnv1a64"]);
  EXPECT_EQ(test::read_file(a / "masks.safetensors"), test::read_file(b / "masks.safetensors"));
  EXPECT_NE(read_json(c / "summary.json")["calibration"]["offsets"], ca["offsets"]);
}

// A run that was killed leaves "<out>.tmp-<pid>"; the next run to that --out removes it when
// the pid is gone (999999999 is above any pid_max), and leaves a live process's alone.
TEST(PruneCli, RemovesTheStagingFoldersOfKilledRuns) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const fs::path dead = tmp / "out.tmp-999999999", alive = tmp / ("out.tmp-" + std::to_string(getppid()));
  fs::create_directories(dead);
  fs::create_directories(alive);
  const CommandResult r = prune(out, {"--method", "magnitude", "--nm", "2:4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
}

// ---- bad input ----

class PruneCliBadInput : public ::testing::Test {
 protected:
  TempDir tmp;
  fs::path out = tmp / "out";
  std::vector<std::string> magnitude(std::vector<std::string> target) {
    target.insert(target.begin(), {"--method", "magnitude"});
    return target;
  }
};

// SparseGPT's N:M groups must not straddle its lazy-update blocks; the refusal names --blocksize.
TEST_F(PruneCliBadInput, SparseGptNmBlocksizeNotAMultipleOfM) {
  const std::string calib = (test::repo_dir() / "data" / "calib-tokens.safetensors").string();
  for (const auto& [nm, block] : std::vector<std::pair<std::string, std::string>>{{"2:4", "6"}, {"4:8", "20"}, {"2:3", "128"}})
    expect_bad_input(out, {"--method", "sparsegpt", "--nm", nm, "--blocksize", block, "--calib", calib}, "--blocksize");
}

// Every float option refuses NaN and infinities (exit 2, naming it) before any work starts.
TEST_F(PruneCliBadInput, NonFinitePercdamp) {
  const std::string calib = (test::repo_dir() / "data" / "calib-tokens.safetensors").string();
  for (const char* v : {"nan", "inf", "-inf", "-0.1", "1e999", "1e7"})
    expect_bad_input(out, {"--method", "sparsegpt", "--sparsity", "0.5", "--percdamp", v, "--calib", calib}, "--percdamp");
  for (const char* v : {"nan", "inf"}) expect_bad_input(out, magnitude({"--sparsity", v}), "--sparsity");
}

TEST_F(PruneCliBadInput, NmWithNNotBelowM) {
  expect_bad_input(out, magnitude({"--nm", "3:2"}), "--nm");
  expect_bad_input(out, magnitude({"--nm", "2:2"}), "--nm");
}

TEST_F(PruneCliBadInput, SparsityOutsideZeroOne) {
  expect_bad_input(out, magnitude({"--sparsity", "1.5"}), "--sparsity");
  expect_bad_input(out, magnitude({"--sparsity", "0"}), "--sparsity");
}

TEST_F(PruneCliBadInput, ExactlyOneTarget) {
  expect_bad_input(out, magnitude({"--sparsity", "0.5", "--nm", "2:4"}), "exactly one");
  expect_bad_input(out, magnitude({}), "exactly one");
}

// Without either, Wanda calibrates on the bundled windows (test-token-files); both at once is refused.
TEST_F(PruneCliBadInput, CalibAndCalibTextTogether) {
  expect_bad_input(out, {"--method", "wanda", "--sparsity", "0.5", "--calib", "a.safetensors", "--calib-text", "b.txt"},
                   "alternatives");
}

TEST_F(PruneCliBadInput, MissingCalibrationKey) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const std::vector<std::string> args{"--method", "wanda", "--sparsity", "0.5", "--calib", golden_tokens().string(),
                                      "--calib-key", "nosuchkey"};
  expect_bad_input(out, args, "nosuchkey");
  expect_bad_input(out, args, golden_tokens().string());
}

// Also the failure that happens after the staging folder exists: expect_bad_input checks it
// is gone.
TEST_F(PruneCliBadInput, CalibrationIdOutsideTheVocabulary) {
  std::vector<int32_t> ids(2 * 64, 5);
  ids[64 + 7] = 9000;  // the demo vocabulary has 8192 ids
  const fs::path calib = tmp / "calib.safetensors";
  write_safetensors(calib, {{"calib", DType::I32, {2, 64}, ids.data()}});
  const std::vector<std::string> args{"--method", "wanda", "--sparsity", "0.5", "--calib", calib.string()};
  const CommandResult r = prune(out, args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  for (const std::string what : {calib.string(), std::string("'calib'"), std::string("9000")})
    EXPECT_NE(r.err.find(what), std::string::npos) << what << " not in: " << r.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(staging_leftovers(out).empty());
}

TEST_F(PruneCliBadInput, SeqlenAboveTheContext) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  expect_bad_input(out, {"--method", "wanda", "--sparsity", "0.5", "--calib", golden_tokens().string(), "--seqlen", "1024"},
                   "context length 512");
}

TEST_F(PruneCliBadInput, Llama2cModel) {
  const fs::path bin = tmp / "stories.bin";
  test::write_file(bin, std::string(64, '\0'));
  expect_bad_input(out, magnitude({"--sparsity", "0.5", "--model", bin.string()}), "llama2.c");
}

// --device cuda where it cannot run: built without CUDA, or no device on this machine.
TEST_F(PruneCliBadInput, CudaDeviceWithoutAGpuIsARuntimeFailure) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a CUDA device";
  const CommandResult r = prune(out, magnitude({"--sparsity", "0.5", "--device", "cuda"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  const bool says_why = r.err.find("built without CUDA") != std::string::npos ||
                        r.err.find("no CUDA device is available") != std::string::npos;
  EXPECT_TRUE(says_why) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// Run in a scratch folder with a model that has only a config.json: should the guard ever
// break, the run fails loading the weights before anything is replaced.
TEST_F(PruneCliBadInput, OutThatWouldReplaceTheModelOrTheWorkingFolder) {
  const fs::path model = tmp / "models" / "fake";
  fs::create_directories(model);
  fs::copy_file(demo_model() / "config.json", model / "config.json");
  const fs::path cwd = fs::current_path();
  fs::current_path(tmp.path());
  for (const std::string& dir : {(tmp / "models").string(), model.string(), std::string("."), std::string("")}) {
    const CommandResult r = run_sparsa(
        {"prune", "--model", model.string(), "--method", "magnitude", "--sparsity", "0.5", "--force", "--out", dir});
    EXPECT_EQ(r.exit_code, 2) << dir << ": " << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;
  }
  fs::current_path(cwd);
  EXPECT_TRUE(fs::exists(model / "config.json"));
}

TEST_F(PruneCliBadInput, NonEmptyOutNeedsForce) {
  fs::create_directories(out);
  test::write_file(out / "old.txt", "old");
  const CommandResult r = prune(out, magnitude({"--sparsity", "0.5"}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out / "old.txt"));
  EXPECT_FALSE(fs::exists(out / "summary.json"));
  EXPECT_TRUE(staging_leftovers(out).empty());

  // --force deletes only an earlier prune's folder (its summary.json), never anything else.
  const CommandResult forced = prune(out, magnitude({"--sparsity", "0.5", "--force"}));
  EXPECT_EQ(forced.exit_code, 2);
  EXPECT_TRUE(test::one_line(forced.err)) << forced.err;
  EXPECT_NE(forced.err.find("summary.json"), std::string::npos) << forced.err;
  EXPECT_TRUE(fs::exists(out / "old.txt"));
  fs::remove(out / "old.txt");
  expect_prune_ok(out, magnitude({"--sparsity", "0.5"}));
  test::write_file(out / "old.txt", "old");
  expect_prune_ok(out, magnitude({"--sparsity", "0.5", "--force"}));
  EXPECT_FALSE(fs::exists(out / "old.txt"));
  EXPECT_TRUE(fs::exists(out / "summary.json"));
}

}  // namespace
}  // namespace sparsa
