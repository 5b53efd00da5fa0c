#include "golden_prune.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "sparsa/device.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa::test {

namespace {

// Every bias of `pruned` equals the dense model's: pruning touches weights only.
void expect_biases_unchanged(const Model& dense, const Model& pruned) {
  int64_t biases = 0;
  for (size_t l = 0; l < dense.blocks.size(); ++l)
    for (const LinearRole role : arch_info(dense.config.arch).roles) {
      const Tensor& before = dense.blocks[l].linear(role).bias;
      if (before.numel() == 0) continue;
      ++biases;
      EXPECT_EQ(pruned.blocks[l].linear(role).bias.data, before.data)
          << hf_linear_name(dense.config.arch, static_cast<int64_t>(l), role) << ".bias changed";
    }
  if (dense.config.mlp_bias) EXPECT_GT(biases, 0);
}

}  // namespace

std::filesystem::path llama_demo_model() { return repo_dir() / "models" / "tiny-llama-15m"; }
std::filesystem::path opt_demo_model() { return shared_dir() / "models" / "tiny-opt-14m"; }

GoldenPruneCase opt_golden_case(PruneMethod method, SparsityTarget target, std::string golden_file, double golden_ppl) {
  const double floor = method == PruneMethod::kSparseGPT ? 0.99 : 0.999;
  GoldenPruneCase c{method, target, std::move(golden_file), golden_ppl, floor, floor};
  c.model = opt_demo_model();
  return c;
}

void check_golden_prune(const GoldenPruneCase& c) {
  const auto golden_dir = shared_dir() / "golden";
  const auto tokens = TensorStore::open(golden_dir / "tokens.safetensors");
  const auto golden = TensorStore::open(golden_dir / c.golden_file);
  Model m = load_model(c.model.empty() ? llama_demo_model() : c.model);
  const int64_t all_layers = m.config.num_layers;
  const bool quick = quick_scope();
  if (quick) {  // block 0 only: its inputs are the embeddings, as in the reference run
    m.config.num_layers = 1;
    m.blocks.resize(1);
  }
  const Model dense = m;
  PruneOptions opt;
  opt.method = c.method;
  opt.target = c.target;
  DeviceOptions device;
  device.device = c.gpu ? Device::kCuda : Device::kCpu;
  const PruneResult r = prune_model(m, tokens->load_i32("calib"), opt, device);
  const std::vector<LinearRole>& roles = arch_info(m.config.arch).roles;
  ASSERT_EQ(r.linears.size(), static_cast<size_t>(m.config.num_layers) * roles.size());
  expect_biases_unchanged(dense, m);
  // The golden holds one mask per linear: ours must cover all of them, none left over.
  const auto golden_names = golden->names();
  const auto golden_masks = std::count_if(golden_names.begin(), golden_names.end(),
                                          [](const std::string& n) { return n.ends_with(".mask"); });
  ASSERT_EQ(static_cast<size_t>(golden_masks), static_cast<size_t>(all_layers) * roles.size());

  double worst = 1.0;
  for (const auto& l : r.linears) {
    const TensorInfo& gi = golden->info(l.name + ".mask");
    ASSERT_EQ(gi.dtype, DType::U8) << l.name;
    const int64_t rows = l.mask.rows, cols = l.mask.cols;
    ASSERT_EQ(gi.shape, (std::vector<int64_t>{rows, (cols + 7) / 8})) << l.name;
    const Mask g = unpack_mask(gi.data, rows, cols);
    int64_t same = 0;
    for (size_t i = 0; i < g.pruned.size(); ++i) same += g.pruned[i] == l.mask.pruned[i];
    const double agree = static_cast<double>(same) / static_cast<double>(g.pruned.size());
    worst = std::min(worst, agree);
    if (std::getenv("SPARSA_TEST_VERBOSE")) std::printf("  %-40s %.6f\n", l.name.c_str(), agree);
    const double floor = l.layer == 0 ? c.min_agreement_block0 : c.min_agreement_later;
    EXPECT_GE(agree, floor) << l.name << " mask agreement";
    if (c.target.is_nm()) EXPECT_TRUE(mask_is_nm(l.mask, c.target.n, c.target.m)) << l.name;
    // The packed bytes round-trip to the golden layout.
    EXPECT_EQ(unpack_mask(pack_mask(l.mask).data(), rows, cols).pruned, l.mask.pruned);
  }
  std::printf("%s: worst per-matrix mask agreement %.5f\n", c.golden_file.c_str(), worst);

  struct StoredWeight {
    int64_t layer;
    LinearRole role;
    double max_error;
  };
  for (const StoredWeight s : {StoredWeight{0, LinearRole::kQ, 1e-3}, StoredWeight{5, LinearRole::kDown, c.max_deep_weight_error}}) {
    const std::string name = hf_linear_name(m.config.arch, s.layer, s.role) + ".weight";
    if (!golden->contains(name) || s.layer >= m.config.num_layers) continue;
    const Tensor g = golden->load_f32(name);
    const Tensor& w = m.blocks[static_cast<size_t>(s.layer)].linear(s.role).weight;
    double num = 0, den = 0;
    for (size_t i = 0; i < g.numel(); ++i) {
      num += (g.data[i] - w.data[i]) * (g.data[i] - w.data[i]);
      den += g.data[i] * g.data[i];
    }
    const double rel = std::sqrt(num / den);
    std::printf("%s %s: relative error %.2e\n", c.golden_file.c_str(), name.c_str(), rel);
    EXPECT_LE(rel, s.max_error) << name;
  }

  if (quick) return;  // perplexity needs every block
  const PerplexityResult p = perplexity(m, tokens->load_i32("eval"), device);
  std::printf("%s: ppl %.4f (golden %.4f), prune %.1f s\n", c.golden_file.c_str(), p.ppl, c.golden_ppl, r.timings.total);
  EXPECT_NEAR(p.ppl, c.golden_ppl, c.golden_ppl * 0.005);
}

}  // namespace sparsa::test
