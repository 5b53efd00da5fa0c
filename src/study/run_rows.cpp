// Identities and rows of the runs that sparsa study and the commands' --db write (sparsa/run_rows.h).
#include "sparsa/run_rows.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "sparsa/calibration.h"
#include "sparsa/error.h"
#include "sparsa/safetensors.h"

namespace sparsa {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- identities ----

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
  if (method == PruneMethod::kMagnitude) {  // needs no calibration data
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
    if (!j.at("target").is_null()) {
      const std::string label = j.at("target").get<std::string>();
      i.target = target_from_label(label);
      if (!i.target) bad_input("{}: target '{}' is not a target label (u50, 2-4, ...)", where, label);
    }
    i.calib_description = j.at("calib_description").get<std::string>();
    i.calib_hash = j.at("calib_hash").get<std::string>();
    i.nsamples = j.at("nsamples").get<int64_t>();
    i.seqlen = j.at("seqlen").get<int64_t>();
    i.device = j.at("device").get<std::string>();
    i.options = j.at("options").get<std::string>();
  } catch (const json::exception& e) {
    bad_input("{}: the run description is malformed ({})", where, e.what());
  }
  return i;
}

std::optional<SparsityTarget> target_from_label(std::string_view label) {
  try {
    if (label.size() > 1 && label[0] == 'u') {
      double percent = 0;
      const std::string digits(label.substr(1));
      size_t used = 0;
      percent = std::stod(digits, &used);
      if (used != digits.size()) return std::nullopt;
      SparsityTarget t = parse_sparsity(fmt::format("{:g}", percent / 100.0));
      if (t.label() != label) return std::nullopt;
      return t;
    }
    const auto dash = label.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    std::string nm(label);
    nm[dash] = ':';
    SparsityTarget t = parse_nm(nm);
    if (t.label() != label) return std::nullopt;
    return t;
  } catch (const std::exception&) {  // Error(kBadInput) or std::stod's
    return std::nullopt;
  }
}

// ---- rows ----

PrunedCounts pruned_counts(const Mask& m) {
  PrunedCounts c{std::vector<int64_t>(static_cast<size_t>(m.rows), 0), std::vector<int64_t>(static_cast<size_t>(m.cols), 0), 0};
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t col = 0; col < m.cols; ++col)
      if (m.at(r, col)) {
        ++c.per_row[static_cast<size_t>(r)];
        ++c.per_col[static_cast<size_t>(col)];
      }
  for (int64_t n : c.per_row) c.total += n;
  return c;
}

PrunedCounts pruned_counts(const BitMatrix& b) {
  PrunedCounts c{std::vector<int64_t>(static_cast<size_t>(b.rows()), 0),
                 std::vector<int64_t>(static_cast<size_t>(b.cols()), 0), 0};
  for (int64_t r = 0; r < b.rows(); ++r) {
    const uint64_t* words = b.row(r);
    for (int64_t w = 0; w < b.words_per_row(); ++w)
      for (uint64_t bits = words[w]; bits != 0; bits &= bits - 1) {
        const int64_t col = w * 64 + std::countr_zero(bits);
        if (col >= b.cols()) break;
        ++c.per_row[static_cast<size_t>(r)];
        ++c.per_col[static_cast<size_t>(col)];
      }
  }
  for (int64_t n : c.per_row) c.total += n;
  return c;
}

namespace {

// One FeatureMetric per feature: pruned count and kept fraction of a row / column of `length`.
std::vector<FeatureMetric> own_features(const std::vector<int64_t>& pruned, int64_t length) {
  std::vector<FeatureMetric> out(pruned.size());
  for (size_t i = 0; i < pruned.size(); ++i) {
    out[i].feature = static_cast<int64_t>(i);
    out[i].pruned = pruned[i];
    out[i].kept_fraction = 1.0 - static_cast<double>(pruned[i]) / static_cast<double>(length);
  }
  return out;
}

// One row per feature of a comparison: [features] metrics -> FeatureMetric.
std::vector<FeatureMetric> compared_features(const FeatureMetrics& f, int64_t length) {
  std::vector<FeatureMetric> out(f.jaccard.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].feature = static_cast<int64_t>(i);
    out[i].pruned = std::llround(f.sparsity_a[i] * static_cast<double>(length));
    out[i].kept_fraction = 1.0 - f.sparsity_a[i];
    out[i].jaccard = f.jaccard[i];
    out[i].hamming = f.hamming[i];
    if (!f.cosine.empty() && std::isfinite(f.cosine[i])) out[i].cosine = f.cosine[i];
  }
  return out;
}

}  // namespace

