// Helpers of the fuzz targets: the parsers under test read files, so each input is written to a
// file in a private folder of the fuzzing process (on /dev/shm when there is one) first.
// An input may make a parser throw sparsa::Error (its documented failure); every other outcome
// (another exception, a crash, a sanitizer report, a leak) is a bug libFuzzer reports.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "sparsa/error.h"

namespace sparsa::fuzz {

// The process's scratch folder, created on first use.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("sparsa-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Writes `size` bytes to scratch_dir() / name and returns the path.
inline std::filesystem::path write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path p = scratch_dir() / name;
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return p;
}

// Runs `parse`; sparsa::Error is the expected way to refuse an input.
template <typename F>
void expect_parse_or_error(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
  }
}

}  // namespace sparsa::fuzz
