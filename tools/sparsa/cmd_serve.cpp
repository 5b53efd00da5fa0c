// sparsa serve: the interactive dashboard over a study's database (sparsa/serve.h).
#include <signal.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "commands.h"
#include "sparsa/error.h"
#include "sparsa/serve.h"

namespace sparsa::cli {
namespace {

struct ServeArgs {
  serve::ServeOptions opt;
  std::string db, masks, bench_results;
  bool no_token = false;
};

// The flags that expose the dashboard: a non-loopback --host needs --allow-remote and the token.
void check_exposure(const ServeArgs& a) {
  if (serve::is_loopback_host(a.opt.host)) return;
  if (!a.opt.allow_remote)
    bad_input("--host {}: not a loopback address, so other machines could reach the dashboard; pass --allow-remote "
              "to serve it there (the token stays required)", a.opt.host);
  if (a.no_token) bad_input("--no-token: refused with --host {}, which is not a loopback address", a.opt.host);
}

// Serves until SIGINT / SIGTERM: the signals are blocked in every thread and a waiting thread
// stops the server when one arrives.
void run_serve(ServeArgs& a) {
  a.opt.db = a.db;
  a.opt.masks_dir = a.masks;
  a.opt.bench_results = a.bench_results;
  a.opt.require_token = !a.no_token;
  check_exposure(a);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  serve::Server server(a.opt);
  std::printf("sparsa serve: %s  (database %s, read-only; Ctrl-C stops)\n", server.url().c_str(), a.db.c_str());
  if (!server.token().empty())
    std::printf("  open this URL: it carries the token every API request needs (it changes at each launch)\n");
  std::fflush(stdout);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    server.stop();
  });
  server.run();
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter when run() ended by itself
  waiter.join();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand(
      "serve",
      "An interactive dashboard over a study's database in the browser: runs and perplexities, the matrix "
      "explorer (mask spy images, per-feature metrics), method comparison, co-activation clusters and t-SNE, "
      "activation thresholds, a SQL console and the benchmark results. The database is opened read-only and "
      "sandboxed (no statement can change it or reach other files).");
  cmd->add_option("--db", a->db, "study database (DuckDB file, e.g. study/study.duckdb)")->required();
  cmd->add_option("--host", a->opt.host,
                  "address to listen on (loopback: 127.0.0.1, 127.0.0.2, ::1, localhost); only requests whose Host "
                  "header names this address are answered (plus localhost / 127.0.0.1 / [::1] on a loopback address)")
      ->capture_default_str();
  cmd->add_flag("--allow-remote", a->opt.allow_remote,
                "allow a --host that is not loopback (e.g. 0.0.0.0): other machines can then reach the dashboard, "
                "with the token; use it only on a trusted network");
  cmd->add_flag("--no-token", a->no_token,
                "do not require the per-launch token (by default the printed URL carries ?token=..., which the page "
                "keeps as a cookie and every /api request must carry: cookie or X-Sparsa-Token header); loopback only. "
                "Cross-origin API requests (Origin / Sec-Fetch-Site of another site) are refused either way");
  cmd->add_option("--port", a->opt.port, "port to listen on (0 = any free port)")->capture_default_str();
  cmd->add_option("--masks", a->masks, "folder of the study's mask files (default: masks/ beside the database)");
  cmd->add_option("--bench-results", a->bench_results,
                  "Markdown file shown on the benchmarks page (default: the notes built into the binary, "
                  "bench/RESULTS.md of its source)");
  cmd->add_option("--max-rows", a->opt.limits.max_rows, "rows a SQL console query returns at most")
      ->capture_default_str();
  cmd->add_option("--max-seconds", a->opt.limits.max_seconds, "seconds a query may run before it is interrupted")
      ->capture_default_str();
  cmd->add_option("--max-request-bytes", a->opt.max_request_bytes,
                  "largest request body accepted, counted while it is read (413 beyond, chunked bodies too)")
      ->capture_default_str();
  cmd->add_option("--max-response-bytes", a->opt.max_response_bytes,
                  "largest answer: a query's rows are serialized as they stream and the query is stopped with 413 "
                  "when they pass it")
      ->capture_default_str();
  cmd->add_option("--query-memory", a->opt.query_memory_bytes,
                  "memory DuckDB may use for all queries together (e.g. 512MB, 2GB; at least 16MB); nothing spills "
                  "to disk, a query needing more fails. The server holds at most about query-memory + max-queries x "
                  "max-response-bytes + threads x max-request-bytes")
      ->transform(CLI::AsSizeValue(false))
      ->default_str("1GB");
  cmd->add_option("--query-threads", a->opt.query_threads, "DuckDB threads for all queries together")
      ->capture_default_str();
  cmd->add_option("--max-queries", a->opt.max_queries,
                  "queries running at once; more wait up to --max-seconds, then get 503")
      ->capture_default_str();
  cmd->add_option("--threads", a->opt.threads, "request threads")->capture_default_str();
  cmd->callback([a] { run_serve(*a); });
}
SPARSA_COMMAND(12, register_serve);

}  // namespace sparsa::cli
