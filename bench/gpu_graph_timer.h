// bench/gpu_graph_timer.h — the GPU benchmarks' timing method (issue #8's anchor): `launches`
// enqueues (each over a different weight buffer) captured into one CUDA graph, replayed `reps`
// times after 3 warm-up replays, each replay timed with CUDA events; the median replay ÷ launches.
// Any CUDA failure prints "<program>: <what>: <message>" and exits 1 (benchmarks are programs,
// not library code).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

namespace sparsa::bench {

inline const char* g_program = "bench";  // set by main() for the error messages

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s: %s\n", g_program, what, cudaGetErrorString(e));
    std::exit(1);
  }
}

inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: %s: cuBLAS status %d\n", g_program, what, static_cast<int>(s));
    std::exit(1);
  }
}

// Median microseconds of one launch; `enqueue(i)` for i < launches enqueues launch i on `stream`.
template <typename Enqueue>
double graph_median_us(cudaStream_t stream, int launches, int reps, Enqueue enqueue) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  for (int i = 0; i < launches; ++i) enqueue(i);
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int w = 0; w < 3; ++w) check(cudaGraphLaunch(exec, stream), "warm-up");
  std::vector<float> ms(static_cast<size_t>(reps));
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(start, stream), "record");
    check(cudaGraphLaunch(exec, stream), "replay");
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    check(cudaEventElapsedTime(&ms[static_cast<size_t>(r)], start, stop), "elapsed");
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[static_cast<size_t>(reps / 2)] * 1e3 / launches;
}

// The fastest of `candidates` (tuning in a benchmark): make(c) gives a plan for config c and
// enqueue(plan, i) enqueues its launch i. Each candidate runs once first (one that fails to launch,
// e.g. a cluster too large to schedule, is skipped), is timed with tune_reps replays, and the
// fastest is timed again with reps. Returns {µs, config}; exits 1 when no candidate runs.
template <typename Config, typename Make, typename Enqueue>
std::pair<double, Config> fastest_config(cudaStream_t stream, int launches, const std::vector<Config>& candidates,
                                         int tune_reps, int reps, Make make, Enqueue enqueue) {
  double best = std::numeric_limits<double>::infinity();
  Config best_config{};
  for (const Config& c : candidates) {
    const auto plan = make(c);
    try {
      enqueue(plan, 0);
      check(cudaStreamSynchronize(stream), "trial launch");
    } catch (const std::exception&) {
      continue;
    }
    const double us = graph_median_us(stream, launches, tune_reps, [&](int i) { enqueue(plan, i); });
    if (us < best) best = us, best_config = c;
  }
  if (!(best < std::numeric_limits<double>::infinity())) {
    std::fprintf(stderr, "%s: no candidate config runs\n", g_program);
    std::exit(1);
  }
  const auto plan = make(best_config);
  return {graph_median_us(stream, launches, reps, [&](int i) { enqueue(plan, i); }), best_config};
}

}  // namespace sparsa::bench
