// Tokenizers: HF tokenizer.json (byte-level and SentencePiece-style BPE) against the reference
// `tokenizers` library's ids in golden/tokenizer_cases.json, golden/tokens.safetensors and
// tokenizers/*/reference.json (Llama-3, Qwen3); the Unicode normalizers on known examples;
// llama2.c's tokenizer.bin against run.c's encode loop; bad files; the `tokenize` command.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "sparsa/error.h"
#include "sparsa/safetensors.h"
#include "sparsa/tokenizer.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sparsa::Error;
using sparsa::ErrorKind;
using sparsa::HfTokenizer;
using sparsa::Llama2cTokenizer;
using sparsa::test::read_file;
using sparsa::test::repo_dir;
using sparsa::test::run_sparsa;
using sparsa::test::shared_available;
using sparsa::test::shared_dir;
using sparsa::test::TempDir;
using sparsa::test::write_file;
using Ids = std::vector<int32_t>;

fs::path demo_tokenizer() { return repo_dir() / "models" / "tiny-llama-15m" / "tokenizer.json"; }
fs::path llama2_tokenizer() {
  return shared_dir() / "data" / "tokenizers" / "llama2" / "tokenizer.json";
}
fs::path stories_tokenizer() { return shared_dir() / "models" / "stories260K" / "tok512.bin"; }

// golden/tokenizer_cases.json: texts and the reference library's ids for each tokenizer.
struct GoldenCases {
  std::vector<std::string> texts;
  std::vector<Ids> fixture_ids, llama2_ids, llama2_ids_with_bos;
};

GoldenCases load_cases() {
  const json j = json::parse(read_file(shared_dir() / "golden" / "tokenizer_cases.json"));
  GoldenCases c;
  c.texts = j.at("texts").get<std::vector<std::string>>();
  c.fixture_ids = j.at("fixture_ids").get<std::vector<Ids>>();
  c.llama2_ids = j.at("llama2_ids").get<std::vector<Ids>>();
  c.llama2_ids_with_bos = j.at("llama2_ids_with_bos").get<std::vector<Ids>>();
  return c;
}

// ../shared/tokenizers/<name>/: a real tokenizer.json and reference.json, the ids the reference
// library gives for a set of hard texts.
struct ReferenceCase {
  std::string text;
  Ids ids;
};

std::vector<fs::path> reference_tokenizer_dirs() {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(shared_dir() / "tokenizers")) {
    if (fs::exists(entry.path() / "reference.json")) dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::vector<ReferenceCase> reference_cases(const fs::path& dir) {
  const json j = json::parse(read_file(dir / "reference.json"));
  std::vector<ReferenceCase> cases;
  for (const json& c : j.at("cases")) {
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<Ids>()});
  }
  return cases;
}

// What the reference library's decode gives for the ids of `text`: the text as the tokenizer's
// normalizer left it. Only Qwen3's has one (NFC); the reference texts' decomposed sequences and
// their composed forms are spelled out here.
std::string reference_decoded(const fs::path& dir, std::string text) {
  if (dir.filename() != "qwen3") return text;
  const std::pair<std::string, std::string> composed[] = {
      {"e\xCC\x81", "\xC3\xA9"},  // e + U+0301 -> U+00E9
      {"A\xCC\x8A", "\xC3\x85"},  // A + U+030A -> U+00C5
  };
  for (const auto& [from, to] : composed) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

// Runs `f`, expecting Error(kBadInput) on one line that mentions `needle`; returns the message.
template <typename F>
std::string expect_bad_input(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "expected sparsa::Error(kBadInput) mentioning " << needle;
  return {};
}

// ---- golden ids from the reference `tokenizers` library ----------------------------------

TEST(HfTokenizerGolden, FixtureTokenizerMatchesReference) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const GoldenCases c = load_cases();
  const auto tok = HfTokenizer::load(demo_tokenizer());
  for (size_t i = 0; i < c.texts.size(); ++i) {
    EXPECT_EQ(tok->encode(c.texts[i], false), c.fixture_ids[i]) << "text " << i;
  }
}

TEST(HfTokenizerGolden, Llama2TokenizerMatchesReference) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const GoldenCases c = load_cases();
  const auto tok = HfTokenizer::load(llama2_tokenizer());
  for (size_t i = 0; i < c.texts.size(); ++i) {
    EXPECT_EQ(tok->encode(c.texts[i], false), c.llama2_ids[i]) << "text " << i;
    EXPECT_EQ(tok->encode(c.texts[i], true), c.llama2_ids_with_bos[i]) << "text " << i;
  }
}

TEST(HfTokenizerGolden, DecodeInvertsEncodeForBothKinds) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const GoldenCases c = load_cases();
  for (const fs::path& file : {demo_tokenizer(), llama2_tokenizer()}) {
    const auto tok = HfTokenizer::load(file);
    for (size_t i = 0; i < c.texts.size(); ++i) {
      EXPECT_EQ(tok->decode(tok->encode(c.texts[i], false)), c.texts[i]) << file << " text " << i;
      EXPECT_EQ(tok->decode(tok->encode(c.texts[i], true), /*skip_special=*/true), c.texts[i])
          << file << " text " << i << " with BOS";
    }
  }
}

