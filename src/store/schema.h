// The DuckDB schema of a study database (docs/schema.md): DDL, version, migrations, views.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparsa/prune.h"
#include "store/database.h"

namespace sparsa::store {

// Every table of the current schema, parents before children (the export order).
const std::vector<std::string_view>& schema_tables();

// The schema version recorded in sparsa_meta; 0 when the database has no sparsa_meta table
// (a new or foreign database). Error(kBadInput) when the recorded value is not a number.
int read_schema_version(Connection& con);

// Brings a database of version `from` (< kStoreSchemaVersion) to the current version in one
// transaction. Error(kBadInput) when the database cannot take the schema (e.g. it already has
// an unrelated table named like one of ours).
void migrate_schema(Connection& con, int from);

// The name of the per-feature view of `component` for runs of `method` at `target`:
// "wanda_0_5_down_proj" (unstructured 0.5), "sparsegpt_2_4_up_proj" (2:4).
std::string feature_view_name(std::string_view method, const SparsityTarget& target, std::string_view component);

// Creates the per-feature views of `method` at `target` for each component when absent (inside
// the caller's transaction). A view selects the newest run when queried, so an existing one is
// already up to date and is left alone (no catalog write, no conflict between concurrent runs).
// Two views per component: `<name>` (the mask's own statistics and its comparisons with other
// runs, as before: kept for existing queries) and `<name>_features` (the mask's own statistics
// only: other_run_id IS NULL).
void create_feature_views(Connection& con, std::string_view method, const SparsityTarget& target,
                           const std::vector<std::string>& components);

// "wanda_0_5_down_proj_vs_sparsegpt_0_5": the per-feature comparison rows of `component` of the
// newest prune run of method_a at target_a against that of method_b at target_b.
std::string comparison_view_name(std::string_view method_a, const SparsityTarget& target_a, std::string_view component,
                                 std::string_view method_b, const SparsityTarget& target_b);
// Creates those views (one per component) when absent, inside the caller's transaction; each
// shows the rows of the newest compare run of the pair.
void create_comparison_views(Connection& con, std::string_view method_a, const SparsityTarget& target_a,
                             std::string_view method_b, const SparsityTarget& target_b,
                             const std::vector<std::string>& components);

}  // namespace sparsa::store
