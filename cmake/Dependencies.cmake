# Third-party libraries, all from Debian packages (see scripts/setup.sh).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 QUIET CONFIG)
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
endif()

# OpenBLAS: prefer the OpenMP build so BLAS threads and our own OpenMP loops share one pool.
find_library(SPARSA_OPENBLAS_LIB NAMES openblas
  PATHS /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/aarch64-linux-gnu/openblas-openmp
  NO_DEFAULT_PATH)
if(NOT SPARSA_OPENBLAS_LIB)
  find_library(SPARSA_OPENBLAS_LIB NAMES openblas REQUIRED)
endif()
find_path(SPARSA_CBLAS_INCLUDE cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp
  NO_DEFAULT_PATH)
if(NOT SPARSA_CBLAS_INCLUDE)
  find_path(SPARSA_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas REQUIRED)
endif()
add_library(sparsa::blas INTERFACE IMPORTED)
target_link_libraries(sparsa::blas INTERFACE ${SPARSA_OPENBLAS_LIB})
target_include_directories(sparsa::blas INTERFACE ${SPARSA_CBLAS_INCLUDE})
message(STATUS "sparsa: OpenBLAS ${SPARSA_OPENBLAS_LIB}")

find_library(SPARSA_PCRE2_LIB NAMES pcre2-8 REQUIRED)
find_path(SPARSA_PCRE2_INCLUDE pcre2.h REQUIRED)
add_library(sparsa::pcre2 INTERFACE IMPORTED)
target_link_libraries(sparsa::pcre2 INTERFACE ${SPARSA_PCRE2_LIB})
target_include_directories(sparsa::pcre2 INTERFACE ${SPARSA_PCRE2_INCLUDE})
target_compile_definitions(sparsa::pcre2 INTERFACE PCRE2_CODE_UNIT_WIDTH=8)

# libzip reads torch .pt archives; cairo draws the PNG figures; utf8proc holds the Unicode data
# of the tokenizers' normalizers (NFC, NFKC, lowercase, ...).
find_package(PkgConfig REQUIRED)
pkg_check_modules(SPARSA_LIBZIP REQUIRED IMPORTED_TARGET libzip)
pkg_check_modules(SPARSA_UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(SPARSA_CAIRO REQUIRED IMPORTED_TARGET cairo)
add_library(sparsa::zip ALIAS PkgConfig::SPARSA_LIBZIP)
add_library(sparsa::utf8proc ALIAS PkgConfig::SPARSA_UTF8PROC)
add_library(sparsa::cairo ALIAS PkgConfig::SPARSA_CAIRO)
# cpp-httplib serves the dashboard (`sparsa serve`); Debian builds it as a library whose
# pkg-config flags (TLS / compression support) must match the header's configuration.
pkg_check_modules(SPARSA_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
add_library(sparsa::httplib ALIAS PkgConfig::SPARSA_HTTPLIB)
