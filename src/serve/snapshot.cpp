// Private, consistent copies of a database that a study may still be writing (snapshot.h).
#include "serve/snapshot.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "sparsa/input_file.h"

namespace sparsa::serve {
namespace {

namespace fs = std::filesystem;

fs::path wal_of(const fs::path& db) { return fs::path(db.string() + ".wal"); }

// "size:mtime_ns" of `p`, or "-" when it does not exist.
std::string file_state(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return "-";
  return fmt::format("{}:{}.{:09}", static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                     static_cast<long long>(st.st_mtim.tv_nsec));
}

// A fresh private folder (mode 0700) for the snapshots.
fs::path make_private_dir() {
  std::string pattern = (fs::temp_directory_path() / "sparsa-serve-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) runtime_failure("cannot create a folder for the database snapshots in {}",
                                                  fs::temp_directory_path().string());
  return pattern;
}

void copy_if_present(const fs::path& from, const fs::path& to) {
  if (!path_exists(from)) return;
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) runtime_failure("{}: cannot copy it for the dashboard: {}", from.string(), ec.message());
}

// Deletes a snapshot's files (the copy and any log left beside it).
void remove_snapshot_files(const fs::path& copy) {
  std::error_code ec;
  fs::remove(copy, ec);
  fs::remove(wal_of(copy), ec);
}

// Store::open's error about `copy` as one about the user's `db`.
[[noreturn]] void rethrow_naming(const Error& e, const fs::path& copy, const fs::path& db) {
  std::string message = e.what();
  for (size_t at = message.find(copy.string()); at != std::string::npos; at = message.find(copy.string(), at))
    message.replace(at, copy.string().size(), db.string());
  throw Error(e.kind(), message);
}

}  // namespace

Snapshots::Snapshots(fs::path db, const StoreResources& resources)
    : db_(std::move(db)), dir_(make_private_dir()), resources_(resources) {
  try {
    const std::string before = state();
    current_ = copy_and_open(before);
    if (!current_) runtime_failure("{}: it changed while it was copied for the dashboard; try again", db_.string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

Snapshots::~Snapshots() {
  current_.reset();  // requests still running hold theirs; their files go with them
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string Snapshots::state() const { return file_state(db_) + " " + file_state(wal_of(db_)); }

std::shared_ptr<const Store> Snapshots::copy_and_open(const std::string& before) {
  const fs::path copy = dir_ / fmt::format("snapshot-{}.duckdb", generation_ + 1);
  remove_snapshot_files(copy);
  copy_if_present(db_, copy);
  copy_if_present(wal_of(db_), wal_of(copy));
  if (state() != before) {  // written meanwhile: the copy may be torn
    remove_snapshot_files(copy);
    return nullptr;
  }
  try {
    Store::open(copy, Store::Mode::kReadWrite, resources_);  // replays the log; checkpoints on close
    std::shared_ptr<Store> store(Store::open(copy, Store::Mode::kSandboxed, resources_).release(),
                                 [copy](Store* s) {
                                   delete s;
                                   remove_snapshot_files(copy);
                                 });
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = before;
    ++generation_;
    return store;
  } catch (const Error& e) {
    remove_snapshot_files(copy);
    rethrow_naming(e, copy, db_);
  }
}

std::shared_ptr<const Store> Snapshots::current() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state() == state_) return current_;
  }
  std::unique_lock<std::mutex> copier(copying_, std::try_to_lock);
  if (copier.owns_lock()) {
    const std::string before = state();
    std::shared_ptr<const Store> fresh;
    try {
      fresh = copy_and_open(before);
    } catch (const Error&) {
      // A file DuckDB refuses although it did not change while copied: keep serving the last
      // snapshot, and copy again only once the file changes.
      std::lock_guard<std::mutex> lock(mutex_);
      state_ = before;
    }
    if (fresh) {
      std::lock_guard<std::mutex> lock(mutex_);
      current_ = std::move(fresh);
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  return current_;
}

int64_t Snapshots::generations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generation_;
}

}  // namespace sparsa::serve
