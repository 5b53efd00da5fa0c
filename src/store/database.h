// Thin RAII owners of DuckDB C API handles, used only inside src/store/. Every failure throws
// sparsa::Error(kRuntime) prefixed with the caller's context (usually the database path),
// except where a function says otherwise.
//
// Thread safety: a Database may be shared; a Connection and everything made from it
// (Result, Prepared, Appender) belong to one thread at a time (Connection::interrupt() is
// the exception: any thread may call it).
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparsa::store {

class Database {
 public:
  // Opens `path` with DuckDB configuration options (name, value). Throws Error(kBadInput)
  // when the file exists but is not a DuckDB database (or is missing in read-only mode),
  // Error(kRuntime) for other failures (e.g. a lock held by another process).
  Database(const std::string& path, const std::vector<std::pair<std::string, std::string>>& config);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  duckdb_database handle() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  duckdb_database db_ = nullptr;
  std::string path_;
};

// A query result; ok() false carries DuckDB's error message.
class Result {
 public:
  Result() = default;
  ~Result();
  Result(Result&& other) noexcept;
  Result& operator=(Result&&) = delete;
  Result(const Result&) = delete;

  bool ok() const { return ok_; }
  std::string error() const;
  duckdb_result& raw() { return result_; }
  // The single value of a one-row, one-column result (BIGINT-compatible / VARCHAR); nullopt
  // for NULL or no row.
  std::optional<int64_t> scalar_int();
  std::optional<std::string> scalar_string();

 private:
  friend class Connection;
  friend class Prepared;
  duckdb_result result_{};
  bool ok_ = false;
  bool owned_ = false;
};

class Connection {
 public:
  explicit Connection(const Database& db);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  duckdb_connection handle() const { return con_; }
  const std::string& path() const { return path_; }
  // Runs `sql` (one or more statements); throws Error(kRuntime) "<path>: <what>: <DuckDB message>".
  void exec(std::string_view sql, std::string_view what);
  // Runs `sql` and returns the result, successful or not (the caller decides).
  Result query(std::string_view sql);
  // Stops the query running on this connection (safe from another thread).
  void interrupt() { duckdb_interrupt(con_); }

 private:
  duckdb_connection con_ = nullptr;
  std::string path_;
};

// A prepared statement with positional parameters ($1 = index 1).
class Prepared {
 public:
  Prepared(Connection& con, std::string_view sql);
  ~Prepared();
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;

  Prepared& bind(idx_t i, int64_t v);
  Prepared& bind(idx_t i, uint64_t v);
  Prepared& bind(idx_t i, double v);
  Prepared& bind(idx_t i, std::string_view v);
  Prepared& bind_text_or_null(idx_t i, std::string_view v);  // NULL when v is empty
  Prepared& bind_timestamp_us(idx_t i, int64_t micros_since_epoch);
  Prepared& bind_null(idx_t i);
  template <typename T>
  Prepared& bind(idx_t i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }
  // Executes; throws Error(kRuntime) "<path>: <what>: <message>" on failure.
  Result run(std::string_view what);

 private:
  static void check(duckdb_state s);
  duckdb_prepared_statement stmt_ = nullptr;
  std::string path_;
};

// Appends whole rows to one table; values are given column by column in table order.
// close() flushes (constraint violations surface there) and is called by the destructor
// when the caller did not (errors then ignored: the transaction is being abandoned).
class Appender {
 public:
  Appender(Connection& con, const std::string& table);
  ~Appender();
  Appender(const Appender&) = delete;
  Appender& operator=(const Appender&) = delete;

  Appender& add(int64_t v);
  Appender& add(int32_t v);
  Appender& add(double v);
  Appender& add(std::string_view v);
  Appender& add(bool v);
  Appender& add_null();
  template <typename T>
  Appender& add(const std::optional<T>& v) {
    return v ? add(*v) : add_null();
  }
  void end_row();
  void close();

 private:
  [[noreturn]] void fail(std::string_view what);
  duckdb_appender app_ = nullptr;
  std::string table_, path_;
};

// DuckDB's message on one line: lines joined with spaces, caret-marker lines dropped
// ("Catalog Error: ... LINE 1: SELECT * FROM t"); "unknown error" for null.
std::string one_line(const char* message);

// Quotes `s` as an SQL string literal ('it''s').
std::string sql_literal(std::string_view s);
// Quotes `s` as an SQL identifier ("name").
std::string sql_identifier(std::string_view s);

}  // namespace sparsa::store
