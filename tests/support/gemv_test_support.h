// Helpers shared by the GPU kernel tests (CUDA ops, sparse GEMV): skipping without a device,
// seeded random data, and the parameter of the GEMV kernel tests. Not thread-safe state: none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sparsa/cuda.h"
#include "sparsa/tensor.h"

// Skips the current test when no CUDA device is present (CPU-only builds, CI).
#define SKIP_WITHOUT_GPU() \
  if (::sparsa::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

namespace sparsa::test {

// n values uniform in [lo, hi) from std::mt19937(seed).
std::vector<float> random_uniform(size_t n, float lo, float hi, uint32_t seed);
// n values from N(0, 1), std::mt19937(seed).
std::vector<float> random_normal(size_t n, uint32_t seed);

// A weight matrix Wᵀ [in, out] of `type` (F32, F16 or BF16) with values random_uniform(in · out,
// -1, 1, seed), as raw bytes, and the same values as fp32 after rounding to `type`.
struct RandomWeights {
  std::vector<uint8_t> raw;
  std::vector<float> values;  // [in, out]
};
RandomWeights random_weights(DType type, int64_t in, int64_t out, uint32_t seed);

// One shape of a GEMV kernel test: y [batch, out] = x [batch, in] · Wᵀ [in, out] of `type`.
struct GpuCase {
  DType type;
  int64_t batch, in, out;
  bool every_config;  // time-bounded: only small shapes try every candidate
};
// The test name of a GpuCase: <type>_b<batch>_in<in>_out<out>.
std::string gpu_case_name(const ::testing::TestParamInfo<GpuCase>& info);

}  // namespace sparsa::test
