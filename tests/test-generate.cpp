// `sparsa generate` against llama2.c's reference run.c: greedy output of stories260K must be
// byte-identical to golden/stories260K_greedy.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>
#include <vector>

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

// ---- sample_token over the whole valid range of its options ----

// Random logits [vocab] of one of several kinds: plain, ties, -inf holes, one +inf, huge and tiny
// magnitudes.
std::vector<float> random_logits(std::mt19937_64& g, int64_t vocab, int kind) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> v(static_cast<size_t>(vocab));
  for (float& x : v) x = normal(g);
  std::uniform_int_distribution<int64_t> at(0, vocab - 1);
  switch (kind) {
    case 1: for (float& x : v) x = std::round(x); break;  // many ties
    case 2: for (float& x : v) if (g() % 2) x = -kInf; v[static_cast<size_t>(at(g))] = 0.5f; break;
    case 3: v[static_cast<size_t>(at(g))] = kInf; v[static_cast<size_t>(at(g))] = kInf; break;
    case 4: for (float& x : v) x *= 1e37f; break;
    case 5: for (float& x : v) x *= 1e-38f; break;
    case 6: std::fill(v.begin(), v.end(), -kInf); v[static_cast<size_t>(at(g))] = -3e38f; break;
    default: break;
  }
  return v;
}

TEST(SampleToken, AlwaysInRangeAndSeededOverTheWholeOptionRange) {
  const float tiny = std::numeric_limits<float>::denorm_min(), huge = std::numeric_limits<float>::max();
  const std::vector<float> temperatures = {0.0f, tiny, 1e-30f, 1e-3f, 0.5f, 1.0f, 2.0f, 1e6f, huge};
  const std::vector<float> top_ps = {0.0f, tiny, 1e-7f, 0.1f, 0.5f, 0.9f, 0.999999f, 1.0f};
  std::mt19937_64 g(7);
  for (const int64_t vocab : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{17}, int64_t{512}})
    for (int kind = 0; kind <= 6; ++kind) {
      const std::vector<float> logits = random_logits(g, vocab, kind);
      for (const float t : temperatures)
        for (const float p : top_ps)
          for (const uint64_t seed : {uint64_t{0}, uint64_t{12345}}) {
            SCOPED_TRACE(testing::Message() << "vocab " << vocab << " kind " << kind << " temperature " << t << " top_p "
                                            << p << " seed " << seed);
            GenerateOptions opt;
            opt.temperature = t;
            opt.top_p = p;
            std::mt19937_64 r1(seed), r2(seed);
            const int32_t a = sample_token(logits.data(), vocab, opt, r1);
            ASSERT_GE(a, 0);
            ASSERT_LT(a, vocab);
            EXPECT_NE(logits[static_cast<size_t>(a)], -std::numeric_limits<float>::infinity());
            EXPECT_EQ(a, sample_token(logits.data(), vocab, opt, r2));
            if (kind == 3) EXPECT_EQ(logits[static_cast<size_t>(a)], std::numeric_limits<float>::infinity());
          }
    }
}

TEST(SampleToken, TopPZeroKeepsTheMostLikely) {
  const std::vector<float> logits = {0.1f, 3.0f, -2.0f, 2.9f};
  GenerateOptions opt;
  opt.temperature = 1.0f;
  opt.top_p = 0.0f;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 r(seed);
    EXPECT_EQ(sample_token(logits.data(), 4, opt, r), 1);
  }
}

TEST(SampleToken, BadOptionsAndLogitsAreErrorsNotReads) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {0.0f, 1.0f};
  std::mt19937_64 r(0);
  for (const float t : {nan, inf, -inf, -1.0f, -1e-30f}) {
    GenerateOptions opt;
    opt.temperature = t;
    EXPECT_NE(test::bad_input_message([&] { sample_token(logits.data(), 2, opt, r); }).find("temperature"),
              std::string::npos);
  }
  for (const float p : {nan, inf, -inf, -0.1f, 1.5f}) {
    GenerateOptions opt;
    opt.temperature = 1.0f;
    opt.top_p = p;
    EXPECT_NE(test::bad_input_message([&] { sample_token(logits.data(), 2, opt, r); }).find("top-p"), std::string::npos);
  }
  EXPECT_NE(test::bad_input_message([&] { sample_token(logits.data(), 0, GenerateOptions{}, r); }).find("logit"),
            std::string::npos);
  for (const float temperature : {0.0f, 1.0f}) {
    GenerateOptions opt;
    opt.temperature = temperature;
    const std::vector<float> with_nan = {0.0f, nan, 1.0f}, all_masked = {-inf, -inf};
    for (const auto* v : {&with_nan, &all_masked}) {
      try {
        sample_token(v->data(), static_cast<int64_t>(v->size()), opt, r);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kRuntime) << e.what();
      }
    }
  }
}

// Every float option of generate refuses NaN, infinities and values outside its range, exit 2
// naming the option, before any model is loaded.
TEST(GenerateCli, NonFiniteAndOutOfRangeFloatOptionsExitTwo) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--temperature", "nan"}, {"--temperature", "inf"}, {"--temperature", "-inf"}, {"--temperature", "-0.5"},
      {"--temperature", "1e999"}, {"--temperature", "1e39"}, {"--temperature", "0.5x"}, {"--top-p", "nan"},
      {"--top-p", "-nan"}, {"--top-p", "inf"}, {"--top-p", "1.01"}, {"--top-p", "-0.1"}};
  for (const auto& [flag, value] : cases) {
    SCOPED_TRACE(flag + " " + value);
    const auto r = test::run_sparsa({"generate", "--prompt", "Once", "--steps", "4", flag, value});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(flag), std::string::npos) << r.err;
  }
  const auto ok = test::run_sparsa({"generate", "--prompt", "Once", "--steps", "4", "--temperature", "1", "--top-p", "0"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

}  // namespace
}  // namespace sparsa
