// Helpers shared by the tests: where the repo and ../shared are, and running the CLI.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sparsa/error.h"

namespace sparsa::test {

std::filesystem::path repo_dir();
// ../shared beside the repo (CI lays it there). Tests that need it call require_shared().
std::filesystem::path shared_dir();
// Skips the current test (GTEST_SKIP cannot be used from a helper) when ../shared is absent:
// returns false in that case.
bool shared_available();

// True when SPARSA_TEST_SCOPE=quick: the slow golden-fidelity programs then check a reduced,
// still exact, scope (scripts/sanitize.sh sets it; see docs/reliability.md).
bool quick_scope();

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the sparsa binary with `args` (no shell), capturing stdout and stderr.
CommandResult run_sparsa(const std::vector<std::string>& args);

// Limits the child process of run_sparsa_limited runs under.
struct ProcessLimits {
  // RLIMIT_FSIZE: no file the process writes may grow beyond this many bytes, as on a full disk
  // (SIGXFSZ is ignored, so the write fails with EFBIG instead of killing the process).
  uint64_t max_file_bytes = 0;
  // When > 0: the child is killed by SIGALRM after this many seconds (exit_code 128 + 14), so a
  // command that would block forever fails the test instead of hanging it.
  unsigned timeout_seconds = 0;
};
CommandResult run_sparsa_limited(const std::vector<std::string>& args, const ProcessLimits& limits);

// Starts the sparsa binary with `args` in the background (stdin, stdout, stderr on /dev/null)
// and returns its pid; the caller waits for it (waitpid).
pid_t start_sparsa(const std::vector<std::string>& args);

// A fresh empty temporary folder, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// True when s is exactly one line ending in '\n' (how errors must reach stderr).
bool one_line(const std::string& s);

std::string read_file(const std::filesystem::path& p);

// Runs `f`, expects sparsa::Error(kBadInput) with a one-line message and returns the message
// ("" and a test failure otherwise).
template <typename F>
std::string bad_input_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "message is not one line: " << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than sparsa::Error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no error was thrown";
  return {};
}
void write_file(const std::filesystem::path& p, const std::string& bytes);

// ‖got − want‖₂ / ‖want‖₂ in fp64 (sizes must match): +inf when got holds a NaN, or when want is
// all zeros and got is not; 0 when both are all zeros.
double relative_l2_error(const std::vector<float>& want, const std::vector<float>& got);

}  // namespace sparsa::test