void add_pruned_matrix_rows(RunWriter& w, const std::string& hf_name, int64_t rows, int64_t cols,
                            const PrunedCounts& counts, double seconds) {
  w.add_matrix({hf_name, rows, cols, static_cast<double>(counts.total) / static_cast<double>(rows * cols), seconds});
  w.add_feature_metrics({hf_name, FeatureAxis::kRow}, own_features(counts.per_row, cols));
  w.add_feature_metrics({hf_name, FeatureAxis::kCol}, own_features(counts.per_col, rows));
}

void add_prune_rows(RunWriter& w, const PruneResult& r) {
  for (const LinearPruneResult& l : r.linears)
    add_pruned_matrix_rows(w, l.name, l.mask.rows, l.mask.cols, pruned_counts(l.mask), l.seconds);
}

void add_comparison_rows(RunWriter& w, const MaskSetComparison& c, int64_t run_a, int64_t run_b) {
  std::vector<ComparisonRow> rows;
  for (const MatrixComparison& mc : c.matrices) {
    ComparisonRow r;
    r.run_a = run_a;
    r.run_b = run_b;
    r.hf_name = mc.name;
    r.jaccard = mc.counts.jaccard();
    r.hamming = mc.counts.hamming();
    if (mc.cosine && std::isfinite(*mc.cosine)) r.cosine = *mc.cosine;
    r.sparsity_a = mc.counts.sparsity_a();
    r.sparsity_b = mc.counts.sparsity_b();
    rows.push_back(r);
    w.add_feature_metrics({mc.name, FeatureAxis::kRow, run_a, run_b}, compared_features(mc.per_row, mc.cols));
    w.add_feature_metrics({mc.name, FeatureAxis::kCol, run_a, run_b}, compared_features(mc.per_col, mc.rows));
  }
  w.add_comparisons(rows);
}

// Re-bins the fine log-spaced magnitude histogram into linear signed bins over ±R, each fine bin
// going to the coarse bin of its midpoint; values beyond ±R fold into the edge bins.
CoarseHistogram coarsen(const ActivationHistogram& h) {
  constexpr double kRange = 0.999;  // the bins span ±(this quantile of |x|)
  double range = h.threshold(kRange);
  if (!(range > 0)) range = 1.0;
  CoarseHistogram c;
  c.counts.assign(kCoarseHistogramBins, 0);
  for (int64_t i = 0; i <= kCoarseHistogramBins; ++i)
    c.edges.push_back(-range + 2.0 * range * static_cast<double>(i) / static_cast<double>(kCoarseHistogramBins));
  const auto& counts = h.counts();  // [2, kBinsPerSign]: x >= +0, then x <= -0
  for (int sign = 0; sign < 2; ++sign) {
    for (int64_t b = 0; b < ActivationHistogram::kBinsPerSign; ++b) {
      const uint64_t n = counts[static_cast<size_t>(sign * ActivationHistogram::kBinsPerSign + b)];
      if (n == 0) continue;
      const double lo = ActivationHistogram::bin_lower(b), hi = ActivationHistogram::bin_upper(b);
      const double mid = std::isfinite(hi) ? 0.5 * (lo + hi) : lo;
      const double x = sign == 0 ? mid : -mid;
      const auto idx = static_cast<int64_t>(std::floor((x + range) / (2.0 * range) * kCoarseHistogramBins));
      c.counts[static_cast<size_t>(std::clamp<int64_t>(idx, 0, kCoarseHistogramBins - 1))] += static_cast<int64_t>(n);
    }
  }
  return c;
}

void add_act_histogram_rows(RunWriter& w, const ActivationProfile& profile) {
  for (int64_t l = 0; l < profile.n_layers; ++l)
    for (int p = 0; p < kNumObsPoints; ++p) {
      const CoarseHistogram c = coarsen(profile.at(l, static_cast<ObsPoint>(p)));
      w.add_act_histogram(l, static_cast<ObsPoint>(p), c.edges, c.counts);
    }
}