TEST(HfTokenizerGolden, RealTokenizersMatchEveryReferenceCase) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const std::vector<fs::path> dirs = reference_tokenizer_dirs();
  std::vector<std::string> names;
  for (const fs::path& dir : dirs) names.push_back(dir.filename().string());
  EXPECT_NE(std::find(names.begin(), names.end(), "llama3"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "qwen3"), names.end());
  for (const fs::path& dir : dirs) {
    const auto tok = HfTokenizer::load(dir / "tokenizer.json");
    const std::vector<ReferenceCase> cases = reference_cases(dir);
    EXPECT_GE(cases.size(), 8u) << dir;
    for (size_t i = 0; i < cases.size(); ++i) {
      EXPECT_EQ(tok->encode(cases[i].text, false), cases[i].ids) << dir << " case " << i;
      const std::string decoded = tok->decode(cases[i].ids);
      EXPECT_EQ(decoded, reference_decoded(dir, cases[i].text)) << dir << " case " << i;
      EXPECT_EQ(tok->encode(decoded, false), cases[i].ids) << dir << " case " << i << " again";
    }
  }
}

TEST(HfTokenizerGolden, Qwen3SpecialTokensAndNormalizedInput) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const auto tok = HfTokenizer::load(shared_dir() / "tokenizers" / "qwen3");
  EXPECT_EQ(tok->vocab_size(), 151669);
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->eos_id(), 151643);  // <|endoftext|>
  const Ids chat = tok->encode("<|im_start|>user\nhi<|im_end|><think></think>", false);
  ASSERT_GE(chat.size(), 4u);
  EXPECT_EQ(chat.front(), 151644);
  EXPECT_EQ(chat[chat.size() - 3], 151645);
  EXPECT_EQ(chat[chat.size() - 2], 151667);  // <think> is an added token, not special
  EXPECT_EQ(chat.back(), 151668);
  EXPECT_EQ(tok->decode(chat, /*skip_special=*/true), "user\nhi<think></think>");
  // NFC: the decomposed and the composed spellings give the same ids.
  EXPECT_EQ(tok->encode("cafe\xCC\x81 \xE2\x84\xAB", false),
            tok->encode("caf\xC3\xA9 \xC3\x85", false));
}

TEST(HfTokenizerGolden, Llama2TokenizerRoundTripsTheReferenceTexts) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const auto tok = HfTokenizer::load(llama2_tokenizer());
  for (const fs::path& dir : reference_tokenizer_dirs()) {
    const std::vector<ReferenceCase> cases = reference_cases(dir);
    for (size_t i = 0; i < cases.size(); ++i) {
      // Text around an added token (<s>, </s>) gets its own "▁" prefix, as in the library:
      // such texts do not come back verbatim.
      if (cases[i].text.find("<s>") != std::string::npos) continue;
      const Ids ids = tok->encode(cases[i].text, true);
      ASSERT_FALSE(ids.empty());
      EXPECT_EQ(ids.front(), 1);
      EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << "no <unk>: bytes fall back";
      EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), cases[i].text) << dir << " case " << i;
    }
  }
}

TEST(HfTokenizerGolden, PersuasionMatchesEvalTokens) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const auto tok = HfTokenizer::load(demo_tokenizer());
  const std::string text = read_file(repo_dir() / "data" / "persuasion.txt");
  const auto start = std::chrono::steady_clock::now();
  const Ids ids = tok->encode(text, false);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("tokenized persuasion.txt (%zu bytes) into %zu ids in %.3f s\n", text.size(),
              ids.size(), seconds);

  const auto eval =
      sparsa::TensorStore::open(shared_dir() / "golden" / "tokens.safetensors")->load_i32("eval");
  ASSERT_EQ(eval.shape, (std::vector<int64_t>{246, 512}));
  ASSERT_GE(ids.size(), eval.data.size());
  EXPECT_LT(ids.size(), 247u * 512u);  // the file drops only the tail that does not fill a window
  for (size_t i = 0; i < eval.data.size(); ++i) {
    ASSERT_EQ(ids[i], eval.data[i]) << "first difference at token " << i;
  }
}

// ---- behaviour on the bundled demo tokenizer (no ../shared needed) -----------------------

