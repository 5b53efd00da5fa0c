// The CUDA ops (sparsa/cuda.h) against their CPU references (sparsa/ops.h) on random inputs with
// odd sizes. Every GPU test skips when no CUDA device is present (CPU-only builds, CI).
//
// Tolerances, per element, |gpu - cpu| <= atol + rtol * |cpu|:
//   rmsnorm   atol 1e-6, rtol 1e-5  (sum of squares reduced in a different order)
//   silu_mul  atol 1e-7, rtol 2e-6  (CUDA expf is within 2 ulp, glibc within 1)
//   rope      atol 1e-6, rtol 1e-5  (angles are bit-identical; sin/cos differ by a few ulp, and
//                                    the GPU fuses a * c - b * s)
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/ops.h"
#include "gemv_test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace sparsa {
namespace {

struct Tolerance {
  float atol;
  float rtol;
};

// Relative errors are summarised over |want| >= kRelFloor: below it (cancellation in rope,
// silu near 0) only the absolute error means anything.
constexpr double kRelFloor = 1e-3;

std::string scientific(double v) {
  std::ostringstream s;
  s << std::scientific << std::setprecision(2) << v;
  return s.str();
}

// Expects got ≈ want element-wise; records the worst absolute and relative errors as test
// properties (see --gtest_output=xml) and reports them on failure.
void expect_close(const std::vector<float>& want, const std::vector<float>& got, Tolerance tol) {
  ASSERT_EQ(want.size(), got.size());
  double max_abs = 0.0, max_rel = 0.0;
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    max_abs = std::max(max_abs, err);
    if (std::abs(want[i]) >= kRelFloor) max_rel = std::max(max_rel, err / std::abs(want[i]));
    const bool ok = err <= tol.atol + tol.rtol * std::abs(want[i]);  // false for NaN
    if (!ok && bad++ == 0) first_bad = i;
  }
  ::testing::Test::RecordProperty("max_abs_err", scientific(max_abs));
  ::testing::Test::RecordProperty("max_rel_err", scientific(max_rel));
  EXPECT_EQ(bad, 0u) << "first mismatch at " << first_bad << ": cpu " << want[first_bad] << " gpu "
                     << got[first_bad] << "; max abs err " << max_abs << ", max rel err " << max_rel;
}

const Tolerance kRmsnormTol{1e-6f, 1e-5f};
const Tolerance kSiluMulTol{1e-7f, 2e-6f};
const Tolerance kRopeTol{1e-6f, 1e-5f};

// ---- rmsnorm ----

struct RmsnormCase {
  int64_t n_tokens;
  int64_t dim;
  float eps;
};

class RmsnormCuda : public ::testing::TestWithParam<RmsnormCase> {};

TEST_P(RmsnormCuda, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const auto [n_tokens, dim, eps] = GetParam();
  const auto x = test::random_uniform(n_tokens * dim, -3.0f, 3.0f, 1);  // [n_tokens, dim]
  const auto w = test::random_uniform(dim, 0.5f, 1.5f, 2);              // [dim]
  std::vector<float> want(x.size());
  rmsnorm(x.data(), w.data(), want.data(), n_tokens, dim, eps);

  DeviceBuffer<float> dx(x), dw(w), dy(x.size());
  rmsnorm_cuda(dx.data(), dw.data(), dy.data(), n_tokens, dim, eps);
  expect_close(want, dy.download(), kRmsnormTol);

  rmsnorm_cuda(dx.data(), dw.data(), dx.data(), n_tokens, dim, eps);  // in place: y aliases x
  expect_close(want, dx.download(), kRmsnormTol);
}

INSTANTIATE_TEST_SUITE_P(OddSizes, RmsnormCuda,
                         ::testing::Values(RmsnormCase{1, 63, 1e-5f}, RmsnormCase{7, 384, 1e-6f},
                                           RmsnormCase{513, 1000, 1e-5f}, RmsnormCase{7, 1, 1e-5f},
                                           RmsnormCase{3, 4096, 1e-6f}, RmsnormCase{2, 11008, 1e-5f}));

