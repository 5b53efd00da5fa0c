// sparsa/atomic_file.h — AtomicFile: write a file so that readers see either the old file or the complete new one.
// Bytes go to "<path>.tmp-<pid>" in the same folder; commit() flushes, fsyncs and renames it
// over `path`. Destroying an uncommitted AtomicFile removes the temporary file.
// Errors throw sparsa::Error(kRuntime) naming the path.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
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

// Writes `contents` to `path` atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// The whole file as bytes. Error(kBadInput) naming the file when it cannot be read.
std::string read_file_contents(const std::filesystem::path& path);

}  // namespace sparsa
