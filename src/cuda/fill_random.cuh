// src/cuda/fill_random.cuh — device buffers filled with reproducible random values (op:
// fill_random.cu), for synthetic weights, the GEMV tuner and the benchmarks. Each element is a
// counter-based hash of (seed, index), so the values do not depend on the launch shape. CPU
// reference: the same hash on the host (test-gpu-ops). The public face is
// sparsa::fill_uniform_cuda (sparsa/cuda.h).
#pragma once

#include <cstdint>

#include "cuda/elem.h"

namespace sparsa::cuda {

// data [n] of `e` = uniform in [-1, 1) from 24 random bits, never exactly 0 (a 0 draw becomes 0.5),
// rounded to `e`. Enqueues on `stream` (a cudaStream_t; nullptr: the default stream).
void launch_fill_uniform(void* data, Elem e, int64_t n, uint32_t seed, void* stream);

// data [n] of `e` = stddev · N(0, 1) (Box–Muller on two 24-bit uniforms of one 64-bit hash),
// rounded to `e`. Enqueues on `stream`.
void launch_fill_normal(void* data, Elem e, int64_t n, uint64_t seed, float stddev, void* stream);

}  // namespace sparsa::cuda
