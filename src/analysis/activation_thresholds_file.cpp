// Per-point activation targets and the thresholds file (see sparsa/activations.h).
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "sparsa/activations.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::string_view kFormat = "sparsa-activation-thresholds";
constexpr int kVersion = 1;

double parse_target(std::string_view text, std::string_view value, double max_sparsity) {
  double v = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.find(':') != std::string_view::npos)
    bad_input("activation sparsity '{}': '{}' is an N:M pattern; activation targets are fractions in [0, {}]", text,
              value, max_sparsity);
  if (ec != std::errc() || end != value.data() + value.size() || !std::isfinite(v) || v < 0.0 || v > max_sparsity)
    bad_input("activation sparsity '{}': '{}' must be a number in [0, {}]", text, value, max_sparsity);
  return v;
}

int point_index(std::string_view text, std::string_view name) {
  for (int p = 0; p < kNumObsPoints; ++p)
    if (obs_point_name(static_cast<ObsPoint>(p)) == name) return p;
  bad_input("activation sparsity '{}': '{}' is not a point (attn_in, o_in, mlp_in, down_in)", text, name);
}

bool same_sparsity(double a, double b) { return std::fabs(a - b) <= 1e-9; }

[[noreturn]] void bad_field(const fs::path& path, std::string_view field, std::string_view why) {
  bad_input("{}: '{}' {}", path.string(), field, why);
}

const json& field(const json& j, const char* key, const fs::path& path, std::string_view where) {
  const auto it = j.find(key);
  if (it == j.end()) bad_field(path, fmt::format("{}{}", where, key), "is missing");
  return *it;
}

int64_t positive_int(const json& j, const char* key, const fs::path& path, std::string_view where) {
  const json& v = field(j, key, path, where);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t{1} << 40))
    bad_field(path, fmt::format("{}{}", where, key), "must be a positive integer");
  return v.get<int64_t>();
}

std::string text_field(const json& j, const char* key, const fs::path& path, std::string_view where) {
  const json& v = field(j, key, path, where);
  if (!v.is_string()) bad_field(path, fmt::format("{}{}", where, key), "must be a string");
  return v.get<std::string>();
}

// One set's table: [num_layers][4] finite numbers.
std::vector<std::array<float, kNumObsPoints>> read_table(const json& rows, int64_t num_layers, const fs::path& path,
                                                         const std::string& where) {
  if (!rows.is_array() || static_cast<int64_t>(rows.size()) != num_layers)
    bad_field(path, where, fmt::format("must be a list of {} rows (one per layer)", num_layers));
  std::vector<std::array<float, kNumObsPoints>> t(static_cast<size_t>(num_layers));
  for (int64_t l = 0; l < num_layers; ++l) {
    const json& row = rows[static_cast<size_t>(l)];
    if (!row.is_array() || row.size() != kNumObsPoints)
      bad_field(path, fmt::format("{}[{}]", where, l), "must be 4 numbers (attn_in, o_in, mlp_in, down_in)");
    for (int p = 0; p < kNumObsPoints; ++p) {
      const json& v = row[static_cast<size_t>(p)];
      if (!v.is_number() || !std::isfinite(v.get<double>()) || std::fabs(v.get<double>()) > 3.0e38)
        bad_field(path, fmt::format("{}[{}][{}]", where, l, p), "must be a finite number");
      t[static_cast<size_t>(l)][static_cast<size_t>(p)] = v.get<float>();
    }
  }
  return t;
}

std::string held_sparsities(const ThresholdsFile& f) {
  std::string out;
  for (const ActivationThresholds& s : f.sets) out += (out.empty() ? "" : ", ") + fmt::format("{:g}", s.sparsity);
  return out;
}

}  // namespace

PointTargets parse_point_targets(std::string_view text, double max_sparsity) {
  if (text.empty()) bad_input("activation sparsity: empty; give S or POINT=S,... (e.g. 0.5 or mlp_in=0.5)");
  PointTargets t{};
  if (text.find('=') == std::string_view::npos) {
    t.fill(parse_target(text, text, max_sparsity));
    return t;
  }
  std::array<bool, kNumObsPoints> seen{};
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, comma - start);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) bad_input("activation sparsity '{}': '{}' must be POINT=S", text, item);
    const int p = point_index(text, item.substr(0, eq));
    if (seen[static_cast<size_t>(p)]) bad_input("activation sparsity '{}': '{}' is given twice", text, item.substr(0, eq));
    seen[static_cast<size_t>(p)] = true;
    t[static_cast<size_t>(p)] = parse_target(text, item.substr(eq + 1), max_sparsity);
    start = comma + 1;
  }
  return t;
}

