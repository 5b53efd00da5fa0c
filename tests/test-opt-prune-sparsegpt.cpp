// Fidelity of SparseGPT on the OPT family against the goldens of the original implementation
// (../shared/golden/opt_sparsegpt_*.safetensors), through the same driver as LLaMA.
#include <gtest/gtest.h>

#include "golden_prune.h"
#include "test_support.h"

namespace sparsa {
namespace {

// Unstructured keeps the 99 % in every block (measured: block 0 0.9998, worst 0.9918 in
// block 5). For 2:4 the later blocks get a measured floor, as the LLaMA SparseGPT tests do (see
// golden_prune.h: the row-wise cascade of updates turns rounding-level differences into mask
// flips that compound block by block; Wanda 2:4 on the same inputs agrees 100 %). Measured on
// this CPU, worst matrix per block: 0.9994, 0.9904, 0.9621, 0.9407, 0.9295, 0.9381, always
// self_attn.out_proj from block 2 on; perplexity must still be within 0.5 %.
void run(SparsityTarget t, const char* file, double ppl) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::GoldenPruneCase c = test::opt_golden_case(PruneMethod::kSparseGPT, t, file, ppl);
  c.min_agreement_block0 = 0.999;
  if (t.is_nm()) c.min_agreement_later = 0.92;
  test::check_golden_prune(c);
}

TEST(OptSparseGPTGolden, Unstructured50) { run(parse_sparsity("0.5"), "opt_sparsegpt_u50.safetensors", 63.0598); }
TEST(OptSparseGPTGolden, TwoFour) { run(parse_nm("2:4"), "opt_sparsegpt_2-4.safetensors", 64.5062); }

}  // namespace
}  // namespace sparsa
