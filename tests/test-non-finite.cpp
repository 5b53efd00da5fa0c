// NaN and Inf never become results: non-finite weights are refused when a model is loaded (naming
// the tensor and where in it), selection refuses non-finite scores and statistics, a block whose
// pruned weights are not finite or whose masks miss their N:M target is never committed, and a
// perplexity that is not finite is an error, never a number printed or stored.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/prune_backend.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using test::run_sparsa;
using test::TempDir;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

fs::path llama_dir() { return test::repo_dir() / "models" / "tiny-llama-15m"; }
fs::path calib_file() { return test::repo_dir() / "data" / "calib-tokens.safetensors"; }

// A copy of the model folder `src` in `dir` with every tensor in one fp32 model.safetensors, each
// passed through `edit(name, values)` first.
fs::path edited_model(const fs::path& dir, const fs::path& src,
                      const std::function<void(const std::string&, Tensor&)>& edit) {
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (name.find(".safetensors") == std::string::npos) fs::copy_file(e.path(), dir / name);
  }
  const auto store = TensorStore::open(src);
  std::vector<Tensor> tensors;
  const std::vector<std::string> names = store->names();
  tensors.reserve(names.size());
  std::vector<TensorToWrite> out;
  for (const std::string& name : names) {
    tensors.push_back(store->load_f32(name));
    edit(name, tensors.back());
    out.push_back({name, DType::F32, tensors.back().shape, tensors.back().ptr()});
  }
  write_safetensors(dir / "model.safetensors", out);
  return dir;
}

// `src` with `value` at [1, 2] of tensor `target`.
fs::path model_with_value(const fs::path& dir, const fs::path& src, const std::string& target, float value) {
  return edited_model(dir, src, [&](const std::string& name, Tensor& t) {
    if (name == target) t.data[static_cast<size_t>(t.dim(1) + 2)] = value;
  });
}

TEST(NonFinite, WeightsAreRefusedAtLoadNamingTheTensorAndPosition) {
  const std::string target = "model.layers.2.mlp.down_proj.weight";
  for (const float v : {kNaN, kInf, -kInf}) {
    SCOPED_TRACE(v);
    TempDir tmp;
    const fs::path dir = model_with_value(tmp / "m", llama_dir(), target, v);
    const std::string msg = test::bad_input_message([&] { load_model(dir); });
    EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("'" + target + "' holds " + fmt::format("{}", v) + " at [1, 2]"), std::string::npos) << msg;
  }
}