TEST(HfTokenizer, DemoTokenizerKnownIdsAndSpecialTokens) {
  const auto tok = HfTokenizer::load(demo_tokenizer());
  EXPECT_EQ(tok->vocab_size(), 8192);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  // Reference ids of the `tokenizers` library for this text.
  const Ids call_me{37, 451, 442, 1922, 74, 1310, 524, 16};
  EXPECT_EQ(tok->encode("Call me Ishmael.", false), call_me);
  Ids with_bos{1};
  with_bos.insert(with_bos.end(), call_me.begin(), call_me.end());
  EXPECT_EQ(tok->encode("Call me Ishmael.", true), with_bos);
  // Special tokens in the text are matched before the model runs.
  Ids framed = with_bos;
  framed.push_back(2);
  EXPECT_EQ(tok->encode("<s>Call me Ishmael.</s>", false), framed);
  EXPECT_EQ(tok->decode(framed), "<s>Call me Ishmael.</s>");
  EXPECT_EQ(tok->decode(framed, /*skip_special=*/true), "Call me Ishmael.");
  EXPECT_TRUE(tok->encode("", false).empty());
  EXPECT_EQ(tok->encode("", true), Ids{1});
}

TEST(HfTokenizer, LoadsFromAModelFolder) {
  const auto tok = HfTokenizer::load(demo_tokenizer().parent_path());
  EXPECT_EQ(tok->vocab_size(), 8192);
}

TEST(HfTokenizer, RejectsTextThatIsNotUtf8) {
  const auto tok = HfTokenizer::load(demo_tokenizer());
  expect_bad_input([&] { tok->encode("abc\xff", false); }, "UTF-8");
}

TEST(HfTokenizer, EncodeIsSafeToCallConcurrently) {
  const auto tok = HfTokenizer::load(demo_tokenizer());
  const std::string text = "It was the best of times, it was the worst of times.";
  const Ids expected = tok->encode(text, true);
  std::vector<Ids> results(8);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] { results[t] = tok->encode(text, true); });
  }
  for (auto& th : threads) th.join();
  for (const Ids& r : results) EXPECT_EQ(r, expected);
}

// ---- small hand-made tokenizer.json files ------------------------------------------------

// A tokenizer.json around `model` with the given normalizer / pre-tokenizer / decoder.
json tokenizer_json(json model, json added = json::array(), json normalizer = nullptr,
                    json pre_tokenizer = nullptr, json decoder = nullptr) {
  return json{
      {"version", "1.0"},          {"truncation", nullptr},    {"padding", nullptr},
      {"added_tokens", added},     {"normalizer", normalizer}, {"pre_tokenizer", pre_tokenizer},
      {"post_processor", nullptr}, {"decoder", decoder},       {"model", model}};
}

json bpe_model(json vocab, json merges, json extra = json::object()) {
  json m{{"type", "BPE"},     {"dropout", nullptr},     {"unk_token", nullptr},
         {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
         {"merges", merges}};
  for (auto& [k, v] : extra.items()) m[k] = v;
  return m;
}

std::unique_ptr<HfTokenizer> load_json(const TempDir& dir, const json& j) {
  const fs::path p = dir / "tokenizer.json";
  write_file(p, j.dump());
  return HfTokenizer::load(p);
}

const json kAbcVocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}};

TEST(HfTokenizerBpe, MergesApplyLowestRankFirst) {
  TempDir dir;
  // "b c" ranks before "a b": abc -> a + bc (no "a bc" merge).
  auto bc_first = load_json(dir, tokenizer_json(bpe_model(kAbcVocab, {"b c", "a b"})));
  EXPECT_EQ(bc_first->encode("abc", false), (Ids{0, 4}));
  auto ab_first = load_json(dir, tokenizer_json(bpe_model(kAbcVocab, {"a b", "b c", "ab c"})));
  EXPECT_EQ(ab_first->encode("abc", false), (Ids{5}));
  // Equal ranks (the same pair twice) merge leftmost first.
  auto aa = load_json(dir, tokenizer_json(bpe_model(kAbcVocab, {"a a"})));
  EXPECT_EQ(aa->encode("aaa", false), (Ids{6, 0}));
}

TEST(HfTokenizerBpe, MergesAsPairsOrStringsAgree) {
  TempDir dir;
  auto strings = load_json(dir, tokenizer_json(bpe_model(kAbcVocab, {"a b", "ab c"})));
  auto pairs =
      load_json(dir, tokenizer_json(bpe_model(kAbcVocab, json::array({{"a", "b"}, {"ab", "c"}}))));
  for (const char* text : {"abc", "cab", "abcabc", "cba"}) {
    EXPECT_EQ(strings->encode(text, false), pairs->encode(text, false)) << text;
  }
  EXPECT_EQ(pairs->encode("abcab", false), (Ids{5, 3}));
}

