// The evaluation windows (sparsa/eval_set.h) that `sparsa eval`, `sparsa acts` and `sparsa study`
// measure perplexity on: the windows a tokens file or a text file gives, computed here
// independently, and one clear error naming the file and tensor for each kind of bad input.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "sparsa/eval_set.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"
#include "sparsa/tokenizer.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using test::bad_input_message;
using test::TempDir;

fs::path demo_dir() { return test::repo_dir() / "models" / "tiny-llama-15m"; }

const ModelConfig& demo_config() {
  static const ModelConfig c = load_hf_config(demo_dir() / "config.json");
  return c;
}

// `rows` x `cols` token ids 0, 1, 2, ... (all inside the vocabulary) as tensor "eval".
fs::path counting_tokens(const TempDir& tmp, int64_t rows, int64_t cols) {
  std::vector<int32_t> ids(static_cast<size_t>(rows * cols));
  std::iota(ids.begin(), ids.end(), 0);
  const fs::path path = tmp / "tokens.safetensors";
  write_safetensors(path, {{"eval", DType::I32, {rows, cols}, ids.data()}});
  return path;
}

EvalSetSpec tokens_spec(const fs::path& file) {
  EvalSetSpec spec;
  spec.tokens_file = file;
  return spec;
}

EvalSetSpec text_spec(const fs::path& file) {
  EvalSetSpec spec;
  spec.text_file = file;
  spec.tokenizer = demo_dir() / "tokenizer.json";
  return spec;
}

