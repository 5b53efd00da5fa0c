// Store::query_json: one read-only statement, bounded in rows and time, rows as JSON.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "sparsa/error.h"
#include "sparsa/store.h"
#include "store/store_impl.h"

namespace sparsa {
namespace {

// The column types query_json converts, with the names it reports.
std::string_view supported_type_name(duckdb_type t) {
  switch (t) {
    case DUCKDB_TYPE_BOOLEAN: return "BOOLEAN";
    case DUCKDB_TYPE_TINYINT: return "TINYINT";
    case DUCKDB_TYPE_SMALLINT: return "SMALLINT";
    case DUCKDB_TYPE_INTEGER: return "INTEGER";
    case DUCKDB_TYPE_BIGINT: return "BIGINT";
    case DUCKDB_TYPE_UTINYINT: return "UTINYINT";
    case DUCKDB_TYPE_USMALLINT: return "USMALLINT";
    case DUCKDB_TYPE_UINTEGER: return "UINTEGER";
    case DUCKDB_TYPE_UBIGINT: return "UBIGINT";
    case DUCKDB_TYPE_HUGEINT: return "HUGEINT";
    case DUCKDB_TYPE_FLOAT: return "FLOAT";
    case DUCKDB_TYPE_DOUBLE: return "DOUBLE";
    case DUCKDB_TYPE_DECIMAL: return "DECIMAL";
    case DUCKDB_TYPE_VARCHAR: return "VARCHAR";
    case DUCKDB_TYPE_DATE: return "DATE";
    case DUCKDB_TYPE_TIMESTAMP: return "TIMESTAMP";
    case DUCKDB_TYPE_TIMESTAMP_TZ: return "TIMESTAMP WITH TIME ZONE";
    case DUCKDB_TYPE_ENUM: return "ENUM";
    default: return {};
  }
}

std::string_view statement_type_name(duckdb_statement_type t) {
  switch (t) {
    case DUCKDB_STATEMENT_TYPE_INSERT: return "INSERT";
    case DUCKDB_STATEMENT_TYPE_UPDATE: return "UPDATE";
    case DUCKDB_STATEMENT_TYPE_DELETE: return "DELETE";
    case DUCKDB_STATEMENT_TYPE_CREATE:
    case DUCKDB_STATEMENT_TYPE_CREATE_FUNC: return "CREATE";
    case DUCKDB_STATEMENT_TYPE_DROP: return "DROP";
    case DUCKDB_STATEMENT_TYPE_ALTER: return "ALTER";
    case DUCKDB_STATEMENT_TYPE_COPY: return "COPY";
    case DUCKDB_STATEMENT_TYPE_EXPORT: return "EXPORT";
    case DUCKDB_STATEMENT_TYPE_ATTACH: return "ATTACH";
    case DUCKDB_STATEMENT_TYPE_DETACH: return "DETACH";
    case DUCKDB_STATEMENT_TYPE_LOAD: return "LOAD / INSTALL";
    case DUCKDB_STATEMENT_TYPE_PRAGMA: return "PRAGMA";
    case DUCKDB_STATEMENT_TYPE_SET:
    case DUCKDB_STATEMENT_TYPE_VARIABLE_SET: return "SET";
    case DUCKDB_STATEMENT_TYPE_TRANSACTION: return "a transaction statement";
    default: return "this kind of";
  }
}

// Interrupts the connection's query when `seconds` pass before stop() is called.
class Watchdog {
 public:
  Watchdog(store::Connection& con, double seconds)
      : thread_([this, target = &con, seconds] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return stopped_; })) {
            fired_ = true;
            target->interrupt();
          }
        }) {}
  ~Watchdog() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool fired() {
    std::lock_guard lock(mutex_);
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false, fired_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

struct Column {
  duckdb_type type;
  duckdb_logical_type logical;  // owned
  uint8_t decimal_scale = 0;
  duckdb_type internal = DUCKDB_TYPE_INVALID;  // DECIMAL / ENUM storage type
};

template <typename T>
T at(duckdb_vector v, idx_t row) {
  return static_cast<const T*>(duckdb_vector_get_data(v))[row];
}

nlohmann::json decimal_cell(duckdb_vector v, const Column& c, idx_t row) {
  double unscaled = 0;
  switch (c.internal) {
    case DUCKDB_TYPE_SMALLINT: unscaled = at<int16_t>(v, row); break;
    case DUCKDB_TYPE_INTEGER: unscaled = at<int32_t>(v, row); break;
    case DUCKDB_TYPE_BIGINT: unscaled = static_cast<double>(at<int64_t>(v, row)); break;
    default: unscaled = duckdb_hugeint_to_double(at<duckdb_hugeint>(v, row)); break;
  }
  return unscaled / std::pow(10.0, c.decimal_scale);
}

nlohmann::json enum_cell(duckdb_vector v, const Column& c, idx_t row) {
  idx_t index = 0;
  switch (c.internal) {
    case DUCKDB_TYPE_UTINYINT: index = at<uint8_t>(v, row); break;
    case DUCKDB_TYPE_USMALLINT: index = at<uint16_t>(v, row); break;
    default: index = at<uint32_t>(v, row); break;
  }
  char* s = duckdb_enum_dictionary_value(c.logical, index);
  std::string out = s ? s : "";
  duckdb_free(s);
  return out;
}

std::string timestamp_text(int64_t micros) {
  const duckdb_timestamp_struct t = duckdb_from_timestamp(duckdb_timestamp{micros});
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}", t.date.year, t.date.month, t.date.day, t.time.hour,
                     t.time.min, t.time.sec, t.time.micros);
}