TEST(HfTokenizerBpe, ByteFallbackAndFusedUnk) {
  TempDir dir;
  const json vocab = {{"<unk>", 0}, {"<0xC3>", 1}, {"<0xA9>", 2}, {"x", 3}};
  auto tok = load_json(
      dir,
      tokenizer_json(
          bpe_model(vocab, json::array(),
                    {{"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true}}),
          json::array(), nullptr, nullptr,
          {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}));
  // é is C3 A9: both byte tokens exist. ü (C3 BC) lacks <0xBC>: unk, fused over the run.
  EXPECT_EQ(tok->encode("x\xC3\xA9x", false), (Ids{3, 1, 2, 3}));
  EXPECT_EQ(tok->encode("x\xC3\xBC\xC3\xBCx", false), (Ids{3, 0, 3}));
  EXPECT_EQ(tok->decode({3, 1, 2, 3}), "x\xC3\xA9x");
  // A lone continuation byte decodes to U+FFFD.
  EXPECT_EQ(tok->decode({3, 2, 3}), "x\xEF\xBF\xBDx");
}

TEST(HfTokenizerBpe, AddedTokensHonourStripAndSingleWord) {
  TempDir dir;
  const json vocab = {{"a", 0}, {"b", 1}, {" ", 2}, {"<", 3}, {"m", 4}, {">", 5}, {"<m>", 6}};
  const json strip = json::array({{{"id", 6},
                                   {"content", "<m>"},
                                   {"single_word", false},
                                   {"lstrip", true},
                                   {"rstrip", true},
                                   {"normalized", false},
                                   {"special", true}}});
  auto stripping = load_json(dir, tokenizer_json(bpe_model(vocab, json::array()), strip));
  EXPECT_EQ(stripping->encode("a <m> b", false), (Ids{0, 6, 1}));

  json plain = strip;
  plain[0]["lstrip"] = false;
  plain[0]["rstrip"] = false;
  auto keeping = load_json(dir, tokenizer_json(bpe_model(vocab, json::array()), plain));
  EXPECT_EQ(keeping->encode("a <m> b", false), (Ids{0, 2, 6, 2, 1}));

  json single = plain;
  single[0]["single_word"] = true;
  auto word = load_json(dir, tokenizer_json(bpe_model(vocab, json::array()), single));
  EXPECT_EQ(word->encode("a<m>", false), (Ids{0, 3, 4, 5}));  // glued to a word: not matched
  EXPECT_EQ(word->encode("a <m>", false), (Ids{0, 2, 6}));
}

TEST(HfTokenizerBpe, MetaspacePreTokenizerPrependsOnlyAtTheStart) {
  TempDir dir;
  const json vocab = {{"\xE2\x96\x81", 0},
                      {"a", 1},
                      {"b", 2},
                      {"\xE2\x96\x81"
                       "a",
                       3},
                      {"<s>", 4}};
  const json added =
      json::array({{{"id", 4}, {"content", "<s>"}, {"normalized", false}, {"special", true}}});
  const json metaspace = {{"type", "Metaspace"},
                          {"replacement", "\xE2\x96\x81"},
                          {"prepend_scheme", "first"},
                          {"split", true}};
  auto tok = load_json(dir, tokenizer_json(bpe_model(vocab, {"\xE2\x96\x81 a"}), added, nullptr,
                                           metaspace, metaspace));
  EXPECT_EQ(tok->encode("a b", false), (Ids{3, 0, 2}));
  EXPECT_EQ(tok->encode("<s>a", false), (Ids{4, 1}));  // not at the start: nothing prepended
  EXPECT_EQ(tok->decode({3, 0, 2}), "a b");
}

// ---- the Unicode normalizers -------------------------------------------------------------

// What `normalizer` makes of `text`: a tokenizer whose vocab holds every code point of `text`
// and `expected` (no merges, no pre-tokenizer, no decoder), so decode(encode(text)) is the
// normalized text itself; a character outside the vocab would be dropped and show as a difference.
std::string normalized(const json& normalizer, const std::string& text,
                       const std::string& expected) {
  json vocab = json::object();
  for (const std::string* s : {&text, &expected}) {
    for (size_t i = 0; i < s->size();) {
      size_t n = 1;
      while (i + n < s->size() && (static_cast<unsigned char>((*s)[i + n]) & 0xC0) == 0x80) ++n;
      const std::string ch = s->substr(i, n);
      const size_t next_id = vocab.size();
      if (!vocab.contains(ch)) vocab[ch] = next_id;
      i += n;
    }
  }
  TempDir dir;
  const auto tok =
      load_json(dir, tokenizer_json(bpe_model(vocab, json::array()), json::array(), normalizer));
  return tok->decode(tok->encode(text, false));
}

const json kNfc = {{"type", "NFC"}};
const json kNfd = {{"type", "NFD"}};
const json kNfkc = {{"type", "NFKC"}};
const json kNfkd = {{"type", "NFKD"}};
const json kLowercase = {{"type", "Lowercase"}};
const json kStripAccents = {{"type", "StripAccents"}};

json sequence(const std::vector<json>& normalizers) {
  return {{"type", "Sequence"}, {"normalizers", normalizers}};
}

// Expects normalized(normalizer, text) == expected for each pair.
void expect_normalized(const json& normalizer,
                       const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [text, expected] : cases) {
    EXPECT_EQ(normalized(normalizer, text, expected), expected) << normalizer.dump() << " " << text;
  }
}

TEST(HfTokenizerNormalizers, NfcComposes) {
  expect_normalized(kNfc,
                    {
                        {"e\xCC\x81", "\xC3\xA9"},         // e + U+0301 -> é
                        {"A\xCC\x8A", "\xC3\x85"},         // A + ring -> Å
                        {"\xE2\x84\xAB", "\xC3\x85"},      // ANGSTROM SIGN -> Å
                        {"\xEF\xAC\x81", "\xEF\xAC\x81"},  // ﬁ: compatibility only
                        {"\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", "\xED\x95\x9C"},  // jamo -> 한
                        // Canonical order: dot below (ccc 220) before circumflex (230).
                        {"a\xCC\x82\xCC\xA3", "\xE1\xBA\xAD"},  // -> ậ
                        {std::string("a\0b", 3), std::string("a\0b", 3)},
                    });
}

TEST(HfTokenizerNormalizers, NfdDecomposes) {
  expect_normalized(kNfd, {
                              {"\xC3\x85", "A\xCC\x8A"},  // Å -> A + U+030A
                              {"\xC3\xA9", "e\xCC\x81"},
                              {"\xED\x95\x9C", "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"},
                              {"\xEF\xAC\x81", "\xEF\xAC\x81"},
                              {"\xE1\xBA\xAD", "a\xCC\xA3\xCC\x82"},
                          });
}

TEST(HfTokenizerNormalizers, NfkcAndNfkdFoldCompatibilityCharacters) {
  expect_normalized(kNfkc, {
                               {"\xEF\xAC\x81", "fi"},                           // ﬁ
                               {"\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\x91", "AB1"},  // ＡＢ１
                               {"x\xC2\xB2", "x2"},                              // x²
                               {"\xE2\x91\xA0", "1"},                            // ①
                               {"e\xCC\x81", "\xC3\xA9"},
                               {"\xC2\xA0", " "},  // NBSP
                           });
  expect_normalized(kNfkd, {
                               {"\xEF\xAC\x81", "fi"},
                               {"\xC3\xA9", "e\xCC\x81"},
                               {"\xE1\xBA\x9B\xCC\xA3", "s\xCC\xA3\xCC\x87"},  // ẛ̣ (UAX #15)
                           });
}

TEST(HfTokenizerNormalizers, LowercaseMapsEachCharacterAlone) {
  expect_normalized(kLowercase, {
                                    {"HeLLo WORLD", "hello world"},
                                    {"\xC3\x80\xC3\x89", "\xC3\xA0\xC3\xA9"},  // ÀÉ -> àé
                                    // Σ is σ even at the end of a word (no context).
                                    {"\xCE\x9F\xCE\xA3", "\xCE\xBF\xCF\x83"},
                                    {"\xC4\xB0", "i\xCC\x87"},  // İ -> i + U+0307
                                    {"\xC7\x85", "\xC7\x86"},   // ǅ -> ǆ
                                    {"\xD0\x9C\xD0\xBE\xD1\x81", "\xD0\xBC\xD0\xBE\xD1\x81"},
                                    {"\xC3\x9F", "\xC3\x9F"},  // ß stays (lowercase already)
                                });
}

TEST(HfTokenizerNormalizers, StripAccentsRemovesCombiningMarks) {
  expect_normalized(kStripAccents,
                    {
                        {"e\xCC\x81", "e"},        // Mn
                        {"\xC3\xA9", "\xC3\xA9"},  // precomposed: no mark to remove
                        {"\xE0\xA4\x95\xE0\xA4\xBE", "\xE0\xA4\x95"},  // Devanagari AA (Mc)
                        {"1\xE2\x83\x9D", "1"},                        // enclosing circle (Me)
                    });
  expect_normalized(sequence({kNfd, kStripAccents}),
                    {{"H\xC3\xA9ll\xC3\xB2 \xC3\x85ngstr\xC3\xB6m", "Hello Angstrom"}});
  // BERT's uncased pipeline.
  expect_normalized(sequence({kNfd, kLowercase, kStripAccents}),
                    {{"Cr\xC3\xA8me BR\xC3\x9BL\xC3\x89"
                      "E",
                      "creme brulee"}});
}

TEST(HfTokenizerNormalizers, NormalizedAddedTokensMatchTheNormalizedText) {
  TempDir dir;
  const json vocab = {{"x", 0}, {" ", 1}};
  const json added = json::array(
      {{{"id", 2}, {"content", "Caf\xC3\xA9"}, {"normalized", true}, {"special", false}}});
  auto tok = load_json(
      dir, tokenizer_json(bpe_model(vocab, json::array()), added, sequence({kNfkc, kLowercase})));
  // The pattern is "café"; the text's fullwidth capitals and decomposed é normalize to it.
  EXPECT_EQ(tok->encode("x \xEF\xBC\xA3"
                        "AFE\xCC\x81 x",
                        false),
            (Ids{0, 1, 2, 1, 0}));
}

// ---- what the loader refuses -------------------------------------------------------------

TEST(HfTokenizerErrors, RefusesWhatItCannotReproduce) {
  TempDir dir;
  const fs::path p = dir / "tokenizer.json";
  const std::string file = p.string();
  auto load = [&](const json& j) {
    write_file(p, j.dump());
    return HfTokenizer::load(p);
  };
  const json good = tokenizer_json(bpe_model(kAbcVocab, {"a b"}));

  json wordpiece = good;
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_NE(expect_bad_input([&] { load(wordpiece); }, file).find("model.type"), std::string::npos);

  json unigram = good;
  unigram["model"]["type"] = "Unigram";
  expect_bad_input([&] { load(unigram); }, "Unigram");

  json precompiled = good;
  precompiled["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  EXPECT_NE(expect_bad_input([&] { load(precompiled); }, "normalizer.type").find("Precompiled"),
            std::string::npos);
  json nested = good;
  nested["normalizer"] = sequence({kNfc, {{"type", "BertNormalizer"}}});
  EXPECT_NE(expect_bad_input([&] { load(nested); }, "normalizer.normalizers[1].type")
                .find("BertNormalizer"),
            std::string::npos);

  json bert = good;
  bert["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  expect_bad_input([&] { load(bert); }, "pre_tokenizer.type");

  json wp_decoder = good;
  wp_decoder["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  expect_bad_input([&] { load(wp_decoder); }, "decoder.type");

  json no_vocab = good;
  no_vocab["model"].erase("vocab");
  expect_bad_input([&] { load(no_vocab); }, "model.vocab");

  json bad_merge = good;
  bad_merge["model"]["merges"] = {"a z"};
  expect_bad_input([&] { load(bad_merge); }, "model.merges[0]");

  json dropout = good;
  dropout["model"]["dropout"] = 0.1;
  expect_bad_input([&] { load(dropout); }, "model.dropout");

  json bad_regex = good;
  bad_regex["pre_tokenizer"] = {{"type", "Split"},
                                {"pattern", {{"Regex", "(unclosed"}}},
                                {"behavior", "Isolated"},
                                {"invert", false}};
  expect_bad_input([&] { load(bad_regex); }, "pre_tokenizer.pattern");

  write_file(p, "{\"model\": {\"type\": \"BPE\", ");
  expect_bad_input([&] { HfTokenizer::load(p); }, file + ": malformed JSON");

  expect_bad_input([&] { HfTokenizer::load(dir / "missing.json"); }, "missing.json");
}

// Ids index a table: an id far beyond the number of entries (2e7 in a file of a few bytes) is
// refused before memory is allocated for it; ids with a few holes still load.
TEST(HfTokenizerErrors, VocabularyIdsAreBoundedByTheEntries) {
  TempDir dir;
  json huge = tokenizer_json(bpe_model(kAbcVocab, {"a b"}));
  huge["model"]["vocab"]["zz"] = 20000000;
  const std::string m = expect_bad_input([&] { load_json(dir, huge); }, "model.vocab");
  EXPECT_NE(m.find("20000000"), std::string::npos) << m;
  EXPECT_NE(m.find((dir / "tokenizer.json").string()), std::string::npos) << m;

  json holes = tokenizer_json(bpe_model(kAbcVocab, {"a b"}));
  holes["model"]["vocab"]["zz"] = 1000;
  EXPECT_EQ(load_json(dir, holes)->vocab_size(), 1001);
}

// Sections are built recursively (a Sequence of Sequences): nesting is bounded when parsing.
TEST(HfTokenizerErrors, DeeplyNestedJsonIsRefused) {
  TempDir dir;
  const fs::path p = dir / "tokenizer.json";
  std::string nested;
  for (int i = 0; i < 100000; ++i) nested += R"({"type": "Sequence", "decoders": [)";
  write_file(p, R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "decoder": )" + nested);
  expect_bad_input([&] { HfTokenizer::load(p); }, p.string() + ": JSON nested more than 256 levels deep");
}

// ---- llama2.c tokenizer.bin --------------------------------------------------------------

// run.c's encode() written out literally (quadratic merge loop), the reference for the fast one.
Ids run_c_encode(const std::vector<std::string>& vocab, const std::vector<float>& scores,
                 const std::string& text, bool bos, bool eos) {
  auto lookup = [&](const std::string& s) -> int32_t {
    for (size_t i = 0; i < vocab.size(); ++i) {
      if (vocab[i] == s) return static_cast<int32_t>(i);
    }
    return -1;
  };
  Ids tokens;
  if (bos) tokens.push_back(1);
  if (!text.empty()) tokens.push_back(lookup(" "));
  std::string buf;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) buf.clear();
    buf += static_cast<char>(c);
    const unsigned char next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    if ((next & 0xC0) == 0x80 && buf.size() < 4) continue;
    const int32_t id = lookup(buf);
    if (id != -1) {
      tokens.push_back(id);
    } else {
      for (const char b : buf) tokens.push_back(static_cast<unsigned char>(b) + 3);
    }
    buf.clear();
  }
  while (true) {
    float best_score = -1e10f;
    int32_t best_id = -1;
    size_t best_idx = 0;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      const int32_t id = lookup(vocab[tokens[i]] + vocab[tokens[i + 1]]);
      if (id != -1 && scores[id] > best_score) {
        best_score = scores[id];
        best_id = id;
        best_idx = i;
      }
    }
    if (best_id == -1) break;
    tokens[best_idx] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_idx) + 1);
  }
  if (eos) tokens.push_back(2);
  return tokens;
}

