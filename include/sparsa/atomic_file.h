// sparsa/atomic_file.h — files and folders that readers see either as before or complete.
//
// AtomicFile: bytes go to "<path>.tmp-<pid>" in the same folder; commit() flushes, fsyncs and
// renames it over `path`. Destroying an uncommitted AtomicFile removes the temporary file.
//
// StagingDir: a folder is assembled in "<dir>.tmp-<pid>" beside `dir` and renamed to `dir` by
// commit(), so an interrupted or failed run never leaves a folder that looks complete.
//
// Errors throw sparsa::Error(kRuntime) naming the path the caller gave and the OS's reason (a
// temporary name only where a finished result is kept under it). An AtomicFile whose path is a
// folder, a device (/dev/null), a FIFO or a socket is Error(kBadInput): the rename would replace
// it. Neither type is thread-safe; each object belongs to one thread.
//
// Outputs over inputs: a command that deletes or replaces an output (a folder it rebuilds, a file
// it rewrites) first calls refuse_output_over_inputs with its inputs, so that no input is lost
// with it, and before deleting a non-empty folder check_folder_replaceable, so that only what an
// earlier run of the command wrote is ever deleted.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace sparsa {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  std::FILE* f_ = nullptr;
};

class StagingDir {
 public:
  // Creates "<dir>.tmp-<pid>" empty (and dir's parent folders). Staging folders of `dir` left by
  // killed runs ("<dir>.tmp-<pid>" whose process no longer exists) are removed first; those of
  // running processes are left alone. `dir` should be absolute and normalised (no trailing
  // separator), so the staging folder lands beside it.
  explicit StagingDir(std::filesystem::path dir);
  // Removes the staging folder unless commit() moved it into place or kept it after a failure.
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  // The folder to write into.
  const std::filesystem::path& path() const { return tmp_; }
  // The folder commit() moves it to.
  const std::filesystem::path& target() const { return dir_; }

  // Moves the staging folder to `dir`, replacing what is there only now: an empty folder always,
  // a non-empty one only when `replace` and it holds `marker` (the file every output of the
  // command holds, as check_folder_replaceable; empty = any folder), else Error(kRuntime): it
  // was filled while staging. When the move fails or is refused, the finished folder is kept
  // under its staging name, which the Error(kRuntime) names.
  void commit(bool replace, std::string_view marker = {});

 private:
  [[noreturn]] void keep_and_fail(const std::string& why);

  std::filesystem::path dir_, tmp_;
  bool keep_ = false;  // moved into place, or left for the user after a failed commit
};

// A path a command reads or writes, with what names it for the user (e.g. "--calib").
struct NamedPath {
  std::string what;
  std::filesystem::path path;
};

// Whether `inner` is `outer` or lies inside it, with symbolic links and ".." resolved
// (std::filesystem::weakly_canonical: a part that does not exist is compared as written).
bool path_within(const std::filesystem::path& inner, const std::filesystem::path& outer);

// Error(kBadInput), one line naming both paths, when an input is `output` or lies inside it or
// inside the siblings written on the way to it ("<output>.tmp-<pid>", "<output>.old-<pid>",
// "<output>.partial"), so that replacing the output would delete or overwrite the input.
// Inputs with an empty path are skipped.
void refuse_output_over_inputs(const NamedPath& output, std::span<const NamedPath> inputs);

// Error(kBadInput) unless the folder `dir` may be deleted to make room for a new output: it is
// absent or empty, or holds `marker`, the file every finished output of the command holds (e.g.
// a pruned folder's summary.json). A regular file at `dir` is refused too.
void check_folder_replaceable(const NamedPath& dir, std::string_view marker);

// Creates the folder `dir` and its parents (nothing when it exists). Error(kBadInput) naming the
// path when `dir` or one of its parents exists as something other than a folder;
// Error(kRuntime) with the OS's reason (e.g. a read-only parent) otherwise.
void create_output_folder(const std::filesystem::path& dir);

// Writes `contents` to `path` atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// The whole file as bytes. Error(kBadInput) naming the file when it cannot be read (it is
// opened through InputFile: a FIFO, device or folder is refused, never waited on).
std::string read_file_contents(const std::filesystem::path& path);

// The whole file as text: as read_file_contents, and Error(kBadInput) "<path>: not valid UTF-8
// at byte offset N" when it is not UTF-8 (the tokenizers take only UTF-8).
std::string read_utf8_file(const std::filesystem::path& path);

}  // namespace sparsa
