// src/cuda/launch_timer.h — the library's timing method for GPU launches (private to src/cuda):
// a CUDA graph of kTimedLaunches enqueues, one warm-up replay, then `reps` replays each timed with CUDA
// events; the median replay ÷ kTimedLaunches. Used by the GEMV tuner and the measured speed-up.
#pragma once
#ifdef SPARSA_WITH_CUDA

#include "cuda/cuda_check.h"

#include <algorithm>
#include <vector>

namespace sparsa::cuda {

inline constexpr int kTimedLaunches = 16;  // launches per graph

// Median time in seconds of one launch, over `reps` replays of a graph of kTimedLaunches calls of
// enqueue(i, stream) (i = 0 ... kTimedLaunches - 1) captured on a stream of its own.
template <typename Enqueue>
inline double median_launch_seconds(int reps, Enqueue enqueue) {
  cudaStream_t stream{};
  SPARSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph{};
  cudaGraphExec_t exec{};
  cudaEvent_t start{}, stop{};
  std::vector<float> ms;
  try {
    SPARSA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kTimedLaunches; ++i) enqueue(i, stream);
    SPARSA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    SPARSA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    SPARSA_CUDA_CHECK(cudaEventCreate(&start));
    SPARSA_CUDA_CHECK(cudaEventCreate(&stop));
    SPARSA_CUDA_CHECK(cudaGraphLaunch(exec, stream));  // warm-up
    for (int r = 0; r < reps; ++r) {
      SPARSA_CUDA_CHECK(cudaEventRecord(start, stream));
      SPARSA_CUDA_CHECK(cudaGraphLaunch(exec, stream));
      SPARSA_CUDA_CHECK(cudaEventRecord(stop, stream));
      SPARSA_CUDA_CHECK(cudaEventSynchronize(stop));
      float t = 0.0f;
      SPARSA_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
      ms.push_back(t);
    }
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);  // harmless when not capturing
    cudaGetLastError();
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2] / 1e3 / kTimedLaunches;
}

}  // namespace sparsa::cuda

#endif  // SPARSA_WITH_CUDA