// Parses tok512.bin the straightforward way for the reference encoder.
void read_bin(const fs::path& p, int32_t n, std::vector<std::string>& vocab,
              std::vector<float>& scores) {
  const std::string bytes = read_file(p);
  size_t pos = 4;
  for (int32_t i = 0; i < n; ++i) {
    float score;
    int32_t len;
    std::memcpy(&score, bytes.data() + pos, 4);
    std::memcpy(&len, bytes.data() + pos + 4, 4);
    pos += 8;
    vocab.push_back(bytes.substr(pos, static_cast<size_t>(len)));
    scores.push_back(score);
    pos += static_cast<size_t>(len);
  }
}

std::string decode_all(const Llama2cTokenizer& tok, const Ids& ids) {
  std::string text;
  for (size_t i = 1; i < ids.size(); ++i) text += tok.decode_piece(ids[i - 1], ids[i]);
  return text;
}

TEST(Llama2cTokenizer, EncodesAsRunCAndDecodesBack) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const auto tok = Llama2cTokenizer::load(stories_tokenizer(), 512);
  std::vector<std::string> vocab;
  std::vector<float> scores;
  read_bin(stories_tokenizer(), 512, vocab, scores);

  const std::string prompt = "Once upon a time";
  const Ids ids = tok->encode(prompt, true, false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_LT(ids.size(), prompt.size());  // merges happened
  EXPECT_EQ(ids, run_c_encode(vocab, scores, prompt, true, false));
  EXPECT_EQ(decode_all(*tok, ids), prompt);

  const std::string persuasion = read_file(repo_dir() / "data" / "persuasion.txt").substr(0, 1200);
  for (const std::string& text :
       {std::string("Lily and Tom"), std::string("naïve café – “quotes” 日本語 🙂\n"),
        std::string(""), persuasion}) {
    const Ids got = tok->encode(text, true, true);
    EXPECT_EQ(got, run_c_encode(vocab, scores, text, true, true)) << text.substr(0, 40);
    EXPECT_EQ(got.back(), 2);
  }
  // Raw-byte pieces decode to the byte itself ('\n' is <0x0A>, id 10 + 3).
  EXPECT_EQ(tok->decode_piece(5, 13), "\n");
  expect_bad_input([&] { tok->decode_piece(1, 512); }, "tok512.bin");
}

