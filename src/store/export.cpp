// Store::export_parquet: every table to DIR/<table>.parquet through DuckDB's COPY, with
// DIR/manifest.json and DIR/sparsa-export.json (the files this export wrote). Only files that an
// earlier export's sparsa-export.json names are ever replaced or deleted.
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <system_error>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/store.h"
#include "store/schema.h"
#include "store/store_impl.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using Names = std::set<std::string>;

constexpr const char* kExportManifest = "sparsa-export.json";
constexpr const char* kTableManifest = "manifest.json";

// The files in `dir` that an earlier export wrote: those its sparsa-export.json lists, or for an
// export of a version before that file, the tables its manifest.json names (and manifest.json).
Names files_of_earlier_export(const fs::path& dir) {
  Names owned;
  std::error_code ec;
  if (fs::is_regular_file(dir / kExportManifest, ec)) {
    const auto j = nlohmann::json::parse(read_file_contents(dir / kExportManifest), nullptr, false);
    if (j.is_object() && j.value("tool", "") == "sparsa" && j.contains("files") && j["files"].is_array())
      for (const auto& f : j["files"])
        if (f.is_string() && fs::path(f.get<std::string>()).filename() == f.get<std::string>()) owned.insert(f);
    if (!owned.empty()) owned.insert(kExportManifest);
  } else if (fs::is_regular_file(dir / kTableManifest, ec)) {
    const auto j = nlohmann::json::parse(read_file_contents(dir / kTableManifest), nullptr, false);
    if (j.is_object() && j.value("format", "") == "parquet" && j.contains("tables") && j["tables"].is_object()) {
      for (const auto& [table, rows] : j["tables"].items())
        if (fs::path(table).filename() == table) owned.insert(table + ".parquet");
      owned.insert(kTableManifest);
    }
  }
  return owned;
}

// Refuses when a file this export writes exists in DIR and no earlier export wrote it.
void check_no_foreign_collision(const fs::path& dir, const Names& written, const Names& owned) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec)) bad_input("{}: exists and is not a folder", dir.string());
  for (const std::string& name : written)
    if (fs::exists(fs::symlink_status(dir / name, ec)) && !owned.contains(name))
      bad_input("{}: holds {}, which no {} there names as written by sparsa export, so it is not replaced; move it "
                "or export to another folder", dir.string(), name, kExportManifest);
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

// Moves the finished export into DIR: the whole folder when DIR is absent or empty; else file by
// file (the list of files last), leaving every file that no export wrote, and then deletes the
// files an earlier export wrote that this one did not.
void move_into_place(TempFolder& tmp, const fs::path& dir, const Names& written, const Names& owned) {
  std::error_code ec;
  if (!fs::exists(dir, ec) || fs::is_empty(dir, ec)) {
    fs::rename(tmp.path(), dir, ec);
    if (ec) runtime_failure("{}: cannot move the finished export into place: {}", dir.string(), ec.message());
    tmp.release();
    return;
  }
  auto move = [&](const std::string& name) {
    fs::rename(tmp.path() / name, dir / name, ec);
    if (ec) runtime_failure("{}: cannot move {} into place: {}", dir.string(), name, ec.message());
  };
  for (const std::string& name : written)
    if (name != kExportManifest) move(name);
  for (const std::string& name : owned)
    if (!written.contains(name)) fs::remove(dir / name, ec);
  move(kExportManifest);
}

}  // namespace

std::vector<std::pair<std::string, int64_t>> Store::export_parquet(const fs::path& target) const {
  if (impl_->mode == Mode::kSandboxed)
    bad_input("{}: opened sandboxed, which forbids writing files; open it read-only to export", impl_->path.string());
  const fs::path dir = fs::absolute(target).lexically_normal();
  if (dir.filename().empty()) bad_input("{}: not a folder name to export to", target.string());
  Names written = {kTableManifest, kExportManifest};
  for (std::string_view table : store::schema_tables()) written.insert(std::string(table) + ".parquet");
  const Names owned = files_of_earlier_export(dir);
  check_no_foreign_collision(dir, written, owned);
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
  write_file_atomic(tmp.path() / kTableManifest, manifest.dump(2) + "\n");
  const nlohmann::json files = {{"tool", "sparsa"}, {"version", SPARSA_VERSION}, {"files", written}};
  write_file_atomic(tmp.path() / kExportManifest, files.dump(2) + "\n");
  move_into_place(tmp, dir, written, owned);
  return counts;
}

}  // namespace sparsa
