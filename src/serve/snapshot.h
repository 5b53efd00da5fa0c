// The dashboard's view of a database that another process (a running study) may still be
// writing: private copies made when the file changes, each opened sandboxed (sparsa/serve.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "sparsa/store.h"

namespace sparsa::serve {

// DuckDB lets one process write a database file and no other open it meanwhile, so the dashboard
// never opens the user's file: it copies the file (and its write-ahead log, <db>.wal) into a
// private folder and opens the copy. A copy is kept only when the file and the log did not
// change while it was read (size and modification time before and after); otherwise, or when the
// copy does not open, the previous snapshot is served and the next request tries again. The copy
// is opened read-write once (DuckDB replays the log into it and checkpoints on close), then
// Store::Mode::kSandboxed. A request holds the snapshot it started with until it finishes; a
// snapshot nobody holds is closed and its files deleted.
//
// Thread safety: current() may be called from any thread; one caller at a time copies, the
// others get the snapshot in use.
class Snapshots {
 public:
  // Makes the first snapshot; errors as Store::open's, naming `db` (Error(kBadInput) for a file
  // that is not a study database, Error(kRuntime) when it cannot be copied).
  Snapshots(std::filesystem::path db, const StoreResources& resources);
  ~Snapshots();
  Snapshots(const Snapshots&) = delete;
  Snapshots& operator=(const Snapshots&) = delete;

  // The newest snapshot: a new one first when the database changed since the last (size or
  // modification time of the file or of its log) and a consistent copy could be made.
  std::shared_ptr<const Store> current();
  // Snapshots made so far (1 after construction).
  int64_t generations() const;

 private:
  std::string state() const;  // the size and modification time of the file and its log
  std::shared_ptr<const Store> copy_and_open(const std::string& before);

  std::filesystem::path db_, dir_;
  StoreResources resources_;
  mutable std::mutex mutex_;  // guards current_, state_, generation_
  std::mutex copying_;        // one copier at a time
  std::shared_ptr<const Store> current_;
  std::string state_;
  int64_t generation_ = 0;
};

}  // namespace sparsa::serve
