// Fidelity of Wanda on the OPT family against the goldens of the original implementation
// (../shared/golden/opt_wanda_*.safetensors), through the same driver as LLaMA.
#include <gtest/gtest.h>

#include "golden_prune.h"
#include "test_support.h"

namespace sparsa {
namespace {

void run(SparsityTarget t, const char* file, double ppl) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::check_golden_prune(test::opt_golden_case(PruneMethod::kWanda, t, file, ppl));
}

TEST(OptWandaGolden, Unstructured50) { run(parse_sparsity("0.5"), "opt_wanda_u50.safetensors", 69.0628); }
TEST(OptWandaGolden, TwoFour) { run(parse_nm("2:4"), "opt_wanda_2-4.safetensors", 103.9020); }

}  // namespace
}  // namespace sparsa
