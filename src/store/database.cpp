#include "store/database.h"

#include <string>

#include "sparsa/error.h"

namespace sparsa::store {
namespace {

// DuckDB's open errors that mean "this is not a database we can read", i.e. the user's input.
bool is_bad_file_message(std::string_view m) {
  for (std::string_view needle : {"not a valid DuckDB database", "does not exist", "Is a directory",
                                  "version number", "No such file"})
    if (m.find(needle) != std::string_view::npos) return true;
  return false;
}

}  // namespace

// ---- Database ----

Database::Database(const std::string& path, const std::vector<std::pair<std::string, std::string>>& config)
    : path_(path) {
  duckdb_config cfg = nullptr;
  if (duckdb_create_config(&cfg) != DuckDBSuccess) runtime_failure("{}: cannot create a DuckDB configuration", path);
  for (const auto& [name, value] : config) {
    if (duckdb_set_config(cfg, name.c_str(), value.c_str()) != DuckDBSuccess) {
      duckdb_destroy_config(&cfg);
      runtime_failure("{}: DuckDB refused the setting {} = {}", path, name, value);
    }
  }
  char* error = nullptr;
  const duckdb_state state = duckdb_open_ext(path.c_str(), &db_, cfg, &error);
  duckdb_destroy_config(&cfg);
  if (state != DuckDBSuccess) {
    const std::string message = one_line(error);
    duckdb_free(error);
    if (is_bad_file_message(message)) bad_input("{}: cannot open as a DuckDB database: {}", path, message);
    runtime_failure("{}: cannot open the database: {}", path, message);
  }
}

Database::~Database() { duckdb_close(&db_); }

// ---- Result ----

Result::~Result() {
  if (owned_) duckdb_destroy_result(&result_);
}

Result::Result(Result&& other) noexcept : result_(other.result_), ok_(other.ok_), owned_(other.owned_) {
  other.owned_ = false;
  other.result_ = {};
}

std::string Result::error() const { return one_line(duckdb_result_error(const_cast<duckdb_result*>(&result_))); }

std::optional<int64_t> Result::scalar_int() {
  if (!ok_ || duckdb_column_count(&result_) < 1 || duckdb_row_count(&result_) < 1) return std::nullopt;
  if (duckdb_value_is_null(&result_, 0, 0)) return std::nullopt;
  return duckdb_value_int64(&result_, 0, 0);
}

std::optional<std::string> Result::scalar_string() {
  if (!ok_ || duckdb_column_count(&result_) < 1 || duckdb_row_count(&result_) < 1) return std::nullopt;
  if (duckdb_value_is_null(&result_, 0, 0)) return std::nullopt;
  char* v = duckdb_value_varchar(&result_, 0, 0);
  std::string s = v ? v : "";
  duckdb_free(v);
  return s;
}

// ---- Connection ----

Connection::Connection(const Database& db) : path_(db.path()) {
  if (duckdb_connect(db.handle(), &con_) != DuckDBSuccess) runtime_failure("{}: cannot connect to the database", path_);
}

Connection::~Connection() { duckdb_disconnect(&con_); }

Result Connection::query(std::string_view sql) {
  Result r;
  const std::string text(sql);
  r.ok_ = duckdb_query(con_, text.c_str(), &r.result_) == DuckDBSuccess;
  r.owned_ = true;
  return r;
}

void Connection::exec(std::string_view sql, std::string_view what) {
  Result r = query(sql);
  if (!r.ok()) runtime_failure("{}: {}: {}", path_, what, r.error());
}

// ---- Prepared ----

Prepared::Prepared(Connection& con, std::string_view sql) : path_(con.path()) {
  const std::string text(sql);
  if (duckdb_prepare(con.handle(), text.c_str(), &stmt_) != DuckDBSuccess) {
    const std::string message = one_line(duckdb_prepare_error(stmt_));
    duckdb_destroy_prepare(&stmt_);
    runtime_failure("{}: cannot prepare a statement: {}", path_, message);
  }
}

Prepared::~Prepared() { duckdb_destroy_prepare(&stmt_); }

void Prepared::check(duckdb_state s) {
  SPARSA_ASSERT(s == DuckDBSuccess);  // parameter indices and types are chosen by src/store/, not users
}

Prepared& Prepared::bind(idx_t i, int64_t v) {
  check(duckdb_bind_int64(stmt_, i, v));
  return *this;
}
Prepared& Prepared::bind(idx_t i, uint64_t v) {
  check(duckdb_bind_uint64(stmt_, i, v));
  return *this;
}
Prepared& Prepared::bind(idx_t i, double v) {
  check(duckdb_bind_double(stmt_, i, v));
  return *this;
}
Prepared& Prepared::bind(idx_t i, std::string_view v) {
  check(duckdb_bind_varchar_length(stmt_, i, v.data(), v.size()));
  return *this;
}
Prepared& Prepared::bind_text_or_null(idx_t i, std::string_view v) { return v.empty() ? bind_null(i) : bind(i, v); }
Prepared& Prepared::bind_timestamp_us(idx_t i, int64_t micros) {
  check(duckdb_bind_timestamp(stmt_, i, duckdb_timestamp{micros}));
  return *this;
}
Prepared& Prepared::bind_null(idx_t i) {
  check(duckdb_bind_null(stmt_, i));
  return *this;
}

Result Prepared::run(std::string_view what) {
  Result r;
  r.ok_ = duckdb_execute_prepared(stmt_, &r.result_) == DuckDBSuccess;
  r.owned_ = true;
  if (!r.ok()) runtime_failure("{}: {}: {}", path_, what, r.error());
  return r;
}

// ---- Appender ----

Appender::Appender(Connection& con, const std::string& table) : table_(table), path_(con.path()) {
  if (duckdb_appender_create(con.handle(), nullptr, table.c_str(), &app_) != DuckDBSuccess) {
    const std::string message = one_line(duckdb_appender_error(app_));
    duckdb_appender_destroy(&app_);
    runtime_failure("{}: cannot append to table {}: {}", path_, table, message);
  }
}

Appender::~Appender() {
  if (app_) duckdb_appender_destroy(&app_);  // flushes; errors ignored (see the header)
}

void Appender::fail(std::string_view what) {
  runtime_failure("{}: appending to table {}: {}: {}", path_, table_, what, one_line(duckdb_appender_error(app_)));
}

Appender& Appender::add(int64_t v) {
  if (duckdb_append_int64(app_, v) != DuckDBSuccess) fail("value");
  return *this;
}
Appender& Appender::add(int32_t v) {
  if (duckdb_append_int32(app_, v) != DuckDBSuccess) fail("value");
  return *this;
}
Appender& Appender::add(double v) {
  if (duckdb_append_double(app_, v) != DuckDBSuccess) fail("value");
  return *this;
}
Appender& Appender::add(std::string_view v) {
  if (duckdb_append_varchar_length(app_, v.data(), v.size()) != DuckDBSuccess) fail("value");
  return *this;
}
Appender& Appender::add(bool v) {
  if (duckdb_append_bool(app_, v) != DuckDBSuccess) fail("value");
  return *this;
}
Appender& Appender::add_null() {
  if (duckdb_append_null(app_) != DuckDBSuccess) fail("NULL");
  return *this;
}
void Appender::end_row() {
  if (duckdb_appender_end_row(app_) != DuckDBSuccess) fail("row");
}
void Appender::close() {
  if (duckdb_appender_close(app_) != DuckDBSuccess) fail("flush");
  duckdb_appender_destroy(&app_);
  app_ = nullptr;
}

// ---- messages and quoting ----

std::string one_line(const char* message) {
  if (!message) return "unknown error";
  std::string out;
  std::string_view rest(message);
  while (!rest.empty()) {
    const size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line.find_first_not_of(" \t\r^") == std::string_view::npos) continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    if (!out.empty()) out += ' ';
    out += line;
  }
  return out.empty() ? "unknown error" : out;
}

namespace {
std::string quoted(std::string_view s, char q) {
  std::string out(1, q);
  for (char c : s) {
    out += c;
    if (c == q) out += q;
  }
  out += q;
  return out;
}
}  // namespace

std::string sql_literal(std::string_view s) { return quoted(s, '\''); }
std::string sql_identifier(std::string_view s) { return quoted(s, '"'); }

}  // namespace sparsa::store
