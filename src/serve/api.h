// The dashboard's API, independent of HTTP: named queries over the study database, the SQL
// console, PNG images of masks, and the benchmark notes. The server (server.cpp) maps URLs to
// these calls and exceptions to status codes.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sparsa/store.h"

namespace sparsa::serve {

using Params = std::map<std::string, std::string, std::less<>>;

// "Not found" (HTTP 404): an unknown endpoint, query or image, a missing run or file.
struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Api {
 public:
  // `store` must be open (kSandboxed) and outlive the Api.
  Api(const Store& store, std::filesystem::path masks_dir, std::filesystem::path bench_results,
      const QueryLimits& limits);

  // The named query `name` (api_queries.cpp: runs, perplexities, matrices, features, ...) with
  // its parameters from `params` (each validated: integers parsed strictly, text quoted);
  // query_json's result. NotFound for an unknown name; Error(kBadInput) for a missing or
  // malformed parameter or a failing query; QueryTooLarge past limits.max_bytes. The answer is
  // query_json_text's (JSON text).
  std::string named_query(std::string_view name, const Params& params) const;
  // The names and parameters of every named query: {name: [param, ...]}.
  static nlohmann::json query_catalog();

  // The SQL console: one read-only statement under the limits, as query_json_text's JSON text.
  std::string sql(std::string_view statement) const;

  // PNG bytes of the image `name` (images.cpp: spy, gradient_spy, clustered_spy).
  std::string image(std::string_view name, const Params& params) const;

  // {"path", "markdown"} of the benchmark notes: the file given, or when none was the notes built
  // into the binary; NotFound when the file cannot be read.
  nlohmann::json bench_results() const;

  // {"db", "schema_version", "masks_dir", "limits": {"max_rows", "max_seconds", "max_bytes"}}
  nlohmann::json info() const;

  const Store& store() const { return store_; }
  const std::filesystem::path& masks_dir() const { return masks_dir_; }

 private:
  const Store& store_;
  std::filesystem::path masks_dir_, bench_results_;
  QueryLimits limits_;
};

// Parameter access shared by queries and images: Error(kBadInput) naming the parameter when it
// is missing or (for integers) not a whole number.
const std::string& param_text(const Params& p, std::string_view name);
int64_t param_int(const Params& p, std::string_view name);
// A SQL string literal of `text` (quotes doubled); Error(kBadInput) for NUL bytes or more than
// 1000 bytes.
std::string sql_literal(std::string_view text);

}  // namespace sparsa::serve
