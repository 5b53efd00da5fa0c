// sparsa/input_file.h — the one way sparsa opens a file it reads.
//
// Every input (checkpoint shards, config.json, tokenizers, .pt files, token and text files,
// masks, summaries, databases) goes through InputFile, so that no input can block or stream
// forever: the path is opened with O_NONBLOCK (a FIFO with no writer, a terminal, a socket does
// not wait in open()) and refused unless it is a regular file. The size is taken once, after
// opening (fstat), and is what readers check claimed sizes against.
//
// Errors: Error(kBadInput) naming the path when it is missing, unreadable, a folder or another
// non-regular file (FIFO, socket, device), or longer than a reader's limit; Error(kRuntime) when
// reading a regular file fails or it shrinks while being read. Messages are one line.
// Thread-safety: read_at() may be called concurrently (pread); the object is not copyable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>

namespace sparsa {

class InputFile {
 public:
  // Opens `path` (O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY) and checks it is a regular file.
  explicit InputFile(std::filesystem::path path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // bytes, from fstat after opening

  // Reads exactly `n` bytes at `offset` into `dst`; Error(kRuntime) when the file is shorter.
  void read_at(uint64_t offset, void* dst, size_t n) const;
  // The whole file. Error(kBadInput) naming `what` (e.g. "JSON file") when it is over `max_bytes`.
  std::string read_all(uint64_t max_bytes = std::numeric_limits<uint64_t>::max(),
                       std::string_view what = "file") const;
  // Gives up ownership of the descriptor (for a library that takes it over, e.g. zip_fdopen).
  int release();

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// For inputs a library opens by name itself (DuckDB): Error(kBadInput) when `path` exists but
// is not a regular file (checked without blocking). A missing path passes.
void check_regular_if_exists(const std::filesystem::path& path);

// Questions about a path that never throw std::filesystem::filesystem_error (whose what() is
// not one of sparsa's errors and which std::filesystem::exists throws for a name that is too
// long). Symlinks are followed. A path that cannot name anything (missing, too long, a component
// that is a file, a symlink loop) answers false; an error that hides the answer (permission
// denied on a parent folder, an I/O error) is Error(kBadInput) naming the path.
bool path_exists(const std::filesystem::path& path);
bool is_folder(const std::filesystem::path& path);
bool is_regular_file_path(const std::filesystem::path& path);
// A folder with at least one entry.
bool is_nonempty_folder(const std::filesystem::path& path);

// Limits on text formats read whole into memory (their parsed form takes a multiple of this).
inline constexpr uint64_t kMaxJsonFileBytes = uint64_t{1} << 30;

}  // namespace sparsa
