// Helpers shared by the tests: where the repo and ../shared are, and running the CLI.
#pragma once

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

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the sparsa binary with `args` (no shell), capturing stdout and stderr.
CommandResult run_sparsa(const std::vector<std::string>& args);

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

}  // namespace sparsa::test