// ---- silu_mul ----

struct SiluMulCase {
  int64_t n_tokens;
  int64_t dim;
};

class SiluMulCuda : public ::testing::TestWithParam<SiluMulCase> {};

TEST_P(SiluMulCuda, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const auto [n_tokens, dim] = GetParam();
  const size_t n = n_tokens * dim;
  auto gate = test::random_uniform(n, -12.0f, 12.0f, 3);  // [n_tokens, dim]
  const auto up = test::random_uniform(n, -2.0f, 2.0f, 4);
  // Saturated and overflowing exp(-g) where there is room.
  const float extremes[] = {-100.0f, -88.0f, -30.0f, 0.0f, 30.0f, 100.0f};
  for (size_t k = 0; k < std::size(extremes) && k < n; ++k) gate[k * (n / std::size(extremes))] = extremes[k];
  std::vector<float> want(n);
  silu_mul(gate.data(), up.data(), want.data(), n_tokens, dim);

  DeviceBuffer<float> dgate(gate), dup(up), dout(n);
  silu_mul_cuda(dgate.data(), dup.data(), dout.data(), n_tokens, dim);
  expect_close(want, dout.download(), kSiluMulTol);

  silu_mul_cuda(dgate.data(), dup.data(), dgate.data(), n_tokens, dim);  // in place: out aliases gate
  expect_close(want, dgate.download(), kSiluMulTol);
}

// Views one float past 16-byte alignment take the scalar path; the result must not change.
TEST_P(SiluMulCuda, MisalignedViewsMatchCpu) {
  SKIP_WITHOUT_GPU();
  const auto [n_tokens, dim] = GetParam();
  const size_t n = n_tokens * dim;
  const auto gate = test::random_uniform(n + 1, -12.0f, 12.0f, 5);  // [1 + n_tokens * dim]
  const auto up = test::random_uniform(n + 1, -2.0f, 2.0f, 6);
  std::vector<float> want(n);
  silu_mul(gate.data() + 1, up.data() + 1, want.data(), n_tokens, dim);

  DeviceBuffer<float> dgate(gate), dup(up), dout(std::vector<float>(n + 1, 0.0f));
  silu_mul_cuda(dgate.data() + 1, dup.data() + 1, dout.data() + 1, n_tokens, dim);
  auto got = dout.download();
  got.erase(got.begin());
  expect_close(want, got, kSiluMulTol);
}

INSTANTIATE_TEST_SUITE_P(OddSizes, SiluMulCuda,
                         ::testing::Values(SiluMulCase{1, 63}, SiluMulCase{7, 384}, SiluMulCase{513, 1000},
                                           SiluMulCase{1, 3}, SiluMulCase{5, 11008}));

// ---- rope ----

struct RopeCase {
  int64_t n_tokens;
  int64_t n_heads;
  int64_t head_dim;
  float theta;
  int32_t max_position;
};

class RopeCuda : public ::testing::TestWithParam<RopeCase> {};

TEST_P(RopeCuda, MatchesCpu) {
  SKIP_WITHOUT_GPU();
  const auto [n_tokens, n_heads, head_dim, theta, max_position] = GetParam();
  const auto x = test::random_uniform(n_tokens * n_heads * head_dim, -1.0f, 1.0f, 7);  // [n_tokens, n_heads, head_dim]
  std::vector<int32_t> positions(n_tokens);                                      // [n_tokens]
  std::mt19937 rng(8);
  std::uniform_int_distribution<int32_t> pos_dist(0, max_position);
  for (auto& p : positions) p = pos_dist(rng);
  positions.back() = max_position;

  std::vector<float> want = x;
  rope(want.data(), positions.data(), n_tokens, n_heads, head_dim, theta);

  DeviceBuffer<float> dx(x);
  DeviceBuffer<int32_t> dpos(positions);
  rope_cuda(dx.data(), dpos.data(), n_tokens, n_heads, head_dim, theta);
  expect_close(want, dx.download(), kRopeTol);
}

