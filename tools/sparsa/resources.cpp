// Where the bundled demo model and data are found at run time (see cli_common.h).
//
// Compiled with SPARSA_DATA_FROM_BIN (the install's data folder relative to its bin folder,
// e.g. "../share/sparsa"), SPARSA_BUILD_BIN_DIR (the build folder the binary is linked in) and
// SPARSA_BUILD_SOURCE_DIR (the source checkout of that build), set on this file only.
#include <system_error>

#include "cli_common.h"
#include "sparsa/input_file.h"

namespace sparsa::cli {
namespace {

namespace fs = std::filesystem;

fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return !a.empty() && fs::equivalent(a, b, ec) && !ec;
}

}  // namespace

fs::path resource_dir() {
  const fs::path bin = executable_dir();
  const fs::path installed = (bin / SPARSA_DATA_FROM_BIN).lexically_normal();
  if (is_folder(installed)) return installed;
  if (same_folder(bin, SPARSA_BUILD_BIN_DIR)) return SPARSA_BUILD_SOURCE_DIR;
  return installed;
}

fs::path default_model_path() { return resource_dir() / "models" / "tiny-llama-15m"; }

fs::path default_data_file(std::string_view name) { return resource_dir() / "data" / name; }
fs::path default_calibration_file() { return default_data_file("calib-tokens.safetensors"); }

}  // namespace sparsa::cli
