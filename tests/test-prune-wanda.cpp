// Fidelity of Wanda pruning against the goldens of the original implementation.
#include <gtest/gtest.h>

#include "golden_prune.h"
#include "test_support.h"

namespace sparsa {
namespace {

void run(SparsityTarget t, const char* file, double ppl) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::check_golden_prune({PruneMethod::kWanda, t, file, ppl, 0.999, 0.999});
}

TEST(WandaGolden, Unstructured50) { run(parse_sparsity("0.5"), "wanda_u50.safetensors", 108.3057); }
TEST(WandaGolden, TwoFour) { run(parse_nm("2:4"), "wanda_2-4.safetensors", 143.3333); }
TEST(WandaGolden, FourEight) { run(parse_nm("4:8"), "wanda_4-8.safetensors", 128.6216); }

}  // namespace
}  // namespace sparsa
