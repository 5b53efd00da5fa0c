// Store::export_parquet: every table to DIR/<table>.parquet through DuckDB's COPY, atomically.
#include <unistd.h>

#include <fmt/format.h>

#include <system_error>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/store.h"
#include "store/schema.h"
#include "store/store_impl.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;

// DIR may be replaced only when it holds nothing but an earlier export.
void check_replaceable(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir)) bad_input("{}: exists and is not a folder", dir.string());
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path& p = entry.path();
    const bool ours = entry.is_regular_file() && (p.extension() == ".parquet" || p.filename() == "manifest.json");
    if (!ours)
      bad_input("{}: holds {}, which is not part of a sparsa export; choose a new or empty folder", dir.string(),
                p.filename().string());
  }
}

// Removes a folder on every way out unless released.
class TempFolder {
 public:
  explicit TempFolder(fs::path p) : path_(std::move(p)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempFolder() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

fs::path sibling(const fs::path& dir, std::string_view tag) {
  return dir.parent_path() / fmt::format("{}.{}-{}", dir.filename().string(), tag, getpid());
}

}  // namespace

std::vector<std::pair<std::string, int64_t>> Store::export_parquet(const fs::path& target) const {
  if (impl_->mode == Mode::kSandboxed)
    bad_input("{}: opened sandboxed, which forbids writing files; open it read-only to export", impl_->path.string());
  const fs::path dir = fs::absolute(target).lexically_normal();
  if (dir.filename().empty()) bad_input("{}: not a folder name to export to", target.string());
  check_replaceable(dir);
  try {
    fs::create_directories(dir.parent_path());
  } catch (const fs::filesystem_error& e) {
    runtime_failure("{}: cannot create the parent folder: {}", dir.string(), e.code().message());
  }

  TempFolder tmp(sibling(dir, "tmp"));
  std::vector<std::pair<std::string, int64_t>> counts;
  {
    store::Connection con(impl_->db);
    con.exec("BEGIN TRANSACTION", "starting the export");  // one snapshot for every table
    for (std::string_view table : store::schema_tables()) {
      const std::string name(table);
      store::Result count = con.query(fmt::format("SELECT count(*) FROM {}", store::sql_identifier(name)));
      if (!count.ok()) runtime_failure("{}: counting rows of {}: {}", impl_->path.string(), name, count.error());
      counts.emplace_back(name, count.scalar_int().value_or(0));
      const fs::path file = tmp.path() / (name + ".parquet");
      con.exec(fmt::format("COPY {} TO {} (FORMAT parquet)", store::sql_identifier(name),
                           store::sql_literal(file.string())),
               fmt::format("exporting table {} to {}", name, file.string()));
    }
    con.exec("COMMIT", "finishing the export");
  }
  nlohmann::json manifest = {{"schema_version", impl_->version},
                             {"database", impl_->path.string()},
                             {"format", "parquet"},
                             {"tables", nlohmann::json::object()}};
  for (const auto& [name, rows] : counts) manifest["tables"][name] = rows;
  write_file_atomic(tmp.path() / "manifest.json", manifest.dump(2) + "\n");

  std::error_code ec;
  const fs::path old = sibling(dir, "old");
  const bool had_old = fs::exists(dir);
  if (had_old) fs::rename(dir, old, ec);
  if (!ec) fs::rename(tmp.path(), dir, ec);
  if (ec) {
    std::error_code restore;
    if (had_old && !fs::exists(dir)) fs::rename(old, dir, restore);
    runtime_failure("{}: cannot move the finished export into place: {}", dir.string(), ec.message());
  }
  tmp.release();
  if (had_old) fs::remove_all(old, ec);
  return counts;
}

}  // namespace sparsa
