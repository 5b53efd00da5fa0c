// Magnitude pruning of the OPT family: the golden (masks and pruned perplexity), and
// `sparsa prune` on the fp16 sharded checkpoint: the output is a complete HF folder with the
// source's tensor names, dtypes and shapes, masks under the OPT names of the golden, untouched
// biases, and it loads back in `sparsa eval`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "golden_prune.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_sparsa;

fs::path golden_dir() { return test::shared_dir() / "golden"; }

// One magnitude 50 % run, shared by the tests that read its output.
struct MagnitudeRun {
  test::TempDir dir;
  fs::path out = dir / "opt-mag-u50";
  test::CommandResult result = run_sparsa(
      {"prune", "--model", test::opt_demo_model().string(), "--out", out.string(), "--method", "magnitude", "--sparsity", "0.5"});
};
const MagnitudeRun& magnitude_u50() {
  static const MagnitudeRun run;
  return run;
}

// The pruned linears' module names: the golden's mask keys without ".mask".
std::vector<std::string> golden_linears() {
  std::vector<std::string> names;
  for (const std::string& key : TensorStore::open(golden_dir() / "opt_magnitude_u50.safetensors")->names())
    names.push_back(key.substr(0, key.size() - std::strlen(".mask")));
  return names;
}

// Pruned bit of column c in row r of a packbits(axis=-1) mask [rows, ceil(cols / 8)].
bool packed_bit(const TensorInfo& mask, int64_t r, int64_t c) {
  const int64_t row_bytes = mask.shape[1];
  return (mask.data[r * row_bytes + c / 8] >> (7 - c % 8)) & 1;
}

TEST(OptMagnitudeGolden, Unstructured50) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::check_golden_prune(
      test::opt_golden_case(PruneMethod::kMagnitude, parse_sparsity("0.5"), "opt_magnitude_u50.safetensors", 99.1520));
}

TEST(OptPruneCli, WritesACompleteFolderWithTheGoldensMasks) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                        "model.safetensors", "masks.safetensors", "summary.json"})
    EXPECT_TRUE(fs::exists(run.out / f)) << f;

  const auto ours = TensorStore::open(run.out / "masks.safetensors");
  const auto golden = TensorStore::open(golden_dir() / "opt_magnitude_u50.safetensors");
  ASSERT_EQ(ours->names(), golden->names());  // model.decoder.layers.{i}.{self_attn.*_proj|fc1|fc2}.mask
  ASSERT_EQ(golden->names().size(), 36u);
  for (const std::string& key : golden->names()) {
    const TensorInfo& a = ours->info(key);
    const TensorInfo& g = golden->info(key);
    ASSERT_EQ(a.shape, g.shape) << key;
    // Magnitude needs no calibration; the fp16 weights are exact in fp32, so bit for bit.
    EXPECT_EQ(std::memcmp(a.data, g.data, a.nbytes), 0) << key << " differs from the golden";
  }
  const json s = json::parse(test::read_file(run.out / "summary.json"));
  ASSERT_EQ(s["matrices"].size(), 36u);
  EXPECT_EQ(s["matrices"][0]["name"], "model.decoder.layers.0.self_attn.q_proj");
  EXPECT_EQ(s["matrices"][5]["name"], "model.decoder.layers.0.fc2");
}

// Same tensors, dtypes and shapes as the (sharded) source; weights zero exactly where the mask
// says and the source's elsewhere; every other tensor, biases included, bit for bit the source's.
TEST(OptPruneCli, KeepsTheSourceTensorsAndPrunesOnlyMaskedWeights) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  const auto source = TensorStore::open(test::opt_demo_model());
  const auto pruned = TensorStore::open(run.out);
  const auto masks = TensorStore::open(run.out / "masks.safetensors");
  ASSERT_EQ(pruned->names(), source->names());
  std::set<std::string> weights;
  for (const std::string& linear : golden_linears()) weights.insert(linear + ".weight");
  for (const std::string& name : source->names()) {
    const TensorInfo& a = pruned->info(name);
    const TensorInfo& b = source->info(name);
    ASSERT_EQ(a.dtype, DType::F16) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    if (!weights.count(name)) {
      EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name << " changed";
      continue;
    }
    const TensorInfo& mask = masks->info(name.substr(0, name.size() - std::strlen(".weight")) + ".mask");
    const Tensor before = source->load_f32(name), after = pruned->load_f32(name);
    const int64_t cols = b.shape[1];
    int64_t wrong = 0;
    for (size_t i = 0; i < after.numel(); ++i)
      wrong += packed_bit(mask, static_cast<int64_t>(i) / cols, static_cast<int64_t>(i) % cols)
                   ? after.data[i] != 0.0f
                   : after.data[i] != before.data[i];
    EXPECT_EQ(wrong, 0) << name;
  }
}

double eval_ppl(const fs::path& model) {
  const auto r = run_sparsa({"eval", "--model", model.string(), "--eval-tokens", (golden_dir() / "tokens.safetensors").string(),
                             "--eval-key", "eval", "--eval-limit", "2", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? json::parse(r.out)["ppl"].get<double>() : NAN;
}

TEST(OptPruneCli, EvalLoadsThePrunedFolder) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const MagnitudeRun& run = magnitude_u50();
  ASSERT_EQ(run.result.exit_code, 0) << run.result.err;
  const double pruned = eval_ppl(run.out), dense = eval_ppl(test::opt_demo_model());
  std::printf("first 2 eval windows: dense ppl %.3f, magnitude 50 %% ppl %.3f\n", dense, pruned);
  EXPECT_TRUE(std::isfinite(pruned));
  EXPECT_GT(pruned, dense * 1.2) << "magnitude 50 % costs OPT ~70 % perplexity (golden 58.03 -> 99.15)";
}

}  // namespace
}  // namespace sparsa
