// llama2.c checkpoints (legacy "version 0" .bin: 7 int32 header fields, then fp32 weights):
// stories260K loads with the documented shape and its weights where run.c expects them, and a
// bad file (truncated, extra bytes, implausible header) is Error(kBadInput), and through the CLI
// exit code 2 with one line on stderr naming the file.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::run_sparsa;
using test::shared_available;
using test::shared_dir;
using test::TempDir;
using test::write_file;

using Header = std::array<int32_t, 7>;  // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len

fs::path stories_bin() { return shared_dir() / "models" / "stories260K" / "stories260K.bin"; }
fs::path stories_tok() { return shared_dir() / "models" / "stories260K" / "tok512.bin"; }
constexpr uint64_t kStoriesBytes = 1056540;


std::string header_bytes(const Header& h) { return std::string(reinterpret_cast<const char*>(h.data()), sizeof(h)); }

// The number of floats after the header, as llama2.c's checkpoint_init_weights reads them.
uint64_t weight_floats(const Header& h) {
  const uint64_t d = h[0], f = h[1], L = h[2], heads = h[3], kvh = h[4], seq = h[6];
  const uint64_t V = h[5] < 0 ? -static_cast<int64_t>(h[5]) : h[5];
  const uint64_t hs = d / heads, kv = kvh * hs;
  return V * d + L * d + L * d * d + 2 * L * d * kv + L * d * d + L * d + 3 * L * d * f + d + seq * hs +
         (h[5] < 0 ? V * d : 0);
}

// A small llama2.c file whose float number i is i * 0.001 (so every weight says where it came from).
std::string synthetic_model(const Header& h) {
  std::string s = header_bytes(h);
  const uint64_t n = weight_floats(h);
  std::vector<float> w(n);
  for (uint64_t i = 0; i < n; ++i) w[i] = static_cast<float>(i) * 0.001f;
  s.append(reinterpret_cast<const char*>(w.data()), n * sizeof(float));
  return s;
}

constexpr Header kSmall = {8, 12, 2, 2, 1, 10, 6};  // head_dim 4, kv_dim 4

