// tests/support/family_fixtures.h — the family fixtures of issue #18 (tests/data/families/<family>/,
// made by make_fixtures.py with transformers): paths, transformers' reference logits, and the
// comparison bound's measure. Shared by test-families (CPU) and test-gpu-model (GPU).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/study.h"
#include "sparsa/tensor.h"

namespace sparsa::test {

// Every family with a fixture, in the README's order.
const std::vector<std::string>& family_names();
std::filesystem::path family_fixture(const std::string& family);
// reference.json: perplexity, perplexity_feature_off, what the config exercises, versions.
nlohmann::json family_reference_info(const std::string& family);

struct FamilyReference {
  TensorI32 tokens;  // [windows, seqlen]
  Tensor logits;     // [windows, seqlen, vocab] transformers' fp32 logits
};
FamilyReference load_family_reference(const std::string& family);

// A small whole study of a fixture into `out`: calibrated and evaluated on its reference windows,
// Wanda and SparseGPT at 50 % and 2:4, one activation sparsity, the co-activation analysis with
// every step of the default study (null model and neighbourhoods of every block) at minimal sizes.
StudyOptions family_study_options(const std::string& family, const std::filesystem::path& out);

// max over positions of max |got - want| / max |want| (both [positions, vocab]); the issue's
// "relative, max over positions". Adds a gtest failure when the shapes differ.
double max_relative_logit_error(const Tensor& want, const Tensor& got, int64_t vocab);

}  // namespace sparsa::test