void add_act_threshold_rows(RunWriter& w, const ActivationThresholds& t) {
  std::vector<ActThresholdRow> rows;
  for (size_t l = 0; l < t.t.size(); ++l)
    for (int p = 0; p < kNumObsPoints; ++p)
      rows.push_back({static_cast<int64_t>(l), static_cast<ObsPoint>(p), t.sparsity, t.t[l][static_cast<size_t>(p)]});
  w.add_act_thresholds(rows);
}

// ---- mask sets as prune runs ----

namespace {

std::string canonical_text(const fs::path& p) {
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p.string() : c.string();
}

std::string with_source(std::string options, const fs::path& path) {
  return options + (options.empty() ? "" : " ") + "source=" + canonical_text(path);
}

std::optional<double> number(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? std::optional<double>(j[key].get<double>()) : std::nullopt;
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

// A pruned folder's summary.json.
MaskSetOrigin origin_from_summary(const fs::path& folder) {
  const fs::path file = folder / "summary.json";
  json s;
  try {
    std::ifstream in(file);
    s = json::parse(in);
  } catch (const json::exception& e) {
    bad_input("{}: not valid JSON ({})", file.string(), e.what());
  }
  if (!s.is_object()) bad_input("{}: not a JSON object", file.string());
  MaskSetOrigin o;
  if (s.contains("run")) {
    o.info = run_info_from_json(s["run"], RunKind::kPrune, file.string() + ": \"run\"");
  } else {  // written before summaries recorded their run: no calibration hash
    o.info.kind = RunKind::kPrune;
    o.info.method = s.value("method", std::string());
    if (s.contains("target") && s["target"].is_object())
      o.info.target = target_from_label(s["target"].value("label", std::string()));
    set_model(o.info, s.value("model", std::string()));
    if (s.contains("calibration") && !s["calibration"].is_null()) o.info.calib_description = s["calibration"].dump();
    o.info.options = with_source("", folder);
  }
  const json& t = s.contains("timings") ? s["timings"] : json();
  o.timings = {.total = number(t, "total"), .forward = number(t, "forward"), .stats = number(t, "stats"),
               .select = number(t, "select")};
  o.matrix_seconds = json::object();
  if (s.contains("matrices") && s["matrices"].is_array())
    for (const json& m : s["matrices"])
      if (m.is_object() && m.contains("name") && m["name"].is_string() && number(m, "seconds"))
        o.matrix_seconds[m["name"].get<std::string>()] = m["seconds"];
  return o;
}

// "<anything>_<method>_<label>" -> method and target (the study's and goldens' file names).
void from_file_name(RunInfo& info, const fs::path& file) {
  const std::string stem = file.stem().string();
  const auto last = stem.rfind('_');
  if (last == std::string::npos || last == 0) return;
  const auto target = target_from_label(stem.substr(last + 1));
  const auto before = stem.rfind('_', last - 1);
  const std::string method = stem.substr(before == std::string::npos ? 0 : before + 1,
                                         last - (before == std::string::npos ? 0 : before + 1));
  if (!target || (method != "magnitude" && method != "wanda" && method != "sparsegpt")) return;
  info.method = method;
  info.target = target;
}

// A mask file's metadata (method, target, model), else its name.
MaskSetOrigin origin_from_mask_file(const fs::path& file) {
  MaskSetOrigin o;
  o.info.kind = RunKind::kPrune;
  const auto meta = SafetensorsFile::open(file)->metadata();
  const auto get = [&](const char* key) { return meta.count(key) ? meta.at(key) : std::string(); };
  o.info.method = get("method");
  if (!get("target").empty()) o.info.target = target_from_label(get("target"));
  if (o.info.method.empty() || !o.info.target) from_file_name(o.info, file);
  if (!get("model").empty()) set_model(o.info, get("model"));
  o.info.options = with_source("", file);
  o.matrix_seconds = json::object();
  return o;
}

}  // namespace

MaskSetOrigin mask_set_origin(const fs::path& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(path / "summary.json")) return origin_from_summary(path);
    MaskSetOrigin o = origin_from_mask_file(path / "masks.safetensors");
    o.info.options = with_source("", path);
    return o;
  }
  return origin_from_mask_file(path);
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
