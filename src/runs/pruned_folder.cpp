// A `sparsa prune` folder and its summary.json, written and read in one place (sparsa/runs.h).

#include <fmt/format.h>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"
#include "sparsa/runs.h"

namespace sparsa {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;  // summary.json keeps a readable key order

namespace {

ojson optional_number(const std::optional<double>& v) { return v ? ojson(*v) : ojson(nullptr); }

std::optional<double> number(const ojson& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? std::optional<double>(j[key].get<double>())
                                                                : std::nullopt;
}

ojson matrices_json(const std::vector<PrunedMatrixSummary>& matrices) {
  ojson rows = ojson::array();
  for (const PrunedMatrixSummary& m : matrices)
    rows.push_back({{"name", m.name},
                    {"layer", m.layer},
                    {"role", m.role},
                    {"shape", {m.rows, m.cols}},
                    {"pruned", m.pruned},
                    {"sparsity", static_cast<double>(m.pruned) / static_cast<double>(m.rows * m.cols)},
                    {"seconds", m.seconds}});
  return rows;
}

ojson summary_json(const PruneSummary& s) {
  ojson out = {
      {"tool", "sparsa"},
      {"version", SPARSA_VERSION},
      {"model", s.model},
      {"method", s.method ? ojson(prune_method_name(*s.method)) : ojson(nullptr)},
      {"target", s.target ? target_json(*s.target) : ojson(nullptr)},
      {"overall_sparsity", s.overall_sparsity},
      {"matrices", matrices_json(s.matrices)},
      {"timings", stage_seconds_json(s.timings)},
      {"calibration", s.calibration},
      {"blocksize", s.blocksize},
      {"percdamp", s.percdamp},
      {"dtype", s.dtype},
      {"threads", s.threads},
      {"checkpoint",
       {{"tensors", s.checkpoint.tensors}, {"bytes", s.checkpoint.bytes}, {"copied_files", s.checkpoint.copied_files}}},
      {"resume", {{"restored_blocks", s.restored_blocks}, {"pruned_blocks", s.pruned_blocks}}},
  };
  if (s.run) out["run"] = run_info_json(*s.run);
  if (s.device.is_object()) out.update(ojson(s.device));
  return out;
}

// ---- reading ----

PrunedMatrixSummary matrix_from_json(const ojson& m) {
  PrunedMatrixSummary r;
  r.name = m["name"].get<std::string>();
  r.layer = m.value("layer", int64_t{0});
  r.role = m.value("role", std::string());
  const ojson shape = m.value("shape", ojson::array());
  if (shape.size() == 2) {
    r.rows = shape[0].get<int64_t>();
    r.cols = shape[1].get<int64_t>();
  }
  r.pruned = m.value("pruned", int64_t{0});
  r.seconds = number(m, "seconds").value_or(0.0);
  return r;
}

// The fields of `s` (an object) other than "run", leniently: absent ones keep their defaults.
PruneSummary summary_fields(const ojson& s, const std::string& file) {
  PruneSummary o;
  o.version = s.value("version", std::string());
  o.model = s.value("model", std::string());
  if (s.contains("method") && s["method"].is_string()) {
    const std::string method = s["method"].get<std::string>();
    try {
      o.method = parse_prune_method(method);
    } catch (const Error&) {
      bad_input("{}: method '{}' is not one of magnitude, wanda, sparsegpt", file, method);
    }
  }
  if (s.contains("target") && s["target"].is_object()) {
    try {
      o.target = parse_target_label(s["target"].value("label", std::string()));
    } catch (const Error& e) {
      bad_input("{}: \"target\": {}", file, e.what());
    }
  }
  o.overall_sparsity = number(s, "overall_sparsity").value_or(0.0);
  if (s.contains("matrices") && s["matrices"].is_array())
    for (const ojson& m : s["matrices"])
      if (m.is_object() && m.contains("name") && m["name"].is_string()) o.matrices.push_back(matrix_from_json(m));
  const ojson t = s.value("timings", ojson());
  o.timings = {number(t, "load"), number(t, "forward"), number(t, "stats"),
               number(t, "select"), number(t, "total"), number(t, "save")};
  o.calibration = s.value("calibration", ojson(nullptr));
  o.blocksize = s.value("blocksize", int64_t{0});
  o.percdamp = number(s, "percdamp").value_or(0.0);
  o.dtype = s.value("dtype", std::string());
  o.threads = s.value("threads", 0);
  const ojson c = s.value("checkpoint", ojson::object());
  o.checkpoint = {c.value("tensors", int64_t{0}), c.value("bytes", uint64_t{0}),
                  c.value("copied_files", std::vector<std::string>())};
  const ojson r = s.value("resume", ojson::object());
  o.restored_blocks = r.value("restored_blocks", int64_t{0});
  o.pruned_blocks = r.value("pruned_blocks", int64_t{0});
  o.device = nlohmann::json::object();
  for (const char* key : {"device", "gpu"})
    if (s.contains(key)) o.device[key] = nlohmann::json(s[key]);
  return o;
}

}  // namespace

ojson stage_seconds_json(const PruneStageSeconds& t) {
  return {{"load", optional_number(t.load)},   {"forward", optional_number(t.forward)},
          {"stats", optional_number(t.stats)}, {"select", optional_number(t.select)},
          {"total", optional_number(t.total)}, {"save", optional_number(t.save)}};
}

ojson target_json(const SparsityTarget& t) {
  if (t.is_nm()) return {{"type", "n:m"}, {"n", t.n}, {"m", t.m}, {"sparsity", t.fraction()}, {"label", t.label()}};
  return {{"type", "unstructured"}, {"sparsity", t.ratio}, {"label", t.label()}};
}

PruneSummary summarize_prune(const PruneResult& r) {
  PruneSummary s;
  double pruned = 0, total = 0;
  for (const LinearPruneResult& l : r.linears) {
    const int64_t n = l.mask.count();
    s.matrices.push_back({l.name, l.layer, std::string(role_info(l.role).short_name), l.mask.rows, l.mask.cols, n,
                          l.seconds});
    pruned += static_cast<double>(n);
    total += static_cast<double>(l.mask.pruned.size());
  }
  s.overall_sparsity = total > 0 ? pruned / total : 0.0;
  s.timings.forward = r.timings.forward;
  s.timings.stats = r.timings.stats;
  s.timings.select = r.timings.select;
  s.timings.total = r.timings.total;
  return s;
}

fs::path PrunedFolder::mask_file() const { return dir_ / "masks.safetensors"; }
fs::path PrunedFolder::summary_file() const { return dir_ / "summary.json"; }

bool PrunedFolder::is_finished() const {
  std::error_code ec;
  return fs::exists(mask_file(), ec) && fs::exists(summary_file(), ec);
}

void PrunedFolder::write_summary(const PruneSummary& s) const {
  write_file_atomic(summary_file(), summary_json(s).dump(2) + "\n");
}

PruneSummary PrunedFolder::read_summary() const {
  const std::string file = summary_file().string();
  const std::string text = InputFile(summary_file()).read_all(kMaxJsonFileBytes, "JSON file");
  ojson s;
  try {
    s = parse_json_bounded<ojson>(text, summary_file());
  } catch (const ojson::exception& e) {
    bad_input("{}: not valid JSON ({})", file, e.what());
  }
  if (!s.is_object()) bad_input("{}: not a JSON object", file);
  PruneSummary o;
  try {
    o = summary_fields(s, file);
  } catch (const ojson::exception& e) {
    bad_input("{}: a field has the wrong type ({})", file, e.what());
  }
  if (s.contains("run")) o.run = run_info_from_json(nlohmann::json(s["run"]), RunKind::kPrune, file + ": \"run\"");
  return o;
}

}  // namespace sparsa