INSTANTIATE_TEST_SUITE_P(OddSizes, RopeCuda,
                         ::testing::Values(RopeCase{1, 1, 64, 10000.0f, 0}, RopeCase{7, 3, 32, 10000.0f, 4095},
                                           RopeCase{513, 12, 64, 10000.0f, 131071},
                                           RopeCase{9, 32, 128, 500000.0f, 1 << 20},
                                           RopeCase{5, 2, 256, 1000000.0f, 2147483647},
                                           RopeCase{3, 5, 512, 10000.0f, 1000000}));

TEST(RopeCudaLimits, RejectsHeadDimAboveMaximum) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer<float> dx(2 * kRopeMaxHeadDim + 2);
  DeviceBuffer<int32_t> dpos(std::vector<int32_t>{0});
  EXPECT_THROW(rope_cuda(dx.data(), dpos.data(), 1, 1, kRopeMaxHeadDim + 2, 10000.0f), Error);
}

// ---- devices, buffers, errors ----

TEST(CudaDevice, NamesEveryDevice) {
  SKIP_WITHOUT_GPU();
  for (int d = 0; d < cuda_device_count(); ++d) EXPECT_FALSE(cuda_device_name(d).empty());
}

TEST(CudaDevice, InvalidDeviceThrowsCheckedError) {
  SKIP_WITHOUT_GPU();
  try {
    cuda_device_name(cuda_device_count() + 5);
    FAIL() << "expected sparsa::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_EQ(std::string(e.what()).rfind("CUDA error cudaErrorInvalidDevice at ", 0), 0u) << e.what();
  }
  cuda_synchronize();  // the error was not sticky: the device still works
}

TEST(DeviceBuffer, RoundTripsAndMoves) {
  SKIP_WITHOUT_GPU();
  const auto host = test::random_uniform(1001, -1.0f, 1.0f, 9);
  DeviceBuffer<float> a(host);
  DeviceBuffer<float> b = std::move(a);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.size(), host.size());
  EXPECT_EQ(b.download(), host);
  EXPECT_THROW(DeviceBuffer<float>(3).upload(host), Error);
}

#ifndef SPARSA_WITH_CUDA
TEST(CpuOnlyBuild, OpsThrowBuiltWithoutCuda) {
  EXPECT_EQ(cuda_device_count(), 0);
  try {
    rmsnorm_cuda(nullptr, nullptr, nullptr, 1, 1, 1e-5f);
    FAIL() << "expected sparsa::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("built without CUDA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(silu_mul_cuda(nullptr, nullptr, nullptr, 1, 1), Error);
  EXPECT_THROW(rope_cuda(nullptr, nullptr, 1, 1, 2, 1e4f), Error);
  EXPECT_THROW(DeviceBuffer<float>(4), Error);
}
#endif

}  // namespace
// An allocation the GPU cannot satisfy is a one-line runtime error that says how much was asked
// for, how much is free, and what to lower; the device stays usable afterwards.
TEST(CudaDevice, OutOfMemoryIsAClearRuntimeError) {
  SKIP_WITHOUT_GPU();
  const size_t too_much = size_t{1} << 50;  // 1 PiB
  try {
    DeviceBuffer<float> huge(too_much / sizeof(float));
    FAIL() << "a 1 PiB allocation succeeded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(what.find("GPU out of memory: asked for 1073741824.0 MiB"), std::string::npos) << what;
    EXPECT_NE(what.find("MiB free of"), std::string::npos) << what;
    EXPECT_NE(what.find("--nsamples"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  DeviceBuffer<float> small(std::vector<float>{1.0f, 2.0f, 3.0f});
  EXPECT_EQ(small.download(), (std::vector<float>{1.0f, 2.0f, 3.0f}));
}

}  // namespace sparsa