TEST(Llama2cTokenizer, RejectsMalformedFiles) {
  TempDir dir;
  auto le32 = [](int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto entry = [&](float score, const std::string& piece) {
    return std::string(reinterpret_cast<const char*>(&score), 4) +
           le32(static_cast<int32_t>(piece.size())) + piece;
  };
  const fs::path p = dir / "tok.bin";
  const std::string file = p.string();

  write_file(p, le32(4) + entry(0, "a") + entry(0, "b"));
  EXPECT_NO_THROW(Llama2cTokenizer::load(p, 2));
  expect_bad_input([&] { Llama2cTokenizer::load(p, 3); }, file + ": truncated");

  write_file(p, le32(4) + entry(0, "a") + std::string("\0\0\0\0", 4) + le32(50) + "bc");
  expect_bad_input([&] { Llama2cTokenizer::load(p, 2); }, "past the end");

  write_file(p, le32(4) + entry(0, "a") + std::string("\0\0\0\0", 4) + le32(-3));
  expect_bad_input([&] { Llama2cTokenizer::load(p, 2); }, "negative length");

  write_file(p, "\x01\x00");
  expect_bad_input([&] { Llama2cTokenizer::load(p, 1); }, file);
  expect_bad_input([&] { Llama2cTokenizer::load(dir / "absent.bin", 1); }, "absent.bin");
  expect_bad_input([&] { Llama2cTokenizer::load(p, 0); }, "vocab size");
}

// ---- the `sparsa tokenize` command -------------------------------------------------------

TEST(TokenizeCommand, PrintsIdsPlainAndAsJson) {
  const std::string tok = demo_tokenizer().string();
  auto plain = run_sparsa({"tokenize", "--tokenizer", tok, "--text", "Call me Ishmael."});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "37 451 442 1922 74 1310 524 16\n");

  TempDir dir;
  write_file(dir / "in.txt", "Call me Ishmael.");
  auto js = run_sparsa({"tokenize", "--tokenizer", tok, "--text-file", (dir / "in.txt").string(),
                        "--bos", "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  EXPECT_EQ(json::parse(js.out), json({1, 37, 451, 442, 1922, 74, 1310, 524, 16}));

  auto decoded = run_sparsa({"tokenize", "--tokenizer", tok, "--decode", "--skip-special", "--text",
                             "[1, 37, 451, 442]"});
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out, "Call me");
}

// The non-ASCII cases (loading the 11 MB file takes a second per run); the library test above
// covers every case.
// The CLI's path through the Qwen3 tokenizer (its normalizer included) on the first non-ASCII
// reference case; HfTokenizerGolden checks every case through the library, and each CLI call loads
// the 150k-entry vocabulary again (seconds under the sanitizers).
TEST(TokenizeCommand, Qwen3TokenizerEncodesAndDecodesANonAsciiCase) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const fs::path dir = shared_dir() / "tokenizers" / "qwen3";
  const std::string tok = (dir / "tokenizer.json").string();
  TempDir tmp;
  const std::vector<ReferenceCase> cases = reference_cases(dir);
  const auto non_ascii = std::find_if(cases.begin(), cases.end(), [](const ReferenceCase& c) {
    return std::any_of(c.text.begin(), c.text.end(), [](char ch) { return (ch & 0x80) != 0; });
  });
  ASSERT_NE(non_ascii, cases.end());
  write_file(tmp / "in.txt", non_ascii->text);
  auto enc = run_sparsa({"tokenize", "--tokenizer", tok, "--text-file", (tmp / "in.txt").string(), "--json"});
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  EXPECT_EQ(json::parse(enc.out).get<Ids>(), non_ascii->ids);
  auto dec = run_sparsa({"tokenize", "--tokenizer", tok, "--decode", "--text", json(non_ascii->ids).dump()});
  ASSERT_EQ(dec.exit_code, 0) << dec.err;
  EXPECT_EQ(dec.out, reference_decoded(dir, non_ascii->text));
}

