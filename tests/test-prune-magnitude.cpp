// Fidelity of Magnitude pruning against the goldens of the original implementation.
#include <gtest/gtest.h>

#include "golden_prune.h"
#include "test_support.h"

namespace sparsa {
namespace {

void run(SparsityTarget t, const char* file, double ppl) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::check_golden_prune({PruneMethod::kMagnitude, t, file, ppl, 0.999, 0.999});
}

TEST(MagnitudeGolden, Unstructured50) { run(parse_sparsity("0.5"), "magnitude_u50.safetensors", 116.2312); }
TEST(MagnitudeGolden, TwoFour) { run(parse_nm("2:4"), "magnitude_2-4.safetensors", 153.2348); }
TEST(MagnitudeGolden, FourEight) { run(parse_nm("4:8"), "magnitude_4-8.safetensors", 134.8213); }

}  // namespace
}  // namespace sparsa