// `n` consecutive ids from `first` on: the tokens of counting_tokens in order.
std::vector<int32_t> counting(int32_t first, size_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

TEST(EvalSet, RowsOfATokensFileAreTheWindows) {
  TempDir tmp;
  const fs::path file = counting_tokens(tmp, 3, 16);
  for (const RowCut cut : {RowCut::kConcatenate, RowCut::kPrefix}) {
    EvalSetSpec spec = tokens_spec(file);
    spec.row_cut = cut;
    const TensorI32 w = load_eval_windows(spec, demo_config());
    EXPECT_EQ(w.shape, (std::vector<int64_t>{3, 16}));
    EXPECT_EQ(w.data, counting(0, 48));
    spec.limit = 2;
    const TensorI32 first = load_eval_windows(spec, demo_config());
    EXPECT_EQ(first.shape, (std::vector<int64_t>{2, 16}));
    EXPECT_EQ(first.data, counting(0, 32));
  }
}

TEST(EvalSet, ConcatenateCutsTheRowsAnew) {
  TempDir tmp;
  EvalSetSpec spec = tokens_spec(counting_tokens(tmp, 3, 16));
  spec.seqlen = 8;
  TensorI32 w = load_eval_windows(spec, demo_config());
  EXPECT_EQ(w.shape, (std::vector<int64_t>{6, 8}));
  EXPECT_EQ(w.data, counting(0, 48));
  spec.seqlen = 20;  // longer than a row: the tail of 8 tokens is dropped
  w = load_eval_windows(spec, demo_config());
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 20}));
  EXPECT_EQ(w.data, counting(0, 40));

  const std::vector<int32_t> stream = counting(0, 50);
  write_safetensors(tmp / "stream.safetensors", {{"eval", DType::I32, {50}, stream.data()}});
  spec = tokens_spec(tmp / "stream.safetensors");
  spec.seqlen = 16;
  w = load_eval_windows(spec, demo_config());
  EXPECT_EQ(w.shape, (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(w.data, counting(0, 48));
}

TEST(EvalSet, PrefixTakesTheFirstTokensOfEachRow) {
  TempDir tmp;
  EvalSetSpec spec = tokens_spec(counting_tokens(tmp, 3, 16));
  spec.row_cut = RowCut::kPrefix;
  spec.seqlen = 5;
  const TensorI32 w = load_eval_windows(spec, demo_config());
  EXPECT_EQ(w.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(w.data, (std::vector<int32_t>{0, 1, 2, 3, 4, 16, 17, 18, 19, 20, 32, 33, 34, 35, 36}));
  spec.seqlen = 17;
  const std::string msg = bad_input_message([&] { load_eval_windows(spec, demo_config()); });
  EXPECT_NE(msg.find("longer than its rows (16 tokens)"), std::string::npos) << msg;
}

TEST(EvalSet, TextIsTokenizedWithoutBosAndCutIntoConsecutiveWindows) {
  const fs::path text = test::repo_dir() / "data" / "persuasion.txt";
  const std::vector<int32_t> ids =
      HfTokenizer::load(demo_dir() / "tokenizer.json")->encode(test::read_file(text), /*add_bos=*/false);
  EvalSetSpec spec = text_spec(text);
  const TensorI32 whole = load_eval_windows(spec, demo_config());  // the model's context
  EXPECT_EQ(whole.data, make_windows(ids, demo_config().max_position).data);
  spec.seqlen = 64;
  spec.limit = 3;
  const TensorI32 w = load_eval_windows(spec, demo_config());
  EXPECT_EQ(w.shape, (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(w.data, std::vector<int32_t>(ids.begin(), ids.begin() + 3 * 64));
}

// The golden evaluation windows come back unchanged (the perplexity tests measure exactly these).
TEST(EvalSet, GoldenWindowsAreTheTensor) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const fs::path file = test::shared_dir() / "golden" / "tokens.safetensors";
  for (const RowCut cut : {RowCut::kConcatenate, RowCut::kPrefix}) {
    EvalSetSpec spec = tokens_spec(file);
    spec.row_cut = cut;
    const TensorI32 w = load_eval_windows(spec, demo_config());
    const TensorI32 t = TensorStore::open(file)->load_i32("eval");
    EXPECT_EQ(w.shape, t.shape);
    EXPECT_EQ(w.data, t.data);
  }
}

TEST(EvalSet, BadFilesAreOneLineErrorsNamingTheFileAndTensor) {
  TempDir tmp;
  const fs::path file = counting_tokens(tmp, 2, 16);
  EvalSetSpec missing = tokens_spec(tmp / "nope.safetensors");
  EXPECT_NE(bad_input_message([&] { load_eval_windows(missing, demo_config()); }).find("nope.safetensors"),
            std::string::npos);

  EvalSetSpec bad_key = tokens_spec(file);
  bad_key.key = "calib";
  const std::string key_msg = bad_input_message([&] { load_eval_windows(bad_key, demo_config()); });
  EXPECT_NE(key_msg.find(file.string() + ": no tensor 'calib'; it holds: eval"), std::string::npos) << key_msg;

  const std::vector<int32_t> cube(8, 1);
  const std::vector<float> floats(32, 1.0f);
  write_safetensors(tmp / "cube.safetensors", {{"eval", DType::I32, {2, 2, 2}, cube.data()}});
  write_safetensors(tmp / "floats.safetensors", {{"eval", DType::F32, {2, 16}, floats.data()}});
  for (const char* name : {"cube.safetensors", "floats.safetensors"}) {
    const std::string msg = bad_input_message([&] { load_eval_windows(tokens_spec(tmp / name), demo_config()); });
    EXPECT_NE(msg.find((tmp / name).string() + ": tensor 'eval'"), std::string::npos) << msg;
  }

  std::vector<int32_t> ids(32, 5);
  ids[20] = static_cast<int32_t>(demo_config().vocab_size);
  write_safetensors(tmp / "vocab.safetensors", {{"eval", DType::I32, {2, 16}, ids.data()}});
  const std::string vocab_msg =
      bad_input_message([&] { load_eval_windows(tokens_spec(tmp / "vocab.safetensors"), demo_config()); });
  EXPECT_NE(vocab_msg.find("tensor 'eval': token 20 has id 8192, outside the model's vocabulary"), std::string::npos)
      << vocab_msg;
}

TEST(EvalSet, TooShortTextNamesTheFile) {
  TempDir tmp;
  test::write_file(tmp / "short.txt", "Call me Ishmael.");
  EvalSetSpec spec = text_spec(tmp / "short.txt");
  const std::string msg = bad_input_message([&] { load_eval_windows(spec, demo_config()); });
  EXPECT_NE(msg.find((tmp / "short.txt").string() + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find("fewer than one window of 512"), std::string::npos) << msg;

  spec.tokenizer.clear();
  EXPECT_NE(bad_input_message([&] { load_eval_windows(spec, demo_config()); }).find("no tokenizer"), std::string::npos);
  spec = text_spec(tmp / "absent.txt");
  EXPECT_NE(bad_input_message([&] { load_eval_windows(spec, demo_config()); }).find("absent.txt"), std::string::npos);
}

TEST(EvalSet, WindowLengthLimitAndSourceAreChecked) {
  TempDir tmp;
  const fs::path file = counting_tokens(tmp, 2, 16);
  for (const int64_t seqlen : {int64_t{1}, int64_t{-4}}) {
    EvalSetSpec spec = tokens_spec(file);
    spec.seqlen = seqlen;
    EXPECT_NE(bad_input_message([&] { load_eval_windows(spec, demo_config()); }).find("too short"), std::string::npos);
  }
  EvalSetSpec spec = tokens_spec(file);
  spec.seqlen = demo_config().max_position + 1;
  EXPECT_NE(bad_input_message([&] { load_eval_windows(spec, demo_config()); }).find("context length 512"),
            std::string::npos);
  spec = tokens_spec(file);
  spec.limit = -1;
  EXPECT_NE(bad_input_message([&] { load_eval_windows(spec, demo_config()); }).find("-1"), std::string::npos);
  spec = tokens_spec(file);
  spec.text_file = test::repo_dir() / "data" / "persuasion.txt";
  EXPECT_NE(bad_input_message([&] { load_eval_windows(spec, demo_config()); }).find("exactly one"), std::string::npos);
  EXPECT_NE(bad_input_message([&] { load_eval_windows(EvalSetSpec{}, demo_config()); }).find("exactly one"),
            std::string::npos);
}

}  // namespace
}  // namespace sparsa