std::string point_targets_label(const PointTargets& targets) {
  bool uniform = true;
  for (double v : targets) uniform = uniform && v == targets[0];
  if (uniform) return fmt::format("{:g}", targets[0]);
  std::string out;
  for (int p = 0; p < kNumObsPoints; ++p)
    out += fmt::format("{}{}={:g}", p ? "," : "", obs_point_name(static_cast<ObsPoint>(p)), targets[static_cast<size_t>(p)]);
  return out;
}

ActivationThresholds ActivationProfile::thresholds(const PointTargets& targets) const {
  ActivationThresholds t;
  double sum = 0;
  for (double v : targets) sum += v;
  t.sparsity = sum / kNumObsPoints;
  t.t.resize(static_cast<size_t>(n_layers));
  for (int64_t l = 0; l < n_layers; ++l)
    for (int p = 0; p < kNumObsPoints; ++p) {
      const double s = targets[static_cast<size_t>(p)];
      t.t[static_cast<size_t>(l)][static_cast<size_t>(p)] = s > 0 ? at(l, static_cast<ObsPoint>(p)).threshold(s) : -1.0f;
    }
  return t;
}

void write_thresholds_file(const fs::path& path, const ThresholdsFile& f) {
  if (f.sets.empty()) bad_input("{}: no threshold sets to write", path.string());
  json sets = json::array();
  for (size_t i = 0; i < f.sets.size(); ++i) {
    const ActivationThresholds& s = f.sets[i];
    if (i > 0 && !(s.sparsity > f.sets[i - 1].sparsity)) bad_input("{}: threshold sets must be in ascending sparsity", path.string());
    if (static_cast<int64_t>(s.t.size()) != f.model.num_layers)
      bad_input("{}: a threshold set has {} rows for a model of {} layers", path.string(), s.t.size(), f.model.num_layers);
    json rows = json::array();
    for (const auto& row : s.t) rows.push_back(json(row));
    sets.push_back({{"sparsity", s.sparsity}, {"thresholds", std::move(rows)}});
  }
  json points = json::array();
  for (int p = 0; p < kNumObsPoints; ++p) points.push_back(std::string(obs_point_name(static_cast<ObsPoint>(p))));
  const json j = {
      {"format", kFormat},
      {"version", kVersion},
      {"definition", "t = sorted(|x|)[floor(s n)] over the calibration activations at the point; x is used iff |x| > t"},
      {"points", std::move(points)},
      {"model",
       {{"name", f.model.name}, {"architecture", f.model.architecture}, {"num_layers", f.model.num_layers},
        {"hidden_size", f.model.hidden_size}, {"intermediate_size", f.model.intermediate_size}}},
      {"calibration",
       {{"source", f.calibration.source}, {"windows", f.calibration.windows}, {"seqlen", f.calibration.seqlen},
        {"tokens_hash", f.calibration.tokens_hash}, {"refinement_passes", f.calibration.refinement_passes},
        {"positions", "every position of every window"}}},
      {"sets", std::move(sets)}};
  write_file_atomic(path, j.dump(1) + "\n");
}

