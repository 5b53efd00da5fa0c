// Mask sets (pruned folders, mask files) as prune runs of the study database (sparsa/runs.h).
#include "sparsa/calibration.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/runs.h"
#include "sparsa/safetensors.h"

namespace sparsa {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path canonical_or_given(const fs::path& p) {
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p : c;
}

std::string with_source(std::string options, const fs::path& path) {
  return options + (options.empty() ? "" : " ") + "source=" + canonical_or_given(path).string();
}

// The model fields of a run on the HF folder `model` (its config.json, when readable).
void set_model(RunInfo& info, const std::string& model) {
  info.model_path = model;
  info.model_name = fs::path(model).filename().string();
  std::error_code ec;
  if (fs::exists(fs::path(model) / "config.json", ec)) {
    try {
      info.architecture = load_hf_config(fs::path(model) / "config.json").model_type;
    } catch (const Error&) {  // the model moved or changed: the run is still described by its masks
    }
  }
}

// A pruned folder's summary.json: its "run", or for a summary written before runs were recorded
// (no calibration hash) its method, target, model and calibration.
MaskSetOrigin origin_from_summary(const PrunedFolder& folder) {
  const PruneSummary s = folder.read_summary();
  MaskSetOrigin o;
  if (s.run) {
    o.info = *s.run;
  } else {
    o.info.kind = RunKind::kPrune;
    if (s.method) o.info.method = prune_method_name(*s.method);
    o.info.target = s.target;
    set_model(o.info, s.model);
    if (!s.calibration.is_null()) o.info.calib_description = json(s.calibration).dump();
    o.info.options = with_source("", folder.dir());
  }
  o.timings = {.total = s.timings.total, .forward = s.timings.forward, .stats = s.timings.stats,
               .select = s.timings.select};
  o.matrix_seconds = json::object();
  for (const PrunedMatrixSummary& m : s.matrices) o.matrix_seconds[m.name] = m.seconds;
  return o;
}

std::optional<SparsityTarget> target_or_none(const std::string& label) {
  if (label.empty()) return std::nullopt;
  try {
    return parse_target_label(label);
  } catch (const Error&) {  // an unknown label: the file's name may still say it
    return std::nullopt;
  }
}

// A mask file's metadata (method, target, model), else its name.
MaskSetOrigin origin_from_mask_file(const fs::path& file) {
  MaskSetOrigin o;
  o.info.kind = RunKind::kPrune;
  const auto meta = SafetensorsFile::open(file)->metadata();
  const auto get = [&](const char* key) { return meta.count(key) ? meta.at(key) : std::string(); };
  o.info.method = get("method");
  o.info.target = target_or_none(get("target"));
  if (o.info.method.empty() || !o.info.target) {
    if (const auto named = parse_mask_file_name(file)) {
      o.info.method = prune_method_name(named->method);
      o.info.target = named->target;
    }
  }
  if (!get("model").empty()) set_model(o.info, get("model"));
  o.info.options = with_source("", file);
  o.matrix_seconds = json::object();
  return o;
}

}  // namespace

MaskSetOrigin mask_set_origin(const fs::path& path) {
  if (!is_folder(path)) {
    MaskSetOrigin o = origin_from_mask_file(path);
    o.info.mask_file = canonical_or_given(path);
    return o;
  }
  const PrunedFolder folder(path);
  MaskSetOrigin o;
  if (path_exists(folder.summary_file())) {
    o = origin_from_summary(folder);
  } else {
    o = origin_from_mask_file(folder.mask_file());
    o.info.options = with_source("", path);
  }
  o.info.mask_file = canonical_or_given(folder.mask_file());
  return o;
}

void add_mask_set_rows(RunWriter& w, const MaskSet& set, const json& matrix_seconds) {
  for (const MaskInfo& m : set.matrices()) {
    const double seconds = matrix_seconds.is_object() && matrix_seconds.contains(m.name)
                               ? matrix_seconds[m.name].get<double>()
                               : 0.0;
    add_pruned_matrix_rows(w, m.name, m.rows, m.cols, pruned_counts(set.load_pruned(m)), seconds);
  }
}

MaskSetRun find_or_add_mask_set_run(Store& store, const fs::path& path, const MaskSet& set) {
  const MaskSetOrigin o = mask_set_origin(path);
  if (const auto id = store.find_run(o.info)) return {*id, false, o.info};
  RunWriter w = store.begin_run(o.info);
  add_mask_set_rows(w, set, o.matrix_seconds);
  w.set_timings(o.timings);
  const int64_t id = w.run_id();
  w.commit();
  return {id, true, o.info};
}

}  // namespace sparsa
