// `sparsa prune` killed with SIGKILL at random points and rerun: the final masks and checkpoint
// are byte-identical to an uninterrupted run, the blocks finished before the kill are restored
// rather than pruned again, and a rerun with other arguments refuses to resume (or restarts).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/prune_resume.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::CommandResult;
using test::run_sparsa;
using test::TempDir;

constexpr int64_t kLayers = 6;  // blocks of the demo model

// SparseGPT (its weight updates must survive the restart too) on calibration text, fp32 output so
// the checkpoint carries the updated weights bit for bit.
std::vector<std::string> prune_args(const fs::path& out, const std::string& sparsity = "0.5") {
  return {"prune", "--method", "sparsegpt", "--sparsity", sparsity, "--calib-text",
          (test::repo_dir() / "data" / "persuasion.txt").string(), "--nsamples", "4", "--seqlen", "128",
          "--dtype", "float32", "--threads", "2", "--out", out.string()};
}

fs::path partial_of(const fs::path& out) { return fs::path(out.string() + ".partial"); }

int64_t finished_blocks(const fs::path& out) {
  int64_t n = 0;
  while (fs::exists(partial_of(out) / ("block-000" + std::to_string(n) + ".safetensors"))) ++n;
  return n;
}

json summary(const fs::path& out) { return json::parse(test::read_file(out / "summary.json")); }

