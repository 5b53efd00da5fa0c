// Store: opening (modes, schema version checks, migration), run identity and lookup.
#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <system_error>

#include "sparsa/calibration.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/mask_compare.h"
#include "sparsa/store.h"
#include "store/schema.h"
#include "store/store_impl.h"

namespace sparsa {

std::string_view run_kind_name(RunKind k) {
  switch (k) {
    case RunKind::kDense: return "dense";
    case RunKind::kPrune: return "prune";
    case RunKind::kActs: return "acts";
    case RunKind::kCompare: return "compare";
    case RunKind::kAnalysis: return "analysis";
    case RunKind::kBench: return "bench";
  }
  SPARSA_ASSERT(false);
  return {};
}

std::string run_key(const RunInfo& info) {
  std::string model;
  if (!info.model_path.empty()) {
    std::error_code ec;
    const auto canonical = std::filesystem::weakly_canonical(info.model_path, ec);
    model = ec ? info.model_path : canonical.string();
  }
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}", run_kind_name(info.kind), model, info.method,
                     info.target ? info.target->label() : "", info.calib_hash, info.nsamples, info.seqlen,
                     info.options);
}

std::string token_hash(std::span<const int32_t> tokens) { return fmt::format("fnv1a64:{:016x}", fnv1a64(tokens)); }

MatrixName parse_matrix_name(std::string_view hf_name) {
  ModuleName m = parse_module_name(hf_name);
  if (m.layer < 0 || m.component.empty())
    bad_input("'{}' is not the name of a layer's linear (expected '...layers.N.component')", hf_name);
  return {m.layer, std::move(m.component)};
}

// ---- Store ----

namespace {

std::vector<std::pair<std::string, std::string>> mode_settings(Store::Mode mode) {
  switch (mode) {
    case Store::Mode::kReadWrite: return {};
    case Store::Mode::kReadOnly: return {{"access_mode", "READ_ONLY"}};
    case Store::Mode::kSandboxed:
      return {{"access_mode", "READ_ONLY"},
              {"autoinstall_known_extensions", "false"},
              {"autoload_known_extensions", "false"}};  // then kSandboxedLast, once open
  }
  SPARSA_ASSERT(false);
  return {};
}

std::vector<std::pair<std::string, std::string>> duckdb_settings(Store::Mode mode, const StoreResources& r) {
  auto settings = mode_settings(mode);
  if (r.memory_limit_bytes > 0) settings.emplace_back("memory_limit", fmt::format("{}B", r.memory_limit_bytes));
  if (r.threads > 0) settings.emplace_back("threads", std::to_string(r.threads));
  return settings;
}

// Settings of kSandboxed given once the database is open, before any query, in this order
// (DuckDB's configuration API refuses an empty temp_directory, which no longer changes once
// external access is off): nothing spills to disk, no other file is reachable, and then no
// setting can change any more.
constexpr std::string_view kSandboxedLast =
    "SET temp_directory = ''; SET enable_external_access = false; SET lock_configuration = true";

}  // namespace

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

std::unique_ptr<Store> Store::open(const std::filesystem::path& path, Mode mode, const StoreResources& resources) {
  if (mode != Mode::kReadWrite && !path_exists(path))
    bad_input("{}: no such database file", path.string());
  check_regular_if_exists(path);
  auto impl = std::make_unique<Impl>(path, mode, duckdb_settings(mode, resources));
  store::Connection con(impl->db);
  if (mode == Mode::kSandboxed) con.exec(kSandboxedLast, "locking the configuration");
  const int version = store::read_schema_version(con);
  if (version > kStoreSchemaVersion)
    bad_input("{}: schema version {} is newer than this sparsa understands ({}); use a newer sparsa",
              path.string(), version, kStoreSchemaVersion);
  if (version < kStoreSchemaVersion) {
    if (mode != Mode::kReadWrite)
      bad_input("{}: schema version {} is older than {}; opening it read-write once "
                "migrates it", path.string(), version, kStoreSchemaVersion);
    store::migrate_schema(con, version);
  }
  impl->version = kStoreSchemaVersion;
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

const std::filesystem::path& Store::path() const { return impl_->path; }
Store::Mode Store::mode() const { return impl_->mode; }
int Store::schema_version() const { return impl_->version; }

std::optional<int64_t> Store::find_run(const RunInfo& info) const {
  store::Connection con(impl_->db);
  store::Prepared find(con, "SELECT max(run_id) FROM runs WHERE run_key = $1 AND status = 'complete'");
  find.bind(1, std::string_view(run_key(info)));
  return find.run("looking up a finished run").scalar_int();
}

}  // namespace sparsa
