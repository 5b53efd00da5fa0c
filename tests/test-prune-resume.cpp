// `sparsa prune` killed with SIGKILL at random points and rerun: the final masks and checkpoint
// are byte-identical to an uninterrupted run, the blocks finished before the kill are restored
// rather than pruned again, and a rerun with other arguments refuses to resume (or restarts).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace sparsa