nlohmann::json cell(duckdb_vector v, const Column& c, idx_t row) {
  uint64_t* validity = duckdb_vector_get_validity(v);
  if (validity && !duckdb_validity_row_is_valid(validity, row)) return nullptr;
  switch (c.type) {
    case DUCKDB_TYPE_BOOLEAN: return at<bool>(v, row);
    case DUCKDB_TYPE_TINYINT: return at<int8_t>(v, row);
    case DUCKDB_TYPE_SMALLINT: return at<int16_t>(v, row);
    case DUCKDB_TYPE_INTEGER: return at<int32_t>(v, row);
    case DUCKDB_TYPE_BIGINT: return at<int64_t>(v, row);
    case DUCKDB_TYPE_UTINYINT: return at<uint8_t>(v, row);
    case DUCKDB_TYPE_USMALLINT: return at<uint16_t>(v, row);
    case DUCKDB_TYPE_UINTEGER: return at<uint32_t>(v, row);
    case DUCKDB_TYPE_UBIGINT: return at<uint64_t>(v, row);
    case DUCKDB_TYPE_HUGEINT: {
      const duckdb_hugeint h = at<duckdb_hugeint>(v, row);
      if ((h.upper == 0 && h.lower <= static_cast<uint64_t>(INT64_MAX)) ||
          (h.upper == -1 && h.lower > static_cast<uint64_t>(INT64_MAX)))
        return static_cast<int64_t>(h.lower);
      return duckdb_hugeint_to_double(h);
    }
    case DUCKDB_TYPE_FLOAT: return at<float>(v, row);
    case DUCKDB_TYPE_DOUBLE: return at<double>(v, row);
    case DUCKDB_TYPE_DECIMAL: return decimal_cell(v, c, row);
    case DUCKDB_TYPE_VARCHAR: {
      auto* s = static_cast<duckdb_string_t*>(duckdb_vector_get_data(v));
      return std::string(duckdb_string_t_data(&s[row]), duckdb_string_t_length(s[row]));
    }
    case DUCKDB_TYPE_DATE: {
      const duckdb_date_struct d = duckdb_from_date(at<duckdb_date>(v, row));
      return fmt::format("{:04}-{:02}-{:02}", d.year, d.month, d.day);
    }
    case DUCKDB_TYPE_TIMESTAMP: return timestamp_text(at<int64_t>(v, row));
    case DUCKDB_TYPE_TIMESTAMP_TZ: return timestamp_text(at<int64_t>(v, row)) + "Z";
    case DUCKDB_TYPE_ENUM: return enum_cell(v, c, row);
    default: SPARSA_ASSERT(false);
  }
  return nullptr;
}

