// Resource faults: output written to a "full disk" (RLIMIT_FSIZE in the child, SIGXFSZ ignored,
// so a write past the limit fails with EFBIG as it would with ENOSPC). Every command must fail
// with one clear line, exit 1, and leave no partial or corrupt file: what exists afterwards is
// either absent or complete, and a rerun without the limit succeeds (resuming where it can).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparsa/safetensors.h"
#include "sparsa/store.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::CommandResult;
using test::TempDir;

constexpr uint64_t kMiB = 1024 * 1024;

// Every file under `dir` whose name marks an unfinished write ("<name>.tmp-<pid>").
std::vector<std::string> temporary_leftovers(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) found.push_back(e.path().string());
  return found;
}

// The error is the last line of stderr (progress lines may come before it): one line, naming
// the file that could not be written and why.
std::string last_line(const std::string& s) {
  const size_t end = s.empty() || s.back() != '\n' ? s.size() : s.size() - 1;
  const size_t begin = s.rfind('\n', end == 0 ? 0 : end - 1);
  return s.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1));
}

void expect_clean_failure(const CommandResult& r, const fs::path& dir, const std::string& file) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const std::string error = last_line(r.err);
  EXPECT_EQ(error.rfind("sparsa: ", 0), 0u) << r.err;
  EXPECT_NE(error.find(file), std::string::npos) << r.err;
  EXPECT_NE(error.find("File too large"), std::string::npos) << r.err;
  EXPECT_TRUE(temporary_leftovers(dir).empty()) << temporary_leftovers(dir).front();
}

std::vector<std::string> wanda_args(const fs::path& out) {
  return {"prune", "--method", "wanda", "--sparsity", "0.5", "--calib-text",
          (test::repo_dir() / "data" / "persuasion.txt").string(), "--nsamples", "2", "--seqlen", "64",
          "--out", out.string()};
}

// 1 MiB: not even the first block's checkpoint fits.
TEST(FullDisk, PruneFailsCleanlyBeforeTheFirstCheckpoint) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  expect_clean_failure(test::run_sparsa_limited(wanda_args(out), {.max_file_bytes = kMiB}), tmp.path(),
                       "block-0000.safetensors: write failed");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(tmp / "out.partial" / "block-0000.safetensors"));
}

// 8 MiB: every block's checkpoint (6.3 MB) fits, the 31 MB model.safetensors does not. Nothing
// is lost: the rerun restores all six blocks and only writes the output.
TEST(FullDisk, PruneKeepsItsCheckpointsAndTheRerunFinishes) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  expect_clean_failure(test::run_sparsa_limited(wanda_args(out), {.max_file_bytes = 8 * kMiB}), tmp.path(),
                       "model.safetensors: write failed");
  EXPECT_FALSE(fs::exists(out));
  for (int l = 0; l < 6; ++l) {
    const fs::path block = tmp / "out.partial" / ("block-000" + std::to_string(l) + ".safetensors");
    ASSERT_TRUE(fs::exists(block));
    EXPECT_NO_THROW(SafetensorsFile::open(block));
  }
  const CommandResult r = test::run_sparsa(wanda_args(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(test::read_file(out / "summary.json"))["resume"]["restored_blocks"], 6);
  EXPECT_NO_THROW(TensorStore::open(out));
}

std::vector<std::string> study_args(const fs::path& out) {
  return {"study", "--out", out.string(), "--methods", "wanda", "--targets", "0.5", "--sweep", "none",
          "--nsamples", "4", "--eval-limit", "2", "--act-sparsities", "0.5", "--bitset-windows", "2", "--ks", "4",
          "--kmeans-runs", "2", "--tsne-iterations", "500", "--json"};
}

// The study's database on a full disk: DuckDB's commit fails, the error says so in one line, and
// the database is not corrupt: the rerun opens it, keeps what was committed and finishes. Then
// the Parquet export of that database fails the same way without leaving a partial folder.
TEST(FullDisk, StudyDatabaseSurvivesAndExportLeavesNothing) {
  TempDir tmp;
  const fs::path out = tmp / "study";
  expect_clean_failure(test::run_sparsa_limited(study_args(out), {.max_file_bytes = 2 * kMiB}), tmp.path(),
                       "study.duckdb");
  const CommandResult again = test::run_sparsa(study_args(out));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  {
    const auto store = Store::open(out / "study.duckdb", Store::Mode::kReadOnly);
    EXPECT_EQ(store->query_json("SELECT count(*) FROM runs WHERE status = 'complete'")["rows"][0][0],
              store->query_json("SELECT count(*) FROM runs")["rows"][0][0]);
  }

  const fs::path parquet = tmp / "parquet";
  const std::vector<std::string> export_args{"export", "--db", (out / "study.duckdb").string(), "--parquet", parquet.string()};
  expect_clean_failure(test::run_sparsa_limited(export_args, {.max_file_bytes = 64 * 1024}), tmp.path(), ".parquet");
  EXPECT_FALSE(fs::exists(parquet));
  const CommandResult exported = test::run_sparsa(export_args);
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_TRUE(fs::exists(parquet / "manifest.json"));
}

}  // namespace
}  // namespace sparsa
