// The dashboard's images (PNG, drawn by sparsa/viz.h) of the study's pruning masks:
//   spy            ?run=&matrix=            the mask of one matrix of a prune run
//   gradient_spy   ?analysis=&feature=      the clustered mask's rows by Hamming distance to a feature
//   clustered_spy  ?analysis=               the clustered mask's rows grouped by k-means cluster
// Optional width= and height= (pixels, 200 to 3000; default 1000 × 800).
// A prune run's masks are the study's masks/<method>_<structure>.safetensors; a clustering of a
// mask names it in its source, "<method> <structure> <matrix> rows" (study_coactivation.cpp).
// Clusterings of activation bitsets have no image here: the bitsets are not stored.
#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "serve/api.h"
#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "sparsa/mask_compare.h"
#include "sparsa/viz.h"

namespace sparsa::serve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr QueryLimits kLookupLimits{1'000'000, 30.0};

struct MaskRef {
  std::string method, structure, matrix;
  std::string model_path;  // for the true column counts, when the checkpoint is still there
};

BitMatrix load_mask(const fs::path& masks_dir, const MaskRef& ref) {
  const fs::path file = masks_dir / fmt::format("{}_{}.safetensors", ref.method, ref.structure);
  if (!fs::exists(file)) throw NotFound(fmt::format("{}: no such mask file", file.string()));
  std::error_code ec;
  const bool has_model = !ref.model_path.empty() && fs::exists(ref.model_path, ec);
  const MaskSet set = MaskSet::open(file, has_model ? fs::path(ref.model_path) : fs::path());
  const MaskInfo* info = set.find(ref.matrix);
  if (!info) throw NotFound(fmt::format("{}: no mask for '{}'", file.string(), ref.matrix));
  return set.load_pruned(*info);
}

const json& only_row(const json& result, const std::string& what) {
  if (result["rows"].empty()) throw NotFound(what);
  return result["rows"][0];
}

std::string text_or_empty(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

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
  std::string source;
  int64_t k = 0;
  double separation = 0;
};

Clustered clustering(const Store& store, int64_t analysis) {
  const json row = only_row(
      store.query_json(fmt::format("SELECT s.source, s.hf_name, s.k, s.separation_ratio, r.model_path FROM "
                                   "cluster_summary s JOIN runs r USING (run_id) WHERE s.analysis_id = {}",
                                   analysis),
                       kLookupLimits),
      fmt::format("no clustering with analysis_id {}", analysis));
  Clustered c;
  c.source = row[0].get<std::string>();
  c.mask.matrix = text_or_empty(row[1]);
  c.k = row[2].get<int64_t>();
  c.separation = row[3].is_number() ? row[3].get<double>() : 0.0;
  c.mask.model_path = text_or_empty(row[4]);
  std::istringstream words(c.source);
  words >> c.mask.method >> c.mask.structure;
  if (c.mask.matrix.empty())
    throw NotFound(fmt::format("'{}' is not a mask: its bits are not stored in the database", c.source));
  return c;
}

std::string spy(const Api& api, const Params& p) {
  const int64_t run = param_int(p, "run");
  const std::string& matrix = param_text(p, "matrix");
  const json row = only_row(api.store().query_json(fmt::format("SELECT method, structure, model_path FROM runs WHERE "
                                                               "run_id = {} AND kind = 'prune'",
                                                               run),
                                                   kLookupLimits),
                            fmt::format("no prune run with run_id {}", run));
  const MaskRef ref{row[0].get<std::string>(), row[1].get<std::string>(), matrix, text_or_empty(row[2])};
  const BitMatrix bits = load_mask(api.masks_dir(), ref);
  return viz::spy_plot(bits, mask_spy_options(p, fmt::format("{} {} (run {}): {}", ref.method, ref.structure, run,
                                                              matrix)))
      .png();
}

std::string gradient_spy(const Api& api, const Params& p) {
  const Clustered c = clustering(api.store(), param_int(p, "analysis"));
  const BitMatrix bits = load_mask(api.masks_dir(), c.mask);
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
  const Clustered c = clustering(api.store(), analysis);
  const BitMatrix bits = load_mask(api.masks_dir(), c.mask);
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