// Prepares the only statement of `sql`, which must be a SELECT or EXPLAIN.
duckdb_prepared_statement prepare_read_only(store::Connection& con, const std::string& sql, const std::string& path) {
  duckdb_extracted_statements statements = nullptr;
  const idx_t n = duckdb_extract_statements(con.handle(), sql.c_str(), &statements);
  if (n != 1) {
    const std::string message = n == 0 ? store::one_line(duckdb_extract_statements_error(statements))
                                       : fmt::format("{} statements given, one expected", n);
    duckdb_destroy_extracted(&statements);
    bad_input("{}: query: {}", path, message);
  }
  duckdb_prepared_statement stmt = nullptr;
  const duckdb_state state = duckdb_prepare_extracted_statement(con.handle(), statements, 0, &stmt);
  duckdb_destroy_extracted(&statements);
  if (state != DuckDBSuccess) {
    const std::string message = store::one_line(duckdb_prepare_error(stmt));
    duckdb_destroy_prepare(&stmt);
    bad_input("{}: query: {}", path, message);
  }
  const duckdb_statement_type type = duckdb_prepared_statement_type(stmt);
  if (type != DUCKDB_STATEMENT_TYPE_SELECT && type != DUCKDB_STATEMENT_TYPE_EXPLAIN) {
    duckdb_destroy_prepare(&stmt);
    bad_input("{}: query: {} statements are not allowed here, only SELECT and EXPLAIN", path,
              statement_type_name(type));
  }
  return stmt;
}

// The columns of a query: their names and type names as query_json reports them.
struct Header {
  nlohmann::json names = nlohmann::json::array(), types = nlohmann::json::array();
};

