// Helpers shared by the tests: where the repo and ../shared are, and running the CLI.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

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
void write_file(const std::filesystem::path& p, const std::string& bytes);

}  // namespace sparsa::test
