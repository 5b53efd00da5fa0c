// sparsa serve: the interactive dashboard over a study's database (sparsa/serve.h).
#include <signal.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "commands.h"
#include "sparsa/serve.h"

namespace sparsa::cli {
namespace {

struct ServeArgs {
  serve::ServeOptions opt;
  std::string db, masks, bench_results;
};

// Serves until SIGINT / SIGTERM: the signals are blocked in every thread and a waiting thread
// stops the server when one arrives.
void run_serve(ServeArgs& a) {
  a.opt.db = a.db;
  a.opt.masks_dir = a.masks;
  a.opt.bench_results = a.bench_results;
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  serve::Server server(a.opt);
  std::printf("sparsa serve: %s  (database %s, read-only; Ctrl-C stops)\n", server.url().c_str(), a.db.c_str());
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
  cmd->add_option("--db", a->db, "the study's DuckDB file (e.g. study/study.duckdb)")->required();
  cmd->add_option("--host", a->opt.host,
                  "address to listen on; anything but 127.0.0.1 / localhost makes the dashboard reachable from "
                  "other machines")
      ->capture_default_str();
  cmd->add_option("--port", a->opt.port, "port to listen on (0 = any free port)")->capture_default_str();
  cmd->add_option("--masks", a->masks, "folder of the study's mask files (default: masks/ beside the database)");
  cmd->add_option("--bench-results", a->bench_results,
                  "Markdown file shown on the benchmarks page (default: the notes built into the binary, "
                  "bench/RESULTS.md of its source)");
  cmd->add_option("--max-rows", a->opt.limits.max_rows, "rows a SQL console query returns at most")
      ->capture_default_str();
  cmd->add_option("--max-seconds", a->opt.limits.max_seconds, "seconds a query may run before it is interrupted")
      ->capture_default_str();
  cmd->add_option("--max-request-bytes", a->opt.max_request_bytes, "largest request body accepted")
      ->capture_default_str();
  cmd->add_option("--max-response-bytes", a->opt.max_response_bytes, "largest response sent")->capture_default_str();
  cmd->add_option("--threads", a->opt.threads, "request threads")->capture_default_str();
  cmd->callback([a] { run_serve(*a); });
}
SPARSA_COMMAND(12, register_serve);

}  // namespace sparsa::cli