// Runs one read-only statement under `limits` (rows, seconds): `on_header` once, then `on_row`
// with each row (a JSON array) as DuckDB streams them. Returns whether rows were left out.
template <typename OnHeader, typename OnRow>
bool stream_query(const store::Database& db, const std::string& path, std::string_view sql, const QueryLimits& limits,
                  OnHeader&& on_header, OnRow&& on_row) {
  store::Connection con(db);
  duckdb_prepared_statement stmt = prepare_read_only(con, std::string(sql), path);

  Watchdog watchdog(con, limits.max_seconds);
  duckdb_result result{};
  const bool executed = duckdb_execute_prepared_streaming(stmt, &result) == DuckDBSuccess;
  duckdb_destroy_prepare(&stmt);
  std::vector<Column> columns;
  // Frees the result and the column types on every way out.
  struct Cleanup {
    duckdb_result& r;
    std::vector<Column>& cols;
    ~Cleanup() {
      for (Column& c : cols) duckdb_destroy_logical_type(&c.logical);
      duckdb_destroy_result(&r);
    }
  } cleanup{result, columns};
  auto fail = [&](const char* error) {
    watchdog.stop();
    if (watchdog.fired()) bad_input("{}: query: stopped after the {} s time limit", path, limits.max_seconds);
    bad_input("{}: query: {}", path, store::one_line(error));
  };
  if (!executed) fail(duckdb_result_error(&result));

  Header header;
  for (idx_t i = 0; i < duckdb_column_count(&result); ++i) {
    Column c{duckdb_column_type(&result, i), duckdb_column_logical_type(&result, i)};
    columns.push_back(c);
    const std::string name = duckdb_column_name(&result, i);
    const std::string_view type_name = supported_type_name(c.type);
    if (type_name.empty())
      bad_input("{}: query: column '{}' has a type that query_json does not convert; cast it, e.g. {}::VARCHAR", path,
                name, name);
    if (c.type == DUCKDB_TYPE_DECIMAL) {
      columns.back().decimal_scale = duckdb_decimal_scale(c.logical);
      columns.back().internal = duckdb_decimal_internal_type(c.logical);
    } else if (c.type == DUCKDB_TYPE_ENUM) {
      columns.back().internal = duckdb_enum_internal_type(c.logical);
    }
    header.names.push_back(name);
    header.types.push_back(type_name);
  }
  on_header(std::move(header));

  int64_t rows = 0;
  bool truncated = false;
  while (!truncated) {
    // Owned by `held`, so a row that throws (an answer over its byte limit) frees the chunk too.
    duckdb_data_chunk chunk = duckdb_fetch_chunk(result);
    if (!chunk) break;
    struct ChunkGuard {
      duckdb_data_chunk& c;
      ~ChunkGuard() { duckdb_destroy_data_chunk(&c); }
    } held{chunk};
    const idx_t n = duckdb_data_chunk_get_size(chunk);
    for (idx_t r = 0; r < n; ++r) {
      if (rows >= limits.max_rows) {
        truncated = true;
        break;
      }
      nlohmann::json row = nlohmann::json::array();
      for (idx_t c = 0; c < columns.size(); ++c) row.push_back(cell(duckdb_data_chunk_get_vector(chunk, c), columns[c], r));
      ++rows;
      on_row(std::move(row));
    }
  }
  if (const char* e = duckdb_result_error(&result); e && *e) fail(e);
  watchdog.stop();
  return truncated;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// JSON text appended piece by piece, refused (QueryTooLarge) once it would pass `max_bytes`.
class BoundedText {
 public:
  BoundedText(size_t max_bytes, const std::string& path) : max_(max_bytes), path_(path) {}
  void append(std::string_view piece, int64_t rows) {
    if (max_ > 0 && text_.size() + piece.size() > max_)
      throw QueryTooLarge(fmt::format("{}: query: the answer passed the limit of {} bytes after {} rows; select "
                                      "fewer rows or columns", path_, max_, rows));
    text_ += piece;
  }
  std::string take() { return std::move(text_); }

 private:
  size_t max_;
  const std::string& path_;
  std::string text_;
};

}  // namespace

nlohmann::json Store::query_json(std::string_view sql, const QueryLimits& limits) const {
  const auto start = std::chrono::steady_clock::now();
  nlohmann::json out;
  nlohmann::json rows = nlohmann::json::array();
  const bool truncated = stream_query(
      impl_->db, impl_->path.string(), sql, limits,
      [&](Header h) { out = {{"columns", std::move(h.names)}, {"types", std::move(h.types)}}; },
      [&](nlohmann::json row) { rows.push_back(std::move(row)); });
  out["rows"] = std::move(rows);
  out["truncated"] = truncated;
  out["seconds"] = seconds_since(start);
  return out;
}

std::string Store::query_json_text(std::string_view sql, const QueryLimits& limits) const {
  const auto start = std::chrono::steady_clock::now();
  const std::string path = impl_->path.string();
  BoundedText text(limits.max_bytes, path);
  int64_t rows = 0;
  const bool truncated = stream_query(
      impl_->db, path, sql, limits,
      [&](Header h) {
        text.append(fmt::format(R"({{"columns":{},"types":{},"rows":[)", h.names.dump(), h.types.dump()), 0);
      },
      [&](const nlohmann::json& row) {
        text.append(rows > 0 ? "," : "", rows);
        text.append(row.dump(), rows);
        ++rows;
      });
  text.append(fmt::format(R"(],"truncated":{},"seconds":{}}})", truncated, nlohmann::json(seconds_since(start)).dump()),
              rows);
  return text.take();
}

}  // namespace sparsa
