// The names of mask files, the co-activation tables' source keys, and how an analysis run names the mask
// runs it clustered (sparsa/runs.h).
#include <charconv>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "sparsa/runs.h"

namespace sparsa {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMaskExtension = ".safetensors";

std::optional<PruneMethod> method_named(std::string_view name) {
  for (auto m : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT})
    if (prune_method_name(m) == name) return m;
  return std::nullopt;
}

std::optional<SparsityTarget> target_labelled(std::string_view label) {
  try {
    return parse_target_label(label);
  } catch (const Error&) {  // not a label: the name is not a mask file name
    return std::nullopt;
  }
}

}  // namespace

std::string mask_file_name(PruneMethod method, const SparsityTarget& target) {
  return fmt::format("{}_{}{}", prune_method_name(method), target.label(), kMaskExtension);
}

std::optional<MaskFileIdentity> parse_mask_file_name(const fs::path& file) {
  const std::string stem = file.stem().string();
  const auto last = stem.rfind('_');
  if (last == std::string::npos || last == 0) return std::nullopt;
  const auto before = stem.rfind('_', last - 1);
  const size_t first = before == std::string::npos ? 0 : before + 1;
  const auto method = method_named(std::string_view(stem).substr(first, last - first));
  const auto target = target_labelled(std::string_view(stem).substr(last + 1));
  if (!method || !target) return std::nullopt;
  return MaskFileIdentity{*method, *target};
}

std::string mask_source_key(PruneMethod method, const SparsityTarget& target) {
  return fmt::format("{}/{}", prune_method_name(method), target.label());
}

std::string activation_source_key(ObsPoint point) { return fmt::format("activations/{}", obs_point_name(point)); }

std::optional<MaskFileIdentity> parse_mask_source_key(std::string_view key) {
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto method = method_named(key.substr(0, slash));
  const auto target = target_labelled(key.substr(slash + 1));
  if (!method || !target) return std::nullopt;
  return MaskFileIdentity{*method, *target};
}

std::string analysis_mask_run_option(const fs::path& mask_file, int64_t run_id) {
  return fmt::format(" {}={}", mask_file.filename().string(), run_id);
}

std::vector<int64_t> analysis_mask_runs(std::string_view options) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start < options.size()) {
    size_t end = options.find(' ', start);
    if (end == std::string_view::npos) end = options.size();
    const std::string_view word = options.substr(start, end - start);
    const size_t eq = word.find('=');
    if (eq != std::string_view::npos && fs::path(std::string(word.substr(0, eq))).extension() == kMaskExtension) {
      int64_t id = 0;
      const auto [ptr, ec] = std::from_chars(word.data() + eq + 1, word.data() + word.size(), id);
      if (ec == std::errc() && ptr == word.data() + word.size()) ids.push_back(id);
    }
    start = end + 1;
  }
  return ids;
}

}  // namespace sparsa
