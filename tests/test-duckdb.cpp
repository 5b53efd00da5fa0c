// Smoke test of the pinned prebuilt DuckDB (scripts/fetch-duckdb.sh) through its C API: the
// library links, reports the pinned version, writes a database file through an appender, and
// reopens it read-only.
#include "test_support.h"

#include <duckdb.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sparsa {
namespace {

// ---- thin RAII owners of the C handles ----

class Database {
 public:
  // Opens (creating if needed) the database file at `path`; read-only when asked.
  Database(const std::string& path, bool read_only) {
    duckdb_config config = nullptr;
    if (duckdb_create_config(&config) != DuckDBSuccess) throw std::runtime_error("duckdb_create_config failed");
    if (read_only && duckdb_set_config(config, "access_mode", "READ_ONLY") != DuckDBSuccess) {
      duckdb_destroy_config(&config);
      throw std::runtime_error("duckdb_set_config(access_mode) failed");
    }
    char* error = nullptr;
    const duckdb_state state = duckdb_open_ext(path.c_str(), &db_, config, &error);
    duckdb_destroy_config(&config);
    if (state != DuckDBSuccess) {
      const std::string message = error ? error : "unknown error";
      duckdb_free(error);
      throw std::runtime_error("duckdb_open_ext(" + path + "): " + message);
    }
  }
  ~Database() { duckdb_close(&db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  duckdb_database handle() const { return db_; }

 private:
  duckdb_database db_ = nullptr;
};

class Connection {
 public:
  explicit Connection(const Database& db) {
    if (duckdb_connect(db.handle(), &con_) != DuckDBSuccess) throw std::runtime_error("duckdb_connect failed");
  }
  ~Connection() { duckdb_disconnect(&con_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  duckdb_connection handle() const { return con_; }

 private:
  duckdb_connection con_ = nullptr;
};

class Result {
 public:
  Result(const Connection& con, const std::string& sql)
      : ok_(duckdb_query(con.handle(), sql.c_str(), &result_) == DuckDBSuccess) {}
  ~Result() { duckdb_destroy_result(&result_); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  bool ok() const { return ok_; }
  std::string error() {
    const char* e = duckdb_result_error(&result_);
    return e ? e : "";
  }
  duckdb_result& raw() { return result_; }

 private:
  duckdb_result result_{};
  bool ok_;
};

void exec(const Connection& con, const std::string& sql) {
  Result r(con, sql);
  ASSERT_TRUE(r.ok()) << sql << ": " << r.error();
}

// ---- the rows this test writes and reads back ----

struct Row {
  int64_t id;
  std::string name;  // short names are inlined in duckdb_string_t, long ones are not
  std::optional<double> score;
  bool operator==(const Row&) const = default;
};

const std::vector<Row> kRows = {
    {1, "q_proj", 0.5},
    {2, "model.layers.0.self_attn.o_proj.weight", -1.25},
    {3, "down", std::nullopt},
    {4, "", 1e300},
};

std::string string_at(duckdb_vector vec, idx_t row) {
  auto* strings = static_cast<duckdb_string_t*>(duckdb_vector_get_data(vec));
  return std::string(duckdb_string_t_data(&strings[row]), duckdb_string_t_length(strings[row]));
}

bool valid_at(duckdb_vector vec, idx_t row) {
  uint64_t* validity = duckdb_vector_get_validity(vec);
  return validity == nullptr || duckdb_validity_row_is_valid(validity, row);
}

// Reads "SELECT id, name, score FROM layers ORDER BY id" chunk by chunk.
std::vector<Row> read_rows(const Connection& con) {
  Result r(con, "SELECT id, name, score FROM layers ORDER BY id");
  EXPECT_TRUE(r.ok()) << r.error();
  std::vector<Row> rows;
  if (!r.ok()) return rows;
  EXPECT_EQ(duckdb_column_type(&r.raw(), 0), DUCKDB_TYPE_BIGINT);
  EXPECT_EQ(duckdb_column_type(&r.raw(), 1), DUCKDB_TYPE_VARCHAR);
  EXPECT_EQ(duckdb_column_type(&r.raw(), 2), DUCKDB_TYPE_DOUBLE);
  while (duckdb_data_chunk chunk = duckdb_fetch_chunk(r.raw())) {
    duckdb_vector ids = duckdb_data_chunk_get_vector(chunk, 0);
    duckdb_vector names = duckdb_data_chunk_get_vector(chunk, 1);
    duckdb_vector scores = duckdb_data_chunk_get_vector(chunk, 2);
    const auto* id_data = static_cast<const int64_t*>(duckdb_vector_get_data(ids));
    const auto* score_data = static_cast<const double*>(duckdb_vector_get_data(scores));
    for (idx_t i = 0; i < duckdb_data_chunk_get_size(chunk); ++i) {
      rows.push_back({id_data[i], string_at(names, i),
                      valid_at(scores, i) ? std::optional<double>(score_data[i]) : std::nullopt});
    }
    duckdb_destroy_data_chunk(&chunk);
  }
  return rows;
}

void append_rows(const Connection& con, const std::vector<Row>& rows) {
  duckdb_appender appender = nullptr;
  ASSERT_EQ(duckdb_appender_create(con.handle(), nullptr, "layers", &appender), DuckDBSuccess);
  for (const Row& row : rows) {
    EXPECT_EQ(duckdb_append_int64(appender, row.id), DuckDBSuccess);
    EXPECT_EQ(duckdb_append_varchar(appender, row.name.c_str()), DuckDBSuccess);
    EXPECT_EQ(row.score ? duckdb_append_double(appender, *row.score) : duckdb_append_null(appender),
              DuckDBSuccess);
    EXPECT_EQ(duckdb_appender_end_row(appender), DuckDBSuccess);
  }
  EXPECT_EQ(duckdb_appender_close(appender), DuckDBSuccess);
  EXPECT_EQ(duckdb_appender_destroy(&appender), DuckDBSuccess);
}

TEST(DuckDB, IsThePinnedVersion) { EXPECT_EQ(std::string(duckdb_library_version()), "v1.4.4"); }

TEST(DuckDB, AppendsQueriesAndReopensReadOnly) {
  test::TempDir dir;
  const std::string path = (dir / "smoke.duckdb").string();

  {
    Database db(path, /*read_only=*/false);
    Connection con(db);
    exec(con, "CREATE TABLE layers (id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, score DOUBLE)");
    append_rows(con, kRows);
    EXPECT_EQ(read_rows(con), kRows);

    Result sum(con, "SELECT count(*), sum(score) FROM layers");
    ASSERT_TRUE(sum.ok()) << sum.error();
    duckdb_data_chunk chunk = duckdb_fetch_chunk(sum.raw());
    ASSERT_NE(chunk, nullptr);
    EXPECT_EQ(static_cast<int64_t*>(duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, 0)))[0], 4);
    EXPECT_EQ(static_cast<double*>(duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, 1)))[0],
              0.5 - 1.25 + 1e300);
    duckdb_destroy_data_chunk(&chunk);
  }

  {
    Database db(path, /*read_only=*/true);
    Connection con(db);
    EXPECT_EQ(read_rows(con), kRows);
    Result insert(con, "INSERT INTO layers VALUES (5, 'up', 2.0)");
    EXPECT_FALSE(insert.ok());
    EXPECT_NE(insert.error().find("read-only"), std::string::npos) << insert.error();
  }
}

TEST(DuckDB, ReportsSqlErrors) {
  Database db(":memory:", /*read_only=*/false);
  Connection con(db);
  Result r(con, "SELECT * FROM no_such_table");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("no_such_table"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace sparsa
