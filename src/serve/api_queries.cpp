// The dashboard's named queries: the SQL behind each page, with typed parameters. Each is a
// fmt template whose {name} fields are replaced by validated values (integers as digits, text as
// quoted SQL literals), so no request text reaches the SQL unquoted.
#include <fmt/args.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "serve/api.h"
#include "sparsa/error.h"

namespace sparsa::serve {
namespace {

// The pages read whole per-feature tables (a row per feature of a matrix), so named queries may
// return more rows than the console's limit; the response size limit still applies.
constexpr int64_t kNamedQueryRows = 1'000'000;

enum class ParamType { kInt, kText };
struct Param {
  std::string_view name;
  ParamType type;
};
struct NamedQuery {
  std::string_view name;
  std::vector<Param> params;
  std::string_view sql;
};

const std::vector<NamedQuery>& named_queries() {
  static const std::vector<NamedQuery> kQueries = {
      {"runs", {},
       "SELECT run_id, kind, model_name, method, structure, sparsity, nsamples, seqlen, device, options, "
       "round(seconds_total, 2) AS seconds, started_at FROM runs ORDER BY run_id"},
      {"perplexities", {},
       "SELECT p.run_id, r.kind AS run_kind, coalesce(r.method, r.kind) AS method, r.structure, r.sparsity, "
       "p.dataset, p.kind, p.act_sparsity, p.ppl, p.tokens, round(p.seconds, 2) AS seconds "
       "FROM perplexities p JOIN runs r USING (run_id) ORDER BY p.run_id, p.act_sparsity"},
      {"prune_runs", {},
       "SELECT r.run_id, r.method, r.structure, r.sparsity, count(m.hf_name) AS matrices, avg(m.sparsity) AS "
       "achieved FROM runs r LEFT JOIN matrices m USING (run_id) WHERE r.kind = 'prune' GROUP BY ALL ORDER BY "
       "r.run_id"},
      {"matrices", {{"run", ParamType::kInt}},
       "SELECT hf_name, layer, component, rows, cols, sparsity, seconds FROM matrices WHERE run_id = {run} "
       "ORDER BY layer, component"},
      {"features", {{"run", ParamType::kInt}, {"matrix", ParamType::kText}, {"axis", ParamType::kText}},
       "SELECT feature, pruned, kept_fraction FROM feature_metrics WHERE mask_run_id = {run} AND hf_name = "
       "{matrix} AND axis = {axis} AND other_run_id IS NULL ORDER BY feature"},
      {"feature_comparisons", {{"run", ParamType::kInt}, {"matrix", ParamType::kText}, {"axis", ParamType::kText}},
       "SELECT f.other_run_id, o.method AS other_method, o.structure AS other_structure, f.feature, f.jaccard, "
       "f.hamming, f.cosine FROM feature_metrics f JOIN runs o ON o.run_id = f.other_run_id WHERE f.mask_run_id "
       "= {run} AND f.hf_name = {matrix} AND f.axis = {axis} ORDER BY f.other_run_id, f.feature"},
      {"comparison_pairs", {},
       "SELECT max(c.run_id) AS run_id, c.run_a, c.run_b, a.method AS method_a, a.structure AS structure_a, "
       "b.method AS method_b, b.structure AS structure_b, avg(c.jaccard) AS mean_jaccard FROM comparisons c "
       "JOIN runs a ON a.run_id = c.run_a JOIN runs b ON b.run_id = c.run_b GROUP BY ALL ORDER BY c.run_a, c.run_b"},
      {"comparison", {{"a", ParamType::kInt}, {"b", ParamType::kInt}},
       "SELECT layer, component, hf_name, jaccard, hamming, cosine, sparsity_a, sparsity_b FROM comparisons "
       "WHERE run_a = {a} AND run_b = {b} AND run_id = (SELECT max(run_id) FROM comparisons WHERE run_a = {a} "
       "AND run_b = {b}) ORDER BY layer, component"},
      {"act_thresholds", {},
       "SELECT layer, point, target_sparsity, threshold FROM act_thresholds WHERE run_id = (SELECT max(run_id) "
       "FROM act_thresholds) ORDER BY layer, point, target_sparsity"},
      {"act_histogram", {{"layer", ParamType::kInt}, {"point", ParamType::kText}},
       "SELECT bin, lo, hi, count FROM act_histograms WHERE run_id = (SELECT max(run_id) FROM act_histograms) "
       "AND layer = {layer} AND point = {point} ORDER BY bin"},
      {"clusterings", {},
       "SELECT s.analysis_id, s.run_id, s.source, coalesce((SELECT min(d.description) FROM cluster_sources d WHERE "
       "d.run_id = s.run_id AND d.source = s.source), s.source) AS description, s.hf_name, s.k, s.seed, s.objective, "
       "s.within_distance, "
       "s.between_distance, s.separation_ratio, s.ari, (SELECT count(*) FROM clusters c WHERE c.analysis_id = "
       "s.analysis_id) AS features, EXISTS (SELECT 1 FROM tsne t WHERE t.run_id = s.run_id AND t.source = s.source) AS "
       "has_tsne FROM cluster_summary s ORDER BY s.source, s.k, s.seed"},
      {"cluster_sizes", {{"analysis", ParamType::kInt}},
       "SELECT cluster, size FROM cluster_sizes WHERE analysis_id = {analysis} ORDER BY cluster"},
      {"tsne", {{"analysis", ParamType::kInt}},
       "SELECT t.feature, t.x, t.y, c.cluster FROM cluster_summary s JOIN tsne t ON t.source = s.source AND "
       "t.run_id = s.run_id JOIN clusters c ON c.analysis_id = s.analysis_id AND c.feature = t.feature WHERE "
       "s.analysis_id = {analysis} ORDER BY t.feature"},
      {"coherence", {{"source", ParamType::kText}},
       "SELECT h.ordering, s.k, h.block_size, h.fraction FROM coherence h LEFT JOIN cluster_summary s USING "
       "(analysis_id) WHERE h.source = {source} AND h.run_id = (SELECT max(run_id) FROM coherence WHERE source = "
       "{source}) ORDER BY h.ordering, s.k, h.block_size"},
      {"benchmarks", {},
       "SELECT b.run_id, r.started_at, b.name, b.shape, b.dtype, b.sparsity, b.microseconds, "
       "b.baseline_microseconds, b.baseline_microseconds / b.microseconds AS speedup, b.machine FROM benchmarks b "
       "JOIN runs r USING (run_id) ORDER BY b.run_id, b.name, b.shape, b.sparsity"},
      {"tables", {},
       "SELECT t.table_name AS name, t.table_type AS type, string_agg(c.column_name, ', ' ORDER BY "
       "c.ordinal_position) AS columns FROM information_schema.tables t JOIN information_schema.columns c USING "
       "(table_catalog, table_schema, table_name) WHERE t.table_schema = 'main' GROUP BY ALL ORDER BY type, name"},
  };
  return kQueries;
}

}  // namespace

const std::string& param_text(const Params& p, std::string_view name) {
  const auto it = p.find(name);
  if (it == p.end()) bad_input("parameter '{}' is missing", name);
  return it->second;
}

int64_t param_int(const Params& p, std::string_view name) {
  const std::string& s = param_text(p, name);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    bad_input("parameter '{}': '{}' is not a whole number", name, s.substr(0, 40));
  return v;
}

std::string sql_literal(std::string_view text) {
  if (text.size() > 1000) bad_input("a text parameter is longer than 1000 bytes");
  std::string out = "'";
  for (char c : text) {
    if (c == '\0') bad_input("a text parameter holds a NUL byte");
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

std::string Api::named_query(std::string_view name, const Params& params) const {
  for (const NamedQuery& q : named_queries()) {
    if (q.name != name) continue;
    fmt::dynamic_format_arg_store<fmt::format_context> args;
    for (const Param& p : q.params) {
      const std::string key(p.name);
      args.push_back(fmt::arg(key.c_str(), p.type == ParamType::kInt ? std::to_string(param_int(params, p.name))
                                                                      : sql_literal(param_text(params, p.name))));
    }
    QueryLimits limits = limits_;
    limits.max_rows = std::max<int64_t>(limits_.max_rows, kNamedQueryRows);
    return store_.query_json_text(fmt::vformat(q.sql, args), limits);
  }
  throw NotFound(fmt::format("no query named '{}' (GET /api/queries lists them)", name));
}

nlohmann::json Api::query_catalog() {
  nlohmann::json out = nlohmann::json::object();
  for (const NamedQuery& q : named_queries()) {
    nlohmann::json ps = nlohmann::json::array();
    for (const Param& p : q.params) ps.push_back(p.name);
    out[std::string(q.name)] = ps;
  }
  return out;
}

}  // namespace sparsa::serve
