// The dashboard's API: the SQL console, the benchmark notes and the database summary (named
// queries: api_queries.cpp; images: api_images.cpp).
#include "serve/api.h"


#include "serve/assets.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"

namespace sparsa::serve {

Api::Api(const Store& store, std::filesystem::path masks_dir, std::filesystem::path bench_results,
         const QueryLimits& limits)
    : store_(store), masks_dir_(std::move(masks_dir)), bench_results_(std::move(bench_results)), limits_(limits) {}

std::string Api::sql(std::string_view statement) const { return store_.query_json_text(statement, limits_); }

nlohmann::json Api::bench_results() const {
  if (bench_results_.empty()) {
    const Asset* builtin = find_asset(kBuiltinBenchResults);
    if (!builtin) throw NotFound("this binary holds no benchmark notes");
    return {{"path", "bench/RESULTS.md (built in)"}, {"markdown", builtin->bytes}};
  }
  std::string text;
  try {
    text = InputFile(bench_results_).read_all();
  } catch (const Error& e) {
    throw NotFound(e.what());
  }
  return {{"path", bench_results_.string()}, {"markdown", text}};
}

nlohmann::json Api::info() const {
  return {{"db", store_.path().string()},
          {"schema_version", store_.schema_version()},
          {"masks_dir", masks_dir_.string()},
          {"limits",
           {{"max_rows", limits_.max_rows}, {"max_seconds", limits_.max_seconds}, {"max_bytes", limits_.max_bytes}}}};
}

}  // namespace sparsa::serve