// Expects Error(kBadInput) from loading `path`; returns the message.
std::string load_error(const fs::path& path) {
  try {
    load_llama2c_model(path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(path.string()), std::string::npos) << "does not name the file: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than sparsa::Error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no error loading " << path;
  return {};
}

void expect_cli_bad_input(const std::vector<std::string>& args, const fs::path& file, const std::string& what) {
  const auto r = run_sparsa(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << "stderr is not one line: " << r.err;
  EXPECT_NE(r.err.find(file.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << "stderr does not say '" << what << "': " << r.err;
  EXPECT_EQ(r.out, "");
}

// ---- stories260K ----

TEST(Llama2c, Stories260KLoads) {
  if (!shared_available()) GTEST_SKIP() << "../shared not present";
  const std::string bytes = read_file(stories_bin());
  ASSERT_EQ(bytes.size(), kStoriesBytes);
  Header h;
  std::memcpy(h.data(), bytes.data(), sizeof(h));
  EXPECT_EQ(h, (Header{64, 172, 5, 8, 4, 512, 512}));
  EXPECT_EQ(28 + 4 * weight_floats(h), kStoriesBytes);
  auto raw = [&](uint64_t float_index) {
    float v;
    std::memcpy(&v, bytes.data() + 28 + 4 * float_index, 4);
    return v;
  };

  const Model m = load_llama2c_model(stories_bin());
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.model_type, "llama2c");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position, 512);
  EXPECT_TRUE(c.tie_word_embeddings);  // the classifier is shared with the embedding
  EXPECT_EQ(m.source, stories_bin());
  ASSERT_EQ(m.blocks.size(), 5u);
  EXPECT_EQ(m.embed.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(m.lm_head.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(m.lm_head.data, m.embed.data);
  EXPECT_EQ(m.final_norm.shape, (std::vector<int64_t>{64}));
  for (const Block& b : m.blocks) {
    EXPECT_EQ(b.linear(LinearRole::kQ).weight.shape, (std::vector<int64_t>{64, 64}));
    EXPECT_EQ(b.linear(LinearRole::kK).weight.shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(b.linear(LinearRole::kV).weight.shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(b.linear(LinearRole::kO).weight.shape, (std::vector<int64_t>{64, 64}));
    EXPECT_EQ(b.linear(LinearRole::kGate).weight.shape, (std::vector<int64_t>{172, 64}));
    EXPECT_EQ(b.linear(LinearRole::kUp).weight.shape, (std::vector<int64_t>{172, 64}));
    EXPECT_EQ(b.linear(LinearRole::kDown).weight.shape, (std::vector<int64_t>{64, 172}));
    EXPECT_TRUE(b.linear(LinearRole::kQ).bias.data.empty());
  }
  // Spot checks against the raw file: the embedding is first, the final norm follows the layers.
  EXPECT_EQ(m.embed.data[0], raw(0));
  EXPECT_EQ(m.embed.data[512 * 64 - 1], raw(512 * 64 - 1));
  const uint64_t final_norm_at = weight_floats(h) - 64 - 2 * 512 * 4;  // before the two RoPE tables [seq, hs/2]
  EXPECT_EQ(m.final_norm.data[0], raw(final_norm_at));
  EXPECT_EQ(m.final_norm.data[63], raw(final_norm_at + 63));
}

TEST(Llama2c, Stories260KGeneratesThroughTheCli) {
  if (!shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = run_sparsa({"generate", "--model", stories_bin().string(), "--tokenizer", stories_tok().string(),
                             "--prompt", "Once upon a time", "--steps", "20"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
}

// ---- the weight layout, on a small synthetic file ----

TEST(Llama2c, SyntheticFileWeightsLandWhereRunCReadsThem) {
  TempDir tmp;
  const auto path = tmp / "small.bin";
  write_file(path, synthetic_model(kSmall));
  const Model m = load_llama2c_model(path);
  const int64_t d = 8, f = 12, L = 2, kv = 4, V = 10, hs = 4;
  EXPECT_EQ(m.config.head_dim, hs);
  EXPECT_EQ(m.config.kv_dim(), kv);
  auto at = [](int64_t i) { return static_cast<float>(i) * 0.001f; };
  // Offsets (in floats) of each [L, ...] group, in llama2.c's order.
  const int64_t emb = 0, att_norm = emb + V * d, wq = att_norm + L * d, wk = wq + L * d * d, wv = wk + L * kv * d,
                wo = wv + L * kv * d, ffn_norm = wo + L * d * d, w1 = ffn_norm + L * d, w2 = w1 + L * f * d,
                w3 = w2 + L * d * f, final_norm = w3 + L * f * d;
  for (int64_t i = 0; i < V * d; ++i) ASSERT_EQ(m.embed.data[i], at(emb + i));
  EXPECT_EQ(m.lm_head.data, m.embed.data);
  for (int64_t l = 0; l < L; ++l) {
    const Block& b = m.blocks[l];
    for (int64_t i = 0; i < d; ++i) {
      EXPECT_EQ(b.attn_norm.data[i], at(att_norm + l * d + i));
      EXPECT_EQ(b.mlp_norm.data[i], at(ffn_norm + l * d + i));
    }
    // q and k rows are reordered per head from llama2.c's interleaved pairs (2i, 2i+1) to HF's
    // halves (i, i + hs/2): old row 2i -> i, old row 2i+1 -> i + hs/2.
    auto check_rotated = [&](const Tensor& w, int64_t base, int64_t rows) {
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t head = r / hs, i = r % hs;
        const int64_t dst = head * hs + (i % 2 == 0 ? i / 2 : hs / 2 + i / 2);
        for (int64_t col = 0; col < d; ++col)
          ASSERT_EQ(w.data[dst * d + col], at(base + r * d + col)) << "row " << r << " col " << col;
      }
    };
    check_rotated(b.linear(LinearRole::kQ).weight, wq + l * d * d, d);
    check_rotated(b.linear(LinearRole::kK).weight, wk + l * kv * d, kv);
    for (int64_t i = 0; i < kv * d; ++i) ASSERT_EQ(b.linear(LinearRole::kV).weight.data[i], at(wv + l * kv * d + i));
    for (int64_t i = 0; i < d * d; ++i) ASSERT_EQ(b.linear(LinearRole::kO).weight.data[i], at(wo + l * d * d + i));
    for (int64_t i = 0; i < f * d; ++i) {
      ASSERT_EQ(b.linear(LinearRole::kGate).weight.data[i], at(w1 + l * f * d + i));  // w1
      ASSERT_EQ(b.linear(LinearRole::kDown).weight.data[i], at(w2 + l * d * f + i));  // w2
      ASSERT_EQ(b.linear(LinearRole::kUp).weight.data[i], at(w3 + l * f * d + i));    // w3
    }
  }
  for (int64_t i = 0; i < d; ++i) EXPECT_EQ(m.final_norm.data[i], at(final_norm + i));
}

TEST(Llama2c, NegativeVocabMeansAnUnsharedClassifierAtTheEnd) {
  TempDir tmp;
  Header h = kSmall;
  h[5] = -10;
  const auto path = tmp / "unshared.bin";
  const std::string bytes = synthetic_model(h);
  write_file(path, bytes);
  const Model m = load_llama2c_model(path);
  EXPECT_EQ(m.config.vocab_size, 10);
  EXPECT_FALSE(m.config.tie_word_embeddings);
  const uint64_t n = weight_floats(h);
  ASSERT_EQ(m.lm_head.shape, (std::vector<int64_t>{10, 8}));
  for (uint64_t i = 0; i < 80; ++i) ASSERT_EQ(m.lm_head.data[i], static_cast<float>(n - 80 + i) * 0.001f);
  EXPECT_NE(m.lm_head.data, m.embed.data);
}

// ---- bad files ----

TEST(Llama2c, TruncatedOrExtraBytesSayWhatTheHeaderImplies) {
  if (!shared_available()) GTEST_SKIP() << "../shared not present";
  const std::string bytes = read_file(stories_bin());
  const std::string implies = "implies " + std::to_string(kStoriesBytes) + " bytes";
  TempDir tmp;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cut4.bin", bytes.substr(0, bytes.size() - 4)},
      {"cut1.bin", bytes.substr(0, bytes.size() - 1)},
      {"half.bin", bytes.substr(0, bytes.size() / 2)},
      {"header-only.bin", bytes.substr(0, 28)},
      {"extra4.bin", bytes + std::string(4, '\0')},
      {"extra1.bin", bytes + "x"},
  };
  for (const auto& [name, content] : cases) {
    SCOPED_TRACE(name);
    const auto path = tmp / name;
    write_file(path, content);
    const std::string msg = load_error(path);
    EXPECT_NE(msg.find(implies), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(content.size())), std::string::npos) << msg;
  }
  // Through both commands that load models.
  expect_cli_bad_input({"generate", "--model", (tmp / "cut4.bin").string(), "--tokenizer", stories_tok().string(),
                        "--prompt", "hi"},
                       tmp / "cut4.bin", implies);
  expect_cli_bad_input({"generate", "--model", (tmp / "extra4.bin").string(), "--tokenizer", stories_tok().string(),
                        "--prompt", "hi"},
                       tmp / "extra4.bin", implies);
  expect_cli_bad_input({"eval", "--model", (tmp / "cut1.bin").string(), "--tokenizer", stories_tok().string()},
                       tmp / "cut1.bin", implies);
}

TEST(Llama2c, NegativeVocabOnASharedFileIsASizeMismatch) {
  if (!shared_available()) GTEST_SKIP() << "../shared not present";
  std::string bytes = read_file(stories_bin());
  const int32_t neg = -512;
  std::memcpy(bytes.data() + 20, &neg, 4);
  TempDir tmp;
  write_file(tmp / "unshared.bin", bytes);
  const std::string msg = load_error(tmp / "unshared.bin");
  EXPECT_NE(msg.find("implies " + std::to_string(kStoriesBytes + 512 * 64 * 4) + " bytes"), std::string::npos) << msg;
}

// Found by fuzz-llama2c's design review (docs/reliability.md): sizes computed in 64 bits wrapped
// around, so this header (dim 65536, hidden 67021482, 2^20 layers, 1 head, vocab 1, seq 2)
// "implied" 1 MiB + 28 bytes and the loader then tried to allocate 2^62 floats. Its true size
// is above 2^64 bytes.
TEST(Llama2c, HeaderSizesThatOverflow64BitsAreRefused) {
  const int32_t header[7] = {65536, 67021482, 1 << 20, 1, 1, 1, 2};
  std::string bytes(28 + 4 * 65536 * 4, '\0');
  std::memcpy(bytes.data(), header, sizeof header);
  TempDir tmp;
  write_file(tmp / "wraps.bin", bytes);
  const std::string msg = load_error(tmp / "wraps.bin");
  EXPECT_NE(msg.find("implies more than 2^64 bytes"), std::string::npos) << msg;
}

TEST(Llama2c, ImplausibleHeadersAreBadInput) {
  struct Case {
    int field;
    int32_t value;
  };
  const std::vector<Case> cases = {
      {0, 0},  {0, -64}, {1, 0},  {1, -1}, {2, 0},  {2, -5}, {3, 0}, {3, -8}, {4, 0},
      {4, -4}, {5, 0},   {6, 0},  {6, -1},
      {3, 3},   // dim 8 is not a multiple of 3 heads
      {4, 3},   // 2 heads are not a multiple of 3 kv heads
      {0, 6},   // dim 6 / 2 heads = head_dim 3: odd, no RoPE pairs
  };
  TempDir tmp;
  for (const auto& c : cases) {
    SCOPED_TRACE("field " + std::to_string(c.field) + " = " + std::to_string(c.value));
    Header h = kSmall;
    h[c.field] = c.value;
    const auto path = tmp / ("h" + std::to_string(c.field) + "_" + std::to_string(c.value) + ".bin");
    std::string bytes = synthetic_model(kSmall);  // the weights of the valid header
    std::memcpy(bytes.data(), h.data(), sizeof(h));
    write_file(path, bytes);
    const std::string msg = load_error(path);
    EXPECT_NE(msg.find("header"), std::string::npos) << msg;
  }
}

TEST(Llama2c, ImplausibleHeadersExitTwoThroughTheCli) {
  TempDir tmp;
  for (const int field : {0, 2, 4}) {
    SCOPED_TRACE(field);
    Header h = kSmall;
    h[field] = field == 2 ? -3 : 0;
    const auto path = tmp / ("bad" + std::to_string(field) + ".bin");
    std::string bytes = synthetic_model(kSmall);
    std::memcpy(bytes.data(), h.data(), sizeof(h));
    write_file(path, bytes);
    expect_cli_bad_input({"generate", "--model", path.string(), "--tokenizer", "/nonexistent/tok512.bin", "--prompt", "hi"},
                         path, "header");
  }
}

// Dimensions so large that the implied size overflows must not crash or allocate.
TEST(Llama2c, HugeDimensionsAreBadInputNotACrash) {
  TempDir tmp;
  const std::vector<Header> headers = {
      {1 << 30, 1 << 30, 1 << 30, 2, 2, 1 << 30, 1 << 30},
      {2147483646, 2147483646, 2147483647, 2, 1, -2147483647, 2147483647},
      {65536, 65536, 65536, 2, 2, 65536, 65536},
  };
  for (size_t i = 0; i < headers.size(); ++i) {
    SCOPED_TRACE(i);
    const auto path = tmp / ("huge" + std::to_string(i) + ".bin");
    write_file(path, header_bytes(headers[i]) + std::string(4096, '\0'));
    load_error(path);
    const auto r = run_sparsa({"generate", "--model", path.string(), "--tokenizer", "/nonexistent/tok.bin", "--prompt", "hi"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
  }
}

TEST(Llama2c, ShortOrEmptyFileIsATruncatedHeader) {
  TempDir tmp;
  for (const size_t n : {0, 1, 27}) {
    SCOPED_TRACE(n);
    const auto path = tmp / ("short" + std::to_string(n) + ".bin");
    write_file(path, header_bytes(kSmall).substr(0, n));
    EXPECT_NE(load_error(path).find("truncated"), std::string::npos);
  }
  expect_cli_bad_input({"generate", "--model", (tmp / "short27.bin").string(), "--tokenizer", "/nonexistent/tok.bin",
                        "--prompt", "hi"},
                       tmp / "short27.bin", "truncated");
}

TEST(Llama2c, NewerExportVersionsAreRefusedByName) {
  TempDir tmp;
  // export.py writes struct.pack("I", 0x616b3432), then the version.
  const uint32_t magic_and_version[2] = {0x616b3432u, 2};
  std::string bytes(reinterpret_cast<const char*>(magic_and_version), 8);
  bytes += std::string(256 - bytes.size(), '\0');
  write_file(tmp / "v2.bin", bytes);
  EXPECT_NE(load_error(tmp / "v2.bin").find("ak42"), std::string::npos);
}

TEST(Llama2c, LoadModelPicksTheLoaderByPath) {
  TempDir tmp;
  write_file(tmp / "small.bin", synthetic_model(kSmall));
  EXPECT_EQ(load_model(tmp / "small.bin").config.model_type, "llama2c");
  try {
    load_model(tmp / "missing.bin");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find((tmp / "missing.bin").string()), std::string::npos) << e.what();
  }
}

TEST(Llama2c, GenerateNeedsATokenizerForLlama2cModels) {
  TempDir tmp;
  const auto path = tmp / "small.bin";
  write_file(path, synthetic_model(kSmall));
  expect_cli_bad_input({"generate", "--model", path.string(), "--prompt", "hi"}, path, "--tokenizer");
}

TEST(Llama2c, MissingTokenizerFileIsBadInput) {
  TempDir tmp;
  const auto path = tmp / "small.bin";
  write_file(path, synthetic_model(kSmall));
  const auto tok = tmp / "no-such-tok.bin";
  expect_cli_bad_input({"generate", "--model", path.string(), "--tokenizer", tok.string(), "--prompt", "hi"}, tok, "");
}

}  // namespace
}  // namespace sparsa
