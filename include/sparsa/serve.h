// sparsa/serve.h — the study dashboard (`sparsa serve`): an HTTP server over a study's DuckDB
// file with a JSON API and the dashboard's pages (docs/serve.md lists the endpoints).
//
// The database file itself is never opened (a study still writing it keeps it locked): the
// dashboard serves private copies, a new one whenever the file or its write-ahead log changes and
// a copy can be made that the writer did not change meanwhile (src/serve/snapshot.h), so a
// running study's new runs appear at the next request. Each copy is opened
// Store::Mode::kSandboxed: read-only, no access to other files, locked configuration, so no
// request can change it or read anything else. /api/info says which copy ("snapshot": 1, 2, ...). Pages, scripts and the
// chart library (vega, vega-lite, vega-embed) are embedded in the binary; only those are
// served as files (no path reaches the file system). Mask images are drawn from the mask file a
// prune run records (runs.mask_file); for runs stored without one, from masks_dir's
// <method>_<structure>.safetensors (the study's masks/ folder, sparsa/study.h).
//
// Access: the Host header must name the bound address (plus localhost / 127.0.0.1 / [::1] on a
// loopback address; any IP address, never a DNS name, on 0.0.0.0 / ::), so a page elsewhere cannot
// reach the dashboard through a DNS name rebound to it (403). API requests (/api/...) must come
// from the dashboard's own pages: a Sec-Fetch-Site other than same-origin / none, or an Origin
// other than http://<Host>, is refused (403), GET and POST alike. Unless require_token is off,
// each launch draws a random token (url() carries it as ?token=...); API requests must carry it
// in the X-Sparsa-Token header or the cookie sparsa_token_<port> (401 without it), which a page
// request with ?token=<the token> sets (HttpOnly, SameSite=Strict) while redirecting to the same
// page without it. Pages and scripts (no data) are served without the token. Binding an address
// that is not loopback needs allow_remote, and keeps the token.
//
// Limits: every SQL query (the console's and the API's own) runs under `limits` (rows, seconds;
// DuckDB is interrupted at the time limit); at most max_queries run at once (others wait up to
// the time limit, then 503); DuckDB uses at most query_memory_bytes and query_threads threads
// for all of them together (nothing spills to disk; a query needing more fails with 400). A
// request body larger than max_request_bytes is refused (413) while it is read, whatever its
// transfer encoding; an answer is serialized row by row and refused (413) as soon as it passes
// max_response_bytes, so a request holds at most about that much. Memory bound of the server:
// query_memory_bytes + max_queries x max_response_bytes + threads x max_request_bytes (plus
// the mask of one image per running image request); while requests on an older snapshot finish,
// its DuckDB has its own query_memory_bytes. Disk: one copy of the database (two while switching)
// in a private folder under $TMPDIR, deleted at exit.
// Errors are JSON {"error": message, "status": code}: 400 bad input (bad SQL included), 401 no
// token, 403 a refused Host or origin, 404 unknown path / no such run, 405 wrong method, 413 too
// large, 503 busy, 500 anything else.
//
// Thread safety: requests are served by a pool of `threads` threads sharing the Store (each
// query on its own DuckDB connection). stop() may be called from any thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "sparsa/store.h"

namespace sparsa::serve {

struct ServeOptions {
  std::filesystem::path db;          // the study's DuckDB file
  std::filesystem::path masks_dir;   // for runs without runs.mask_file; empty: masks/ beside the database
  std::filesystem::path bench_results;  // a Markdown file shown on the benchmarks page; empty = the
                                        // notes built into the binary (bench/RESULTS.md)
  std::string host = "127.0.0.1";    // the address to bind (a name, IPv4 or IPv6 address)
  bool allow_remote = false;         // must be set to bind an address that is not loopback
  int port = 8765;                   // 0 = any free port (see Server::port())
  bool require_token = true;         // off: no token (refused unless the address is loopback)
  std::string token;                 // the token; empty = a random one (random_token())
  QueryLimits limits{10000, 10.0};   // per SQL query
  size_t max_request_bytes = 64 * 1024;
  size_t max_response_bytes = 64 * 1024 * 1024;
  size_t query_memory_bytes = size_t{1} << 30;  // DuckDB's memory_limit, all queries together
  int query_threads = 2;             // DuckDB's threads, all queries together
  int max_queries = 4;               // queries running at once
  int threads = 16;                  // request threads
};

// Whether `host` is a loopback address or a name whose every address is loopback
// (127.0.0.0/8, ::1, localhost); false for 0.0.0.0 / ::.
bool is_loopback_host(std::string_view host);

class Server {
 public:
  // Copies and opens the database (sandboxed) and binds the socket. Error(kBadInput) for a bad database
  // file or option (a non-loopback host without allow_remote, no token on one); Error(kRuntime)
  // when the address cannot be bound (port in use).
  explicit Server(const ServeOptions& options);
  ~Server();  // stops and waits
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;           // the bound port
  std::string url() const;    // "http://HOST:PORT/", plus "?token=TOKEN" when a token is required
  const std::string& token() const;  // empty when none is required

  // Serves requests until stop() is called (from another thread or a signal handler's
  // thread). Returns after the listening socket is closed.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparsa::serve