// Every command on either family (LLaMA; OPT when ../shared has its demo model).
void expect_every_command_refuses(const fs::path& src, const std::string& target) {
  TempDir tmp;
  const fs::path dir = model_with_value(tmp / "m", src, target, kNaN);
  const std::string calib = calib_file().string();
  const std::vector<std::vector<std::string>> commands = {
      {"eval", "--model", dir.string(), "--eval-limit", "1", "--db", (tmp / "db.duckdb").string()},
      {"generate", "--model", dir.string(), "--prompt", "Once", "--steps", "4"},
      {"acts", "--model", dir.string(), "--calib", calib, "--calib-key", "calib", "--nsamples", "1"},
      {"prune", "--model", dir.string(), "--method", "magnitude", "--sparsity", "0.5", "--out", (tmp / "o1").string()},
      {"prune", "--model", dir.string(), "--method", "wanda", "--nm", "2:4", "--calib", calib, "--nsamples", "2",
       "--out", (tmp / "o2").string()},
      {"prune", "--model", dir.string(), "--method", "sparsegpt", "--sparsity", "0.5", "--calib", calib, "--nsamples",
       "2", "--out", (tmp / "o3").string()},
  };
  for (const auto& args : commands) {
    SCOPED_TRACE(args[0] + " " + args[3]);
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(target), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  for (const char* out : {"o1", "o2", "o3"}) EXPECT_FALSE(fs::exists(tmp / out)) << out;
}

TEST(NonFinite, EveryCommandThatLoadsTheModelExitsTwoNamingTheTensor) {
  expect_every_command_refuses(llama_dir(), "model.layers.0.self_attn.k_proj.weight");
  if (test::shared_available())
    expect_every_command_refuses(test::shared_dir() / "models" / "tiny-opt-14m", "model.decoder.layers.1.fc1.weight");
}

// Block 0's down_proj scaled to the edge of the float range: every weight is finite, but the
// residual stream overflows to inf after block 0 and the later activations are NaN.
fs::path overflowing_model(const fs::path& dir) {
  return edited_model(dir, llama_dir(), [](const std::string& name, Tensor& t) {
    if (name == "model.layers.0.mlp.down_proj.weight")
      for (float& v : t.data) v = std::copysign(3e38f, v);
  });
}

TEST(NonFinite, PerplexityThatIsNotFiniteIsAnErrorNotAResult) {
  TempDir tmp;
  const Model m = load_model(overflowing_model(tmp / "m"));
  TensorI32 windows({2, 16});
  for (size_t i = 0; i < windows.numel(); ++i) windows.data[i] = static_cast<int32_t>(i * 37 % 8000 + 3);
  try {
    const PerplexityResult r = perplexity(m, windows);
    FAIL() << "a perplexity of " << r.ppl << " was returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("window 0 of 2 gives a non-finite loss"), std::string::npos) << e.what();
  }
  PerplexityResult overflow;
  overflow.windows = 3;
  overflow.mean_nll = 800.0;
  overflow.ppl = std::exp(overflow.mean_nll);
  EXPECT_THROW(check_perplexity_finite(overflow), Error);
}

TEST(NonFinite, EvalOfAnOverflowingModelExitsOneAndStoresNothing) {
  TempDir tmp;
  const fs::path dir = overflowing_model(tmp / "m");
  const auto r = run_sparsa({"eval", "--model", dir.string(), "--eval-limit", "2", "--json", "--db", (tmp / "db.duckdb").string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("non-finite loss"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("nan"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ppl"), std::string::npos) << r.out;
  // A rerun would find the run recorded if the failed one had stored it; it runs (and fails) again.
  const auto again = run_sparsa({"eval", "--model", dir.string(), "--eval-limit", "2", "--db", (tmp / "db.duckdb").string()});
  EXPECT_EQ(again.exit_code, 1) << again.err;
}

TEST(NonFinite, CalibrationStatisticsThatOverflowNameTheLinear) {
  TempDir tmp;
  const Model dense = load_model(overflowing_model(tmp / "m"));
  TensorI32 calib({2, 24});
  for (size_t i = 0; i < calib.numel(); ++i) calib.data[i] = static_cast<int32_t>(i * 53 % 8000 + 3);
  for (const PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    SCOPED_TRACE(prune_method_name(method));
    Model m = dense;
    PruneOptions opt;
    opt.method = method;
    opt.target = parse_sparsity("0.5");
    try {
      prune_model(m, calib, opt);
      FAIL() << "pruned from non-finite statistics";
    } catch (const Error& e) {
      // Wanda scores block 1 from the overflowed stream; SparseGPT's update of block 0's huge
      // down_proj itself overflows, which the block checks stop before it is committed.
      const bool wanda = method == PruneMethod::kWanda;
      EXPECT_EQ(e.kind(), ErrorKind::kRuntime) << e.what();
      EXPECT_NE(std::string(e.what()).find(wanda ? "model.layers.1." : "model.layers.0.mlp.down_proj"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find(wanda ? "the activations overflow" : "pruning left a non-finite weight"),
                std::string::npos)
          << e.what();
    }
  }
}

Tensor ramp(int64_t rows, int64_t cols) {
  Tensor t({rows, cols});
  for (size_t i = 0; i < t.numel(); ++i) t.data[i] = static_cast<float>(i % 7) - 3.0f;
  return t;
}

TEST(NonFinite, SelectionRefusesNonFiniteWeightsAndStatistics) {
  const SparsityTarget half = parse_sparsity("0.5"), nm = parse_nm("2:4");
  for (const float bad : {kNaN, kInf}) {
    Tensor w = ramp(4, 8);
    w.data[13] = bad;  // [1, 5]
    for (const SparsityTarget& t : {half, nm}) {
      EXPECT_NE(test::bad_input_message([&] { magnitude_mask(w, t); }).find("at [1, 5]"), std::string::npos);
      EXPECT_NE(test::bad_input_message([&] { wanda_mask(w, std::vector<float>(8, 1.0f), t); }).find("at [1, 5]"),
                std::string::npos);
      Tensor h({8, 8});
      for (int i = 0; i < 8; ++i) h.data[i * 9] = 1.0f;
      Tensor wc = w;
      EXPECT_NE(test::bad_input_message([&] { sparsegpt_prune(wc, h, t, 8, 0.01); }).find("at [1, 5]"),
                std::string::npos);
    }
    std::vector<float> norms(8, 1.0f);
    norms[6] = bad;
    EXPECT_THROW(wanda_mask(ramp(4, 8), norms, half), Error);
    Tensor h({8, 8});
    for (int i = 0; i < 8; ++i) h.data[i * 9] = 1.0f;
    h.data[2 * 8 + 3] = bad;
    Tensor w2 = ramp(4, 8);
    try {
      sparsegpt_prune(w2, h, half, 8, 0.01);
      ADD_FAILURE() << "pruned with a non-finite Hessian";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
      EXPECT_NE(std::string(e.what()).find("at [2, 3]"), std::string::npos) << e.what();
    }
  }
}

// The checks every committed block passes (prune_model wraps on_block with them for both
// backends): the hook never sees a block with a non-finite weight or a mask that misses its target.
TEST(NonFinite, BlockChecksStopABlockBeforeTheHookSeesIt) {
  Model m = load_model(llama_dir());
  LinearPruneResult lr;
  lr.layer = 1;
  lr.role = LinearRole::kV;
  lr.name = hf_linear_name(m.config.arch, 1, LinearRole::kV);
  Tensor& w = m.blocks[1].linear(LinearRole::kV).weight;
  lr.mask = Mask(w.dim(0), w.dim(1));
  for (int64_t r = 0; r < lr.mask.rows; ++r)
    for (int64_t c = 0; c < lr.mask.cols; c += 4) lr.mask.pruned[static_cast<size_t>(r * lr.mask.cols + c)] = lr.mask.pruned[static_cast<size_t>(r * lr.mask.cols + c + 1)] = 1;
  PruneOptions opt;
  opt.target = parse_nm("2:4");
  int hooked = 0;
  opt.on_block = [&](int64_t, std::span<const LinearPruneResult>) { ++hooked; };
  const PruneOptions checked = with_block_checks(m, opt);
  checked.on_block(1, std::span<const LinearPruneResult>(&lr, 1));
  EXPECT_EQ(hooked, 1);

  lr.mask.pruned[2] = 1;  // three of the group [0, 4) of row 0
  try {
    checked.on_block(1, std::span<const LinearPruneResult>(&lr, 1));
    ADD_FAILURE() << "a mask that is not 2:4 was committed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(lr.name + ": the mask"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not 2:4"), std::string::npos) << e.what();
  }
  lr.mask.pruned[2] = 0;
  w.data[w.numel() - 1] = kNaN;
  try {
    checked.on_block(1, std::span<const LinearPruneResult>(&lr, 1));
    ADD_FAILURE() << "a non-finite weight was committed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(lr.name + ".weight' holds nan"), std::string::npos) << e.what();
  }
  EXPECT_EQ(hooked, 1);
}

}  // namespace
}  // namespace sparsa
