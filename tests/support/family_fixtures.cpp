#include "family_fixtures.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa::test {

const std::vector<std::string>& family_names() {
  static const std::vector<std::string> names = {"llama3", "llama32", "mistral", "qwen2", "qwen3", "gemma3", "opt350m"};
  return names;
}

std::filesystem::path family_fixture(const std::string& family) {
  return repo_dir() / "tests" / "data" / "families" / family;
}

nlohmann::json family_reference_info(const std::string& family) {
  return nlohmann::json::parse(read_file(family_fixture(family) / "reference.json"));
}

FamilyReference load_family_reference(const std::string& family) {
  const auto store = TensorStore::open(family_fixture(family) / "reference.safetensors");
  return {store->load_i32("tokens"), store->load_f32("logits")};
}

StudyOptions family_study_options(const std::string& family, const std::filesystem::path& out) {
  const std::filesystem::path reference = family_fixture(family) / "reference.safetensors";
  StudyOptions o;
  o.model = family_fixture(family);
  o.out_dir = out;
  o.methods = {PruneMethod::kWanda, PruneMethod::kSparseGPT};
  o.targets = {parse_sparsity("0.5"), parse_nm("2:4")};
  o.sweep = {};
  o.calib.tokens_file = reference;
  o.calib.key = "tokens";
  o.calib.nsamples = 2;
  o.eval_tokens = reference;
  o.eval_key = "tokens";
  o.act_sparsities = {0.5};
  o.act_bitset_windows = 2;
  o.null_shuffles = 2;
  o.neighbour_references = 1;
  o.ks = {4};
  o.kmeans_runs = 2;
  o.tsne_iterations = 500;
  o.figures = false;
  return o;
}

double max_relative_logit_error(const Tensor& want, const Tensor& got, int64_t vocab) {
  EXPECT_EQ(want.shape, got.shape);
  if (want.shape != got.shape) return INFINITY;
  double worst = 0;
  for (size_t p = 0; p < want.numel() / static_cast<size_t>(vocab); ++p) {
    double diff = 0, scale = 0;
    for (size_t v = 0; v < static_cast<size_t>(vocab); ++v) {
      const size_t i = p * static_cast<size_t>(vocab) + v;
      diff = std::max(diff, std::fabs(static_cast<double>(got.data[i]) - want.data[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(want.data[i])));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

}  // namespace sparsa::test
