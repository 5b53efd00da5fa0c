// `sparsa generate` against llama2.c's reference run.c: greedy output of stories260K must be
// byte-identical to golden/stories260K_greedy.json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sparsa/generate.h"
#include "sparsa/model.h"
#include "test_support.h"

namespace sparsa {
namespace {

TEST(Generate, Stories260KGreedyMatchesLlama2c) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto dir = test::shared_dir() / "models" / "stories260K";
  const auto golden = nlohmann::json::parse(test::read_file(test::shared_dir() / "golden" / "stories260K_greedy.json"));
  ASSERT_EQ(golden["cases"].size(), 2u);
  for (const auto& c : golden["cases"]) {
    const auto r = test::run_sparsa({"generate", "--model", (dir / "stories260K.bin").string(), "--tokenizer",
                                     (dir / "tok512.bin").string(), "--prompt", c["prompt"].get<std::string>(),
                                     "--steps", std::to_string(c["steps"].get<int>()), "--temperature", "0"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, c["text"].get<std::string>()) << "prompt: " << c["prompt"];
  }
}

TEST(Generate, Llama2cModelShape) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const Model m = load_model(test::shared_dir() / "models" / "stories260K" / "stories260K.bin");
  EXPECT_EQ(m.config.hidden_size, 64);
  EXPECT_EQ(m.config.num_layers, 5);
  EXPECT_EQ(m.config.num_heads, 8);
  EXPECT_EQ(m.config.num_kv_heads, 4);
  EXPECT_EQ(m.config.vocab_size, 512);
  EXPECT_TRUE(m.config.tie_word_embeddings);
}

TEST(Generate, GreedyIsArgmaxAndRespectsSteps) {
  const Model m = load_model(test::repo_dir() / "models" / "tiny-llama-15m");
  GenerateOptions opt;
  opt.steps = 12;
  std::vector<std::pair<int32_t, int32_t>> seen;
  const auto ids = generate(m, {1, 450, 1000}, opt, [&](int32_t p, int32_t n) { seen.emplace_back(p, n); });
  ASSERT_LE(ids.size(), 13u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 450);
  EXPECT_EQ(ids[2], 1000);
  ASSERT_EQ(seen.size(), ids.size() - 1);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], std::make_pair(ids[i], ids[i + 1]));
  // Greedy: the 4th token is the argmax of the logits after the 3-token prompt.
  ForwardBuffers buf;
  Tensor logits;
  forward(m, ids.data(), 3, logits, buf);
  const float* last = logits.ptr() + 2 * m.config.vocab_size;
  EXPECT_EQ(ids[3], std::max_element(last, last + m.config.vocab_size) - last);
}

TEST(Generate, SamplingIsSeeded) {
  const Model m = load_model(test::repo_dir() / "models" / "tiny-llama-15m");
  GenerateOptions opt;
  opt.steps = 20;
  opt.temperature = 1.0f;
  opt.top_p = 0.9f;
  opt.seed = 42;
  const auto a = generate(m, {1, 450}, opt, [](int32_t, int32_t) {});
  const auto b = generate(m, {1, 450}, opt, [](int32_t, int32_t) {});
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace sparsa
