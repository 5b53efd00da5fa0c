// sparsa/serve.h — the study dashboard (`sparsa serve`): an HTTP server over a study's DuckDB
// file with a JSON API and the dashboard's pages (docs/serve.md lists the endpoints).
//
// The database is opened Store::Mode::kSandboxed: read-only, no access to other files, locked
// configuration, so no request can change it or read anything else. Pages, scripts and the
// chart library (vega, vega-lite, vega-embed) are embedded in the binary; only those are
// served as files (no path reaches the file system). Mask images are drawn from the mask file a
// prune run records (runs.mask_file); for runs stored without one, from masks_dir's
// <method>_<structure>.safetensors (the study's masks/ folder, sparsa/study.h).
//
// Limits: every SQL query (the console's and the API's own) runs under `limits` (rows, seconds;
// DuckDB is interrupted at the time limit); a request body larger than max_request_bytes is
// refused (413); a response larger than max_response_bytes is refused (413) instead of sent.
// Errors are JSON {"error": message, "status": code}: 400 bad input (bad SQL included), 404
// unknown path / no such run, 405 wrong method, 413 too large, 500 anything else.
//
// Thread safety: requests are served by a pool of `threads` threads sharing the Store (each
// query on its own DuckDB connection). stop() may be called from any thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "sparsa/store.h"

namespace sparsa::serve {

struct ServeOptions {
  std::filesystem::path db;          // the study's DuckDB file
  std::filesystem::path masks_dir;   // for runs without runs.mask_file; empty: masks/ beside the database
  std::filesystem::path bench_results;  // a Markdown file shown on the benchmarks page; empty = the
                                        // notes built into the binary (bench/RESULTS.md)
  std::string host = "127.0.0.1";    // the address to bind; anything else exposes the dashboard
  int port = 8765;                   // 0 = any free port (see Server::port())
  QueryLimits limits{10000, 10.0};   // per SQL query
  size_t max_request_bytes = 64 * 1024;
  size_t max_response_bytes = 64 * 1024 * 1024;
  int threads = 16;                  // request threads
};

class Server {
 public:
  // Opens the database (sandboxed) and binds the socket. Error(kBadInput) for a bad database
  // file or option; Error(kRuntime) when the address cannot be bound (port in use).
  explicit Server(const ServeOptions& options);
  ~Server();  // stops and waits
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;         // the bound port
  std::string url() const;  // "http://HOST:PORT/"

  // Serves requests until stop() is called (from another thread or a signal handler's
  // thread). Returns after the listening socket is closed.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparsa::serve
