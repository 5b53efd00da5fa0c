// Fidelity of SparseGPT on the OPT family against the goldens of the original implementation
// (../shared/golden/opt_sparsegpt_*.safetensors), through the same driver as LLaMA.
#include <gtest/gtest.h>

#include "golden_prune.h"
#include "test_support.h"

namespace sparsa {
namespace {

void run(SparsityTarget t, const char* file, double ppl) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::check_golden_prune(test::opt_golden_case(PruneMethod::kSparseGPT, t, file, ppl));
}

TEST(OptSparseGPTGolden, Unstructured50) { run(parse_sparsity("0.5"), "opt_sparsegpt_u50.safetensors", 63.0598); }
TEST(OptSparseGPTGolden, TwoFour) { run(parse_nm("2:4"), "opt_sparsegpt_2-4.safetensors", 64.5062); }

}  // namespace
}  // namespace sparsa
