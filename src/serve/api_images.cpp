// The dashboard's images (PNG, drawn by sparsa/viz.h) of the study's pruning masks:
//   spy            ?run=&matrix=            the mask of one matrix of a prune run
//   gradient_spy   ?analysis=&feature=      the clustered mask's rows by Hamming distance to a feature
//   clustered_spy  ?analysis=               the clustered mask's rows grouped by k-means cluster
// Optional width= and height= (pixels, 200 to 3000; default 1000 × 800).
// A prune run's masks are the file its runs row records (runs.mask_file); for a run stored before
// files were recorded (mask_file NULL), the study's masks/<mask_file_name(method, target)> in the
// Api's masks folder. A clustering of a mask names it in its source, "<method> <structure>
// <matrix> rows" (study_coactivation.cpp), and its analysis run names the prune runs it clustered
// (analysis_mask_runs). Clusterings of activation bitsets have no image here: the bitsets are not
// stored.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "serve/api.h"
#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/mask_compare.h"
#include "sparsa/runs.h"
#include "sparsa/viz.h"

namespace sparsa::serve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr QueryLimits kLookupLimits{1'000'000, 30.0};

std::string text_or_empty(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

struct MaskRef {
  fs::path file;
  std::string matrix;
  std::string model_path;  // for the true column counts, when the checkpoint is still there
};

// The mask file of a prune run from its runs row [method, structure, model_path, mask_file].
MaskRef run_mask(const Api& api, const json& row, std::string matrix) {
  MaskRef ref{fs::path(text_or_empty(row[3])), std::move(matrix), text_or_empty(row[2])};
  if (!ref.file.empty()) return ref;
  // stored before runs recorded their mask file: the study's file of its method and structure
  const std::string method = text_or_empty(row[0]), structure = text_or_empty(row[1]);
  const auto named = parse_mask_file_name(fmt::format("{}_{}", method, structure));
  if (!named) throw NotFound(fmt::format("the {} {} run records no mask file", method, structure));
  ref.file = api.masks_dir() / mask_file_name(named->method, named->target);
  return ref;
}

BitMatrix load_mask(const MaskRef& ref) {
  if (!path_exists(ref.file)) throw NotFound(fmt::format("{}: no such mask file", ref.file.string()));
  std::error_code ec;
  const bool has_model = !ref.model_path.empty() && fs::exists(ref.model_path, ec);
  const MaskSet set = MaskSet::open(ref.file, has_model ? fs::path(ref.model_path) : fs::path());
  const MaskInfo* info = set.find(ref.matrix);
  if (!info) throw NotFound(fmt::format("{}: no mask for '{}'", ref.file.string(), ref.matrix));
  return set.load_pruned(*info);
}

const json& only_row(const json& result, const std::string& what) {
  if (result["rows"].empty()) throw NotFound(what);
  return result["rows"][0];
}

viz::SpyOptions mask_spy_options(const Params& p, std::string title) {
  viz::SpyOptions o;
  auto size = [&](std::string_view name, int fallback) {
    return p.count(name) ? static_cast<int>(std::clamp<int64_t>(param_int(p, name), 200, 3000)) : fallback;
  };
  o.frame.width = size("width", 1000);
  o.frame.height = size("height", 800);
  o.frame.title = std::move(title);
  o.frame.x_label = "input feature (column)";
  o.frame.y_label = "output feature (row)";
  o.set_label = "pruned";
  o.clear_label = "kept";
  return o;
}

struct Clustered {
  MaskRef mask;
  std::string source;  // the source's description (cluster_sources), else its key
  int64_t k = 0;
  double separation = 0;
};

constexpr std::string_view kRunColumns = "method, structure, model_path, mask_file";

// The runs row of the prune run whose mask `method` `structure` the analysis run clustered: the
// newest of the runs its options name; for an analysis that names none (written by hand or
// before they were named), the study's mask file of that method and structure.
json clustered_run_row(const Store& store, const std::string& options, const std::string& method,
                       const std::string& structure) {
  const std::vector<int64_t> ids = analysis_mask_runs(options);
  if (!ids.empty()) {
    const json rows = store.query_json(fmt::format("SELECT {} FROM runs WHERE kind = 'prune' AND run_id IN ({}) "
                                                   "ORDER BY run_id DESC",
                                                   kRunColumns, fmt::join(ids, ", ")),
                                       kLookupLimits)["rows"];
    for (const json& r : rows)
      if (text_or_empty(r[0]) == method && text_or_empty(r[1]) == structure) return r;
  }
  return json::array({method, structure, nullptr, nullptr});
}

Clustered clustering(const Api& api, int64_t analysis) {
  const json row = only_row(
      api.store().query_json(fmt::format("SELECT s.source, s.hf_name, s.k, s.separation_ratio, r.model_path, "
                                         "r.options, (SELECT min(d.description) FROM cluster_sources d WHERE d.run_id = "
                                         "s.run_id AND d.source = s.source) FROM cluster_summary s JOIN runs r USING "
                                         "(run_id) WHERE s.analysis_id = {}",
                                         analysis),
                             kLookupLimits),
      fmt::format("no clustering with analysis_id {}", analysis));
  Clustered c;
  const std::string key = row[0].get<std::string>();
  c.source = row[6].is_string() ? row[6].get<std::string>() : key;
  c.k = row[2].get<int64_t>();
  c.separation = row[3].is_number() ? row[3].get<double>() : 0.0;
  const std::string matrix = text_or_empty(row[1]);
  const std::optional<MaskFileIdentity> masks = parse_mask_source_key(key);
  if (matrix.empty() || !masks)
    throw NotFound(fmt::format("'{}' is not a mask: its bits are not stored in the database", key));
  json run = clustered_run_row(api.store(), text_or_empty(row[5]), std::string(prune_method_name(masks->method)),
                               masks->target.label());
  if (run[2].is_null()) run[2] = row[4];  // the analysed model, when the prune run is not stored
  c.mask = run_mask(api, run, matrix);
  return c;
}

std::string spy(const Api& api, const Params& p) {
  const int64_t run = param_int(p, "run");
  const std::string& matrix = param_text(p, "matrix");
  const json row = only_row(
      api.store().query_json(fmt::format("SELECT {} FROM runs WHERE run_id = {} AND kind = 'prune'", kRunColumns, run),
                             kLookupLimits),
      fmt::format("no prune run with run_id {}", run));
  const MaskRef ref = run_mask(api, row, matrix);
  const BitMatrix bits = load_mask(ref);
  return viz::spy_plot(bits, mask_spy_options(p, fmt::format("{} {} (run {}): {}", text_or_empty(row[0]),
                                                              text_or_empty(row[1]), run, matrix)))
      .png();
}

std::string gradient_spy(const Api& api, const Params& p) {
  const Clustered c = clustering(api, param_int(p, "analysis"));
  const BitMatrix bits = load_mask(c.mask);
  const int64_t feature = param_int(p, "feature");
  if (feature < 0 || feature >= bits.rows())
    bad_input("parameter 'feature': {} is outside [0, {})", feature, bits.rows());
  return viz::gradient_spy_plot(bits, coactivation_order(bits, feature), feature,
                                mask_spy_options(p, fmt::format("{}: features by Hamming distance to feature {}",
                                                                c.source, feature)))
      .png();
}

std::string clustered_spy(const Api& api, const Params& p) {
  const int64_t analysis = param_int(p, "analysis");
  const Clustered c = clustering(api, analysis);
  const BitMatrix bits = load_mask(c.mask);
  const json rows = api.store().query_json(
      fmt::format("SELECT feature, cluster FROM clusters WHERE analysis_id = {} ORDER BY feature", analysis),
      kLookupLimits)["rows"];
  if (static_cast<int64_t>(rows.size()) != bits.rows())
    runtime_failure("clustering {} assigns {} features but the mask has {} rows", analysis, rows.size(), bits.rows());
  std::vector<int> assignment(rows.size());
  for (const json& r : rows) assignment.at(r[0].get<size_t>()) = r[1].get<int>();
  return viz::clustered_spy_plot(
             bits, assignment,
             mask_spy_options(p, fmt::format("{}: k-means, k = {} (separation ratio {:.2f})", c.source, c.k,
                                             c.separation)))
      .png();
}

}  // namespace

std::string Api::image(std::string_view name, const Params& params) const {
  if (name == "spy") return spy(*this, params);
  if (name == "gradient_spy") return gradient_spy(*this, params);
  if (name == "clustered_spy") return clustered_spy(*this, params);
  throw NotFound(fmt::format("no image named '{}' (spy, gradient_spy, clustered_spy)", name));
}

}  // namespace sparsa::serve
