# DuckDB through its stable C API, from the pinned prebuilt library that scripts/fetch-duckdb.sh
# puts in third_party/duckdb/ (Debian has no DuckDB package).
set(SPARSA_DUCKDB_DIR "${CMAKE_SOURCE_DIR}/third_party/duckdb" CACHE PATH "Folder with libduckdb.so and include/duckdb.h")
if(NOT EXISTS "${SPARSA_DUCKDB_DIR}/libduckdb.so" OR NOT EXISTS "${SPARSA_DUCKDB_DIR}/include/duckdb.h")
  message(FATAL_ERROR "DuckDB not found in ${SPARSA_DUCKDB_DIR}: run scripts/fetch-duckdb.sh (or scripts/setup.sh)")
endif()
add_library(sparsa::duckdb SHARED IMPORTED)
set_target_properties(sparsa::duckdb PROPERTIES
  IMPORTED_LOCATION "${SPARSA_DUCKDB_DIR}/libduckdb.so"
  INTERFACE_INCLUDE_DIRECTORIES "${SPARSA_DUCKDB_DIR}/include")