ThresholdsFile read_thresholds_file(const fs::path& path) {
  const json j = [&] {
    const std::string text = InputFile(path).read_all(kMaxJsonFileBytes, "thresholds file");
    try {
      return parse_json_bounded(text, path);
    } catch (const json::exception& e) {
      bad_input("{}: not valid JSON: {}", path.string(), e.what());
    }
  }();
  if (!j.is_object() || j.value("format", json()) != kFormat)
    bad_input("{}: not a thresholds file (no \"format\": \"{}\"; write one with `sparsa acts`)", path.string(), kFormat);
  if (j.value("version", json()) != kVersion) bad_field(path, "version", fmt::format("must be {}", kVersion));
  json points = json::array();
  for (int p = 0; p < kNumObsPoints; ++p) points.push_back(std::string(obs_point_name(static_cast<ObsPoint>(p))));
  if (field(j, "points", path, "") != points) bad_field(path, "points", "must be [\"attn_in\", \"o_in\", \"mlp_in\", \"down_in\"]");
  ThresholdsFile f;
  const json& model = field(j, "model", path, "");
  if (!model.is_object()) bad_field(path, "model", "must be an object");
  f.model.name = text_field(model, "name", path, "model.");
  f.model.architecture = text_field(model, "architecture", path, "model.");
  f.model.num_layers = positive_int(model, "num_layers", path, "model.");
  f.model.hidden_size = positive_int(model, "hidden_size", path, "model.");
  f.model.intermediate_size = positive_int(model, "intermediate_size", path, "model.");
  const json& calib = field(j, "calibration", path, "");
  if (!calib.is_object()) bad_field(path, "calibration", "must be an object");
  f.calibration.source = text_field(calib, "source", path, "calibration.");
  f.calibration.windows = positive_int(calib, "windows", path, "calibration.");
  f.calibration.seqlen = positive_int(calib, "seqlen", path, "calibration.");
  f.calibration.tokens_hash = text_field(calib, "tokens_hash", path, "calibration.");
  const json& passes = field(calib, "refinement_passes", path, "calibration.");
  if (!passes.is_number_integer() || passes.get<int64_t>() < 0 || passes.get<int64_t>() > 100)
    bad_field(path, "calibration.refinement_passes", "must be an integer in [0, 100]");
  f.calibration.refinement_passes = passes.get<int64_t>();
  const json& sets = field(j, "sets", path, "");
  if (!sets.is_array() || sets.empty()) bad_field(path, "sets", "must be a non-empty list");
  for (size_t i = 0; i < sets.size(); ++i) {
    const std::string where = fmt::format("sets[{}].", i);
    if (!sets[i].is_object()) bad_field(path, fmt::format("sets[{}]", i), "must be an object");
    const json& s = field(sets[i], "sparsity", path, where);
    if (!s.is_number() || !(s.get<double>() >= 0.0 && s.get<double>() < 1.0))
      bad_field(path, where + "sparsity", "must be a number in [0, 1)");
    ActivationThresholds t;
    t.sparsity = s.get<double>();
    if (!f.sets.empty() && !(t.sparsity > f.sets.back().sparsity))
      bad_field(path, where + "sparsity", "must be larger than the previous set's (ascending, each once)");
    t.t = read_table(field(sets[i], "thresholds", path, where), f.model.num_layers, path, where + "thresholds");
    f.sets.push_back(std::move(t));
  }
  return f;
}

void check_thresholds_fit(const ThresholdsFile& f, const ModelConfig& c, const fs::path& path) {
  if (f.model.num_layers != c.num_layers || f.model.hidden_size != c.hidden_size ||
      f.model.intermediate_size != c.intermediate_size)
    bad_input("{}: made for model '{}' ({} layers, hidden {}, intermediate {}), not this one ({} layers, hidden {}, "
              "intermediate {})",
              path.string(), f.model.name, f.model.num_layers, f.model.hidden_size, f.model.intermediate_size,
              c.num_layers, c.hidden_size, c.intermediate_size);
}

ActivationThresholds select_thresholds(const ThresholdsFile& f, const PointTargets& targets, const fs::path& path) {
  ActivationThresholds out;
  double sum = 0;
  for (double v : targets) sum += v;
  out.sparsity = sum / kNumObsPoints;
  out.t.assign(static_cast<size_t>(f.model.num_layers), {-1.0f, -1.0f, -1.0f, -1.0f});
  for (int p = 0; p < kNumObsPoints; ++p) {
    const double target = targets[static_cast<size_t>(p)];
    if (target == 0) continue;
    const ActivationThresholds* set = nullptr;
    for (const ActivationThresholds& s : f.sets)
      if (same_sparsity(s.sparsity, target)) set = &s;
    if (!set)
      bad_input("{}: no thresholds for sparsity {:g} (point {}); the file holds {}", path.string(), target,
                obs_point_name(static_cast<ObsPoint>(p)), held_sparsities(f));
    for (size_t l = 0; l < out.t.size(); ++l) out.t[l][static_cast<size_t>(p)] = set->t[l][static_cast<size_t>(p)];
  }
  return out;
}

}  // namespace sparsa