// The uninterrupted run every resumed run is compared with, and how long it took.
struct Reference {
  TempDir dir;
  fs::path out = dir / "ref";
  double seconds = 0;
  CommandResult result;
  Reference() {
    const auto t0 = std::chrono::steady_clock::now();
    result = run_sparsa(prune_args(out));
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};
const Reference& reference() {
  static const Reference r;
  return r;
}

// Starts the prune and SIGKILLs it once `done()` holds (polled every millisecond). Returns false
// when the process finished first.
template <typename Done>
bool kill_when(const std::vector<std::string>& args, Done done) {
  const pid_t pid = test::start_sparsa(args);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (done()) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void expect_same_output(const fs::path& out) {
  const fs::path ref = reference().out;
  EXPECT_EQ(test::read_file(out / "masks.safetensors"), test::read_file(ref / "masks.safetensors"));
  EXPECT_EQ(test::read_file(out / "model.safetensors"), test::read_file(ref / "model.safetensors"));
  EXPECT_FALSE(fs::exists(partial_of(out))) << "the progress folder outlived the finished run";
}

TEST(PruneResume, ReferenceRunCompletesAndCleansUp) {
  ASSERT_EQ(reference().result.exit_code, 0) << reference().result.err;
  const json s = summary(reference().out);
  EXPECT_EQ(s["resume"]["restored_blocks"], 0);
  EXPECT_EQ(s["resume"]["pruned_blocks"], kLayers);
  EXPECT_FALSE(fs::exists(partial_of(reference().out)));
}

// Seeds alternate between killing right after a given block's checkpoint appeared and killing
// after a random delay (anywhere in the run, loading included); some seeds kill twice.
TEST(PruneResume, KilledRunsResumeToByteIdenticalOutput) {
  ASSERT_EQ(reference().result.exit_code, 0) << reference().result.err;
  for (unsigned seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    TempDir tmp;
    const fs::path out = tmp / "out";
    const int kills = seed % 3 == 0 ? 2 : 1;
    int64_t finished_at_last_kill = 0;
    for (int k = 0; k < kills; ++k) {
      bool killed = false;
      if (seed % 2 == 0) {
        const int64_t block = std::uniform_int_distribution<int64_t>(finished_blocks(out), kLayers - 2)(rng);
        killed = kill_when(prune_args(out), [&] { return finished_blocks(out) > block; });
      } else {
        // A run that beats its delay (a busy machine), or is killed only after its output was in
        // place, has finished: it is discarded and retried with half the delay.
        auto delay = std::chrono::duration<double>(std::uniform_real_distribution<double>(0.0, reference().seconds)(rng));
        for (int attempt = 0; attempt < 6 && !killed; ++attempt, delay /= 2) {
          fs::remove_all(out);
          const auto t0 = std::chrono::steady_clock::now();
          killed = kill_when(prune_args(out), [&] { return std::chrono::steady_clock::now() - t0 >= delay; });
          if (killed && fs::exists(out)) {
            std::printf("seed %u: killed after the output was in place; retried\n", seed);
            EXPECT_EQ(test::read_file(out / "masks.safetensors"), test::read_file(reference().out / "masks.safetensors"));
            fs::remove_all(partial_of(out));
            killed = false;
          }
        }
      }
      ASSERT_TRUE(killed) << "the run finished before the kill";
      ASSERT_FALSE(fs::exists(out)) << "a killed run left a complete-looking output folder";
      finished_at_last_kill = finished_blocks(out);
    }
    std::printf("seed %u: killed %d time(s), %lld block(s) finished before the last kill\n", seed, kills,
                static_cast<long long>(finished_at_last_kill));
    const CommandResult r = run_sparsa(prune_args(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_output(out);
    const json s = summary(out);
    EXPECT_EQ(s["resume"]["restored_blocks"], finished_at_last_kill);
    EXPECT_EQ(s["resume"]["pruned_blocks"], kLayers - finished_at_last_kill);
    EXPECT_EQ(r.err.find("resuming after block") != std::string::npos, finished_at_last_kill > 0) << r.err;
  }
}

// Wanda only zeroes weights of the bf16 demo model, so its checkpoints are stored as BF16 (half the
// bytes of F32) while SparseGPT's updated weights stay F32; both resume to the same output.
TEST(PruneResume, CheckpointsAreHalfPrecisionWhenThatIsExact) {
  ASSERT_EQ(reference().result.exit_code, 0) << reference().result.err;
  TempDir tmp;
  const auto wanda_args = [&](const fs::path& out) {
    std::vector<std::string> a = prune_args(out);
    a[2] = "wanda";
    return a;
  };
  const fs::path whole = tmp / "whole", out = tmp / "out", sgpt = tmp / "sgpt";
  ASSERT_EQ(run_sparsa(wanda_args(whole)).exit_code, 0);
  ASSERT_TRUE(kill_when(wanda_args(out), [&] { return finished_blocks(out) >= 2; }));
  const auto weight_type = [&](const fs::path& o) {
    const auto f = SafetensorsFile::open(partial_of(o) / "block-0000.safetensors");
    return f->find("model.layers.0.mlp.down_proj.weight")->dtype;
  };
  EXPECT_EQ(weight_type(out), DType::BF16);
  const CommandResult r = run_sparsa(wanda_args(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(summary(out)["resume"]["restored_blocks"].get<int64_t>(), 2);
  EXPECT_EQ(test::read_file(out / "masks.safetensors"), test::read_file(whole / "masks.safetensors"));
  EXPECT_EQ(test::read_file(out / "model.safetensors"), test::read_file(whole / "model.safetensors"));

  ASSERT_TRUE(kill_when(prune_args(sgpt), [&] { return finished_blocks(sgpt) >= 1; }));
  EXPECT_EQ(weight_type(sgpt), DType::F32);
}

TEST(PruneResume, OtherArgumentsRefuseToResumeUnlessRestarted) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  ASSERT_TRUE(kill_when(prune_args(out), [&] { return finished_blocks(out) >= 1; }));
  const CommandResult refused = run_sparsa(prune_args(out, "0.6"));
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_TRUE(test::one_line(refused.err)) << refused.err;
  EXPECT_NE(refused.err.find("different arguments (target was \"u50\", now \"u60\")"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--restart"), std::string::npos) << refused.err;
  EXPECT_GE(finished_blocks(out), 1) << "a refused rerun must keep the interrupted run's checkpoints";

  std::vector<std::string> restart = prune_args(out, "0.6");
  restart.push_back("--restart");
  const CommandResult r = run_sparsa(restart);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(summary(out)["resume"]["restored_blocks"], 0);
  EXPECT_FALSE(fs::exists(partial_of(out)));
}

TEST(PruneResume, CorruptProgressFilesAreCleanErrorsAndRestartRecovers) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  ASSERT_TRUE(kill_when(prune_args(out), [&] { return finished_blocks(out) >= 1; }));
  test::write_file(partial_of(out) / "block-0000.safetensors", std::string(64, 'x'));
  const CommandResult r = run_sparsa(prune_args(out));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("block-0000.safetensors"), std::string::npos) << r.err;

  test::write_file(partial_of(out) / "run.json", "[1, 2]");
  const CommandResult bad_run = run_sparsa(prune_args(out));
  EXPECT_EQ(bad_run.exit_code, 2) << bad_run.err;
  EXPECT_NE(bad_run.err.find("run.json: not a JSON object"), std::string::npos) << bad_run.err;
  std::vector<std::string> restart = prune_args(out);
  restart.push_back("--restart");
  const CommandResult restarted = run_sparsa(restart);
  ASSERT_EQ(restarted.exit_code, 0) << restarted.err;
  expect_same_output(out);
}

// ---- progress folders that do not fit: fabricated with PruneResume itself ----

// A copy of the demo model (files copied, so that they can be changed).
fs::path model_copy(const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(test::repo_dir() / "models" / "tiny-llama-15m"))
    fs::copy_file(e.path(), dir / e.path().filename());
  return dir;
}

PruneOptions magnitude_half() {
  PruneOptions opt;
  opt.method = PruneMethod::kMagnitude;
  opt.target = parse_sparsity("0.5");
  return opt;
}

// "<out>.partial/" with block 0 checkpointed as `sparsa prune --method magnitude --sparsity 0.5`
// of `model_dir` writes it (magnitude has no calibration: the identity is the CLI's).
void checkpoint_block_zero(const fs::path& model_dir, const fs::path& out) {
  Model m = load_model(model_dir);
  const PruneOptions opt = magnitude_half();
  PruneResume progress(out, prune_resume_identity(model_dir, opt, nullptr), false);
  std::vector<LinearPruneResult> linears;
  for (const LinearRole role : arch_info(m.config.arch).roles) {
    LinearPruneResult& lr = linears.emplace_back();
    lr.layer = 0;
    lr.role = role;
    lr.name = hf_linear_name(m.config.arch, 0, role);
    Tensor& w = m.blocks[0].linear(role).weight;
    lr.mask = magnitude_mask(w, opt.target);
    apply_mask(w, lr.mask);
  }
  progress.save_block(m, 0, linears);
}

// Rewrites block 0's checkpoint through `edit`, which changes the list of tensors to write.
void rewrite_block_zero(const fs::path& out, const std::function<void(std::vector<TensorToWrite>&)>& edit) {
  const fs::path file = partial_of(out) / "block-0000.safetensors";
  const auto saved = SafetensorsFile::open(file);
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : saved->tensors()) tensors.push_back({t.name, t.dtype, t.shape, t.data});
  edit(tensors);
  write_safetensors(file, tensors, saved->metadata());  // atomic: the mapping read above stays valid
}

TEST(PruneResumeCheckpoints, MissingWrongOrExtraTensorsAreNamedNeverCrash) {
  const fs::path model_dir = test::repo_dir() / "models" / "tiny-llama-15m";
  const std::string q = "model.layers.0.self_attn.q_proj";
  const std::vector<uint8_t> zeros(384 * 384 * 4, 0);
  const std::vector<float> nan_bytes(384 * 384, std::numeric_limits<float>::quiet_NaN());
  struct Case {
    std::string what, expect;
    std::function<void(std::vector<TensorToWrite>&)> edit;
  };
  const std::vector<Case> cases = {
      {"mask missing", "tensor '" + q + ".mask' is missing",
       [&](auto& ts) { std::erase_if(ts, [&](const TensorToWrite& t) { return t.name == q + ".mask"; }); }},
      {"weight missing", "tensor '" + q + ".weight' is missing",
       [&](auto& ts) { std::erase_if(ts, [&](const TensorToWrite& t) { return t.name == q + ".weight"; }); }},
      {"weight shape", "tensor '" + q + ".weight' has shape [384, 383]",
       [&](auto& ts) { for (auto& t : ts) if (t.name == q + ".weight") t.shape = {384, 383}; }},
      {"mask dtype", "tensor '" + q + ".mask' has dtype I8",
       [&](auto& ts) { for (auto& t : ts) if (t.name == q + ".mask") t.dtype = DType::I8; }},
      {"weight dtype", "tensor '" + q + ".weight' has dtype I32",
       [&](auto& ts) { for (auto& t : ts) if (t.name == q + ".weight") { t.dtype = DType::I32; t.data = zeros.data(); } }},
      {"mask shape", "tensor '" + q + ".mask' has shape [48, 384]",
       [&](auto& ts) { for (auto& t : ts) if (t.name == q + ".mask") t.shape = {48, 384}; }},
      {"extra tensor", "tensor 'model.layers.1.self_attn.q_proj.mask' does not belong to block 0",
       [&](auto& ts) { ts.push_back({"model.layers.1.self_attn.q_proj.mask", DType::U8, {1, 1}, zeros.data()}); }},
      {"NaN weight", "tensor '" + q + ".weight' holds nan at [0, 0]",
       [&](auto& ts) { for (auto& t : ts) if (t.name == q + ".weight") { t.dtype = DType::F32; t.data = nan_bytes.data(); } }},
      {"renamed tensor", "tensor 'junk' does not belong to block 0",
       [&](auto& ts) { for (auto& t : ts) if (t.name == q + ".mask") t.name = "junk"; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TempDir tmp;
    const fs::path out = tmp / "out";
    checkpoint_block_zero(model_dir, out);
    rewrite_block_zero(out, c.edit);
    Model m = load_model(model_dir);
    const PruneResume progress(out, prune_resume_identity(model_dir, magnitude_half(), nullptr), false);
    ASSERT_EQ(progress.finished_blocks(), 1);
    const std::string msg = test::bad_input_message([&] { progress.restore(m); });
    EXPECT_NE(msg.find("block-0000.safetensors: " + c.expect), std::string::npos) << msg;
  }
}

TEST(PruneResumeCheckpoints, TheCliRefusesABrokenCheckpointInOneLineAndRestartRecovers) {
  TempDir tmp;
  const fs::path model_dir = test::repo_dir() / "models" / "tiny-llama-15m", out = tmp / "out";
  checkpoint_block_zero(model_dir, out);
  rewrite_block_zero(out, [](auto& ts) {
    std::erase_if(ts, [](const TensorToWrite& t) { return t.name == "model.layers.0.mlp.down_proj.mask"; });
  });
  const std::vector<std::string> args = {"prune", "--model", model_dir.string(), "--method", "magnitude",
                                         "--sparsity", "0.5", "--out", out.string()};
  const CommandResult r = run_sparsa(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("down_proj.mask' is missing"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--restart"), std::string::npos) << r.err;
  std::vector<std::string> restart = args;
  restart.push_back("--restart");
  const CommandResult again = run_sparsa(restart);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(summary(out)["resume"]["restored_blocks"], 0);
}

// The model's files are part of the run's identity: a model changed in place since the interrupted
// run (another size or modification time of any file of its folder) is never mixed with the
// interrupted run's checkpoints.
TEST(PruneResumeCheckpoints, ModelFilesChangedSinceTheInterruptedRunAreNoticed) {
  TempDir tmp;
  const fs::path model_dir = model_copy(tmp / "model");
  const PruneOptions opt = magnitude_half();
  const auto identity = [&] { return prune_resume_identity(model_dir, opt, nullptr); };
  const std::string config_key = "file config.json";
  ASSERT_TRUE(identity().contains(config_key));
  ASSERT_TRUE(identity().contains("file model-00002-of-00003.safetensors"));
  EXPECT_EQ(identity(), identity());

  const fs::path out = tmp / "out";
  checkpoint_block_zero(model_dir, out);
  EXPECT_EQ(PruneResume(out, identity(), false).finished_blocks(), 1);  // unchanged: resumes

  const auto later = fs::last_write_time(model_dir / "model-00002-of-00003.safetensors") + std::chrono::seconds(5);
  fs::last_write_time(model_dir / "model-00002-of-00003.safetensors", later);  // touched, same bytes
  std::string msg = test::bad_input_message([&] { PruneResume(out, identity(), false); });
  EXPECT_NE(msg.find("its file model-00002-of-00003.safetensors changed since"), std::string::npos) << msg;
  EXPECT_TRUE(fs::exists(partial_of(out) / "block-0000.safetensors")) << "a refusal must keep the checkpoints";

  const CommandResult r = run_sparsa({"prune", "--model", model_dir.string(), "--method", "magnitude", "--sparsity",
                                      "0.5", "--out", out.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("model-00002-of-00003.safetensors changed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--restart"), std::string::npos) << r.err;

  test::write_file(model_dir / "tokenizer_config.json", test::read_file(model_dir / "tokenizer_config.json") + " ");
  msg = test::bad_input_message([&] { PruneResume(out, identity(), false); });
  EXPECT_NE(msg.find("changed since"), std::string::npos) << msg;
  EXPECT_EQ(PruneResume(out, identity(), true).finished_blocks(), 0) << "discarding starts over";
}

}  // namespace
}  // namespace sparsa
