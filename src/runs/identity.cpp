// The identities of runs: what a dense, prune, compare or acts run is (sparsa/runs.h).
#include <fmt/format.h>

#include "sparsa/calibration.h"
#include "sparsa/error.h"
#include "sparsa/runs.h"

namespace sparsa {

namespace fs = std::filesystem;
using json = nlohmann::json;

RunInfo model_run_info(RunKind kind, const fs::path& model, const ModelConfig& config) {
  RunInfo i;
  i.kind = kind;
  const fs::path path = fs::weakly_canonical(model);
  i.model_name = path.filename().string();
  i.model_path = path.string();
  i.architecture = config.model_type;
  return i;
}

std::string calib_run_description(std::string_view source, const TensorI32& windows) {
  return fmt::format("{} [{}, {}]", source, windows.dim(0), windows.dim(1));
}

std::string eval_options(std::string_view dataset, const TensorI32& windows) {
  return fmt::format("eval={}:{:016x}:{}x{}", dataset, fnv1a64(windows.data), windows.dim(0), windows.dim(1));
}

std::string eval_dataset_name(const fs::path& tokens_file, std::string_view key, const fs::path& text_file) {
  if (!tokens_file.empty()) return fmt::format("{}:{}", tokens_file.stem().string(), key);
  return text_file.stem().string();
}

RunInfo prune_run_info(RunInfo base, PruneMethod method, const SparsityTarget& target, int64_t blocksize,
                       double percdamp) {
  base.kind = RunKind::kPrune;
  base.method = prune_method_name(method);
  base.target = target;
  base.options = method == PruneMethod::kSparseGPT ? fmt::format("blocksize={} percdamp={}", blocksize, percdamp) : "";
  if (!needs_calibration(method)) {
    base.calib_description.clear();
    base.calib_hash.clear();
    base.nsamples = 0;
  }
  return base;
}

RunInfo compare_run_info(RunInfo base, std::string_view method_a, std::string_view method_b,
                         const std::optional<SparsityTarget>& target, int64_t run_a, int64_t run_b) {
  base.kind = RunKind::kCompare;
  base.method = fmt::format("{}-vs-{}", method_a, method_b);
  base.target = target;
  base.options = fmt::format("runs={},{}", run_a, run_b);
  return base;
}

std::string act_sparsities_option(std::span<const double> sparsities) {
  std::string s = "sparsities=";
  for (size_t i = 0; i < sparsities.size(); ++i) s += fmt::format("{}{:g}", i ? "," : "", sparsities[i]);
  return s;
}

json run_info_json(const RunInfo& i) {
  return {{"model_name", i.model_name},
          {"model_path", i.model_path},
          {"architecture", i.architecture},
          {"method", i.method},
          {"target", i.target ? json(i.target->label()) : json(nullptr)},
          {"calib_description", i.calib_description},
          {"calib_hash", i.calib_hash},
          {"nsamples", i.nsamples},
          {"seqlen", i.seqlen},
          {"device", i.device},
          {"options", i.options}};
}

RunInfo run_info_from_json(const json& j, RunKind kind, std::string_view where) {
  RunInfo i;
  i.kind = kind;
  try {
    i.model_name = j.at("model_name").get<std::string>();
    i.model_path = j.at("model_path").get<std::string>();
    i.architecture = j.at("architecture").get<std::string>();
    i.method = j.at("method").get<std::string>();
    if (!j.at("target").is_null()) i.target = parse_target_label(j.at("target").get<std::string>());
    i.calib_description = j.at("calib_description").get<std::string>();
    i.calib_hash = j.at("calib_hash").get<std::string>();
    i.nsamples = j.at("nsamples").get<int64_t>();
    i.seqlen = j.at("seqlen").get<int64_t>();
    i.device = j.at("device").get<std::string>();
    i.options = j.at("options").get<std::string>();
  } catch (const json::exception& e) {
    bad_input("{}: the run description is malformed ({})", where, e.what());
  } catch (const Error& e) {
    bad_input("{}: {}", where, e.what());
  }
  return i;
}

}  // namespace sparsa