TEST(TokenizeCommand, PersuasionViaCliMatchesLibrary) {
  const std::string text_file = (repo_dir() / "data" / "persuasion.txt").string();
  auto r = run_sparsa(
      {"tokenize", "--tokenizer", demo_tokenizer().string(), "--text-file", text_file, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).get<Ids>(),
            HfTokenizer::load(demo_tokenizer())->encode(read_file(text_file), false));
}

TEST(TokenizeCommand, BadTokenizerFilesExitWithCode2AndOneLine) {
  TempDir dir;
  const fs::path bad = dir / "wordpiece.json";
  json j = tokenizer_json(bpe_model(kAbcVocab, json::array()));
  j["model"]["type"] = "WordPiece";
  write_file(bad, j.dump());
  auto r = run_sparsa({"tokenize", "--tokenizer", bad.string(), "--text", "hi"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(bad.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("WordPiece"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  const fs::path broken = dir / "broken.json";
  write_file(broken, "{ not json");
  auto m = run_sparsa({"tokenize", "--tokenizer", broken.string(), "--text", "hi"});
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_NE(m.err.find(broken.string()), std::string::npos) << m.err;
  EXPECT_EQ(std::count(m.err.begin(), m.err.end(), '\n'), 1) << m.err;

  write_file(dir / "bad.txt", "caf\xe9\n");
  auto u = run_sparsa({"tokenize", "--tokenizer", demo_tokenizer().string(), "--text-file",
                       (dir / "bad.txt").string()});
  EXPECT_EQ(u.exit_code, 2);
  EXPECT_NE(u.err.find("bad.txt"), std::string::npos) << u.err;

  auto none = run_sparsa({"tokenize", "--tokenizer", demo_tokenizer().string()});
  EXPECT_EQ(none.exit_code, 2);
}

TEST(TokenizeCommand, Llama2cBinNeedsVocabSizeAndRoundTrips) {
  if (!shared_available()) GTEST_SKIP() << "../shared is absent";
  const std::string bin = stories_tokenizer().string();
  auto missing = run_sparsa({"tokenize", "--tokenizer", bin, "--text", "hi"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("--vocab-size"), std::string::npos) << missing.err;

  auto enc = run_sparsa({"tokenize", "--tokenizer", bin, "--vocab-size", "512", "--bos", "--json",
                         "--text", "Once upon a time"});
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  const Ids ids = json::parse(enc.out).get<Ids>();
  EXPECT_EQ(ids, Llama2cTokenizer::load(bin, 512)->encode("Once upon a time", true, false));
  auto dec = run_sparsa({"tokenize", "--tokenizer", bin, "--vocab-size", "512", "--decode",
                         "--skip-special", "--text", json(ids).dump()});
  ASSERT_EQ(dec.exit_code, 0) << dec.err;
  EXPECT_EQ(dec.out, "Once upon a time");
}

}  // namespace
