// sparsa export: a study database's tables as Parquet files.
#include <cstdio>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/store.h"

namespace sparsa::cli {
namespace {

struct ExportArgs {
  std::string db, parquet;
  bool json = false;
};

void run_export(const ExportArgs& a) {
  const auto store = Store::open(a.db, Store::Mode::kReadOnly);
  const auto counts = rephrase_bad_input("--parquet ", "", [&] { return store->export_parquet(a.parquet); });
  int64_t total = 0;
  nlohmann::json tables = nlohmann::json::object();
  for (const auto& [table, rows] : counts) {
    tables[table] = rows;
    total += rows;
  }
  if (a.json) {
    print_json({{"db", a.db}, {"parquet", a.parquet}, {"schema_version", store->schema_version()}, {"tables", tables}});
    return;
  }
  for (const auto& [table, rows] : counts) std::printf("%-16s %12lld rows\n", table.c_str(), static_cast<long long>(rows));
  std::printf("exported %zu tables (%lld rows) to %s\n", counts.size(), static_cast<long long>(total),
              a.parquet.c_str());
}

}  // namespace

void register_export(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export", "Write every table of a study database to Parquet files "
                                           "(DIR/<table>.parquet + DIR/manifest.json + DIR/sparsa-export.json, the "
                                           "list of the files written)");
  cmd->add_option("--db", args->db, "study database (DuckDB file; opened read-only, never changed)")->required();
  cmd->add_option("--parquet", args->parquet,
                  "output folder; only the files an earlier export listed in its sparsa-export.json are replaced, other "
                  "files are left alone (refused if one has a name the export needs)")
      ->required();
  cmd->add_flag("--json", args->json, "print {\"tables\": {name: rows}, ...} as JSON on stdout");
  cmd->callback([args] { run_export(*args); });
}
SPARSA_COMMAND(95, register_export);

}  // namespace sparsa::cli
