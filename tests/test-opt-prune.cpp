// Fidelity of pruning the OPT family against the goldens of the original implementations
// (../shared/golden/opt_*.safetensors): the same checks as the LLaMA goldens, through the same
// driver and architecture table, on tiny-opt-14m.
#include <gtest/gtest.h>

#include "golden_prune.h"
#include "test_support.h"

namespace sparsa {
namespace {

// Per-matrix mask agreement floors of the issue: 99.9 % for magnitude and Wanda, 99 % for
// SparseGPT (whose updates amplify rounding differences between our CPU and the reference GPU).
void run(PruneMethod method, SparsityTarget t, const char* file, double ppl) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const double floor = method == PruneMethod::kSparseGPT ? 0.99 : 0.999;
  test::GoldenPruneCase c{method, t, file, ppl, floor, floor};
  c.model = test::opt_demo_model();
  test::check_golden_prune(c);
}

TEST(OptGolden, MagnitudeUnstructured50) {
  run(PruneMethod::kMagnitude, parse_sparsity("0.5"), "opt_magnitude_u50.safetensors", 99.1520);
}
TEST(OptGolden, WandaUnstructured50) {
  run(PruneMethod::kWanda, parse_sparsity("0.5"), "opt_wanda_u50.safetensors", 69.0628);
}
TEST(OptGolden, WandaTwoFour) { run(PruneMethod::kWanda, parse_nm("2:4"), "opt_wanda_2-4.safetensors", 103.9020); }
TEST(OptGolden, SparseGPTUnstructured50) {
  run(PruneMethod::kSparseGPT, parse_sparsity("0.5"), "opt_sparsegpt_u50.safetensors", 63.0598);
}
TEST(OptGolden, SparseGPTTwoFour) {
  run(PruneMethod::kSparseGPT, parse_nm("2:4"), "opt_sparsegpt_2-4.safetensors", 64.5062);
}

}  // namespace
}  // namespace sparsa
