// Which tokenizer made a token file (sparsa/tokenizer.h, docs/token-files.md): the SHA-256 of the
// tokenizer file (checked against the standard's test vectors), the metadata `sparsa tokenize
// --out` writes, and the check every reader of token files makes against the model's tokenizer:
// the same tokenizer passes, another one is a one-line bad-input error naming both, a file that
// records none is used with one warning line.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/calibration.h"
#include "sparsa/eval_set.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"
#include "sparsa/tokenizer.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::bad_input_message;
using test::run_sparsa;
using test::TempDir;

fs::path demo_dir() { return test::repo_dir() / "models" / "tiny-llama-15m"; }
fs::path demo_tokenizer() { return demo_dir() / "tokenizer.json"; }
const ModelConfig& demo_config() {
  static const ModelConfig c = load_hf_config(demo_dir() / "config.json");
  return c;
}

// 4 x 32 ids 0, 1, 2, ... as tensor `key`, recording `tokenizer` (none when empty).
fs::path token_file(const TempDir& tmp, const std::string& name, const fs::path& tokenizer, const std::string& key) {
  std::vector<int32_t> ids(4 * 32);
  std::iota(ids.begin(), ids.end(), 0);
  const fs::path path = tmp / name;
  if (tokenizer.empty()) write_safetensors(path, {{key, DType::I32, {4, 32}, ids.data()}});
  else write_token_file(path, key, {4, 32}, ids, tokenizer);
  return path;
}

// The demo tokenizer with one byte more: the same vocabulary, another file.
fs::path other_tokenizer(const TempDir& tmp) {
  const fs::path p = tmp / "other-tokenizer.json";
  test::write_file(p, test::read_file(demo_tokenizer()) + " ");
  return p;
}

TEST(TokenizerHash, IsTheSha256OfTheFileBytes) {
  TempDir tmp;
  // FIPS 180-2 examples and the padding boundaries (55, 56, 64 bytes), as hashlib gives them.
  const std::pair<std::string, std::string> cases[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::string(55, 'a'), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {std::string(64, 'a'), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (const auto& [bytes, digest] : cases) {
    test::write_file(tmp / "t", bytes);
    EXPECT_EQ(tokenizer_sha256(tmp / "t"), digest) << bytes.size() << " bytes";
  }
  EXPECT_NE(bad_input_message([&] { tokenizer_sha256(tmp / "missing.json"); }).find("missing.json"), std::string::npos);
}

TEST(TokenFile, RecordsTheTokenizerAndPassesItsCheck) {
  TempDir tmp;
  const fs::path file = token_file(tmp, "t.safetensors", demo_tokenizer(), "eval");
  const auto st = SafetensorsFile::open(file);
  EXPECT_EQ(st->metadata().at(std::string(kTokenizerHashKey)), tokenizer_sha256(demo_tokenizer()));
  EXPECT_EQ(check_token_file_tokenizer(file, demo_tokenizer()), TokenizerCheck::kMatch);
  EXPECT_EQ(check_token_file_tokenizer(file, {}), TokenizerCheck::kUnchecked);
  const fs::path bare = token_file(tmp, "bare.safetensors", {}, "eval");
  EXPECT_EQ(check_token_file_tokenizer(bare, demo_tokenizer()), TokenizerCheck::kUnrecorded);
}

TEST(TokenFile, AnotherTokenizersFileIsRefusedByEveryReader) {
  TempDir tmp;
  const fs::path other = other_tokenizer(tmp);
  const fs::path eval_file = token_file(tmp, "eval.safetensors", other, "eval");
  const fs::path calib_file = token_file(tmp, "calib.safetensors", other, "calib");
  const std::string expected_hash = tokenizer_sha256(demo_tokenizer());

  EvalSetSpec eval;
  eval.tokens_file = eval_file;
  eval.tokenizer = demo_tokenizer();
  const std::string eval_msg = bad_input_message([&] { load_eval_windows(eval, demo_config()); });
  CalibrationSpec calib;
  calib.tokens_file = calib_file;
  calib.tokenizer = demo_tokenizer();
  calib.nsamples = 2;
  const std::string calib_msg = bad_input_message([&] { load_calibration(calib, demo_config()); });
  for (const auto& [msg, file] : {std::pair{eval_msg, eval_file}, std::pair{calib_msg, calib_file}}) {
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(demo_tokenizer().string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(tokenizer_sha256(other)), std::string::npos) << msg;
    EXPECT_NE(msg.find(expected_hash), std::string::npos) << msg;
  }
  // Without a model tokenizer to compare with, nothing is checked.
  eval.tokenizer.clear();
  EXPECT_EQ(load_eval_windows(eval, demo_config()).dim(0), 4);
  calib.tokenizer.clear();
  EXPECT_EQ(load_calibration(calib, demo_config()).tokens.dim(0), 2);
}

// The CLI: `tokenize --out` writes a file eval, acts and prune take with the demo model; another
// tokenizer's file is refused by each (exit 2, one line); a file without the hash warns once.
TEST(TokenFileCli, TokenizeOutIsCheckedByEveryCommand) {
  TempDir tmp;
  const std::string text = (test::repo_dir() / "data" / "persuasion.txt").string();
  const fs::path good = tmp / "good.safetensors", bad = tmp / "bad.safetensors";
  const auto written = run_sparsa({"tokenize", "--tokenizer", demo_tokenizer().string(), "--text-file", text, "--out",
                                   good.string(), "--key", "calib", "--seqlen", "64", "--json"});
  ASSERT_EQ(written.exit_code, 0) << written.err;
  const json w = json::parse(written.out);
  EXPECT_EQ(w["tokenizer_sha256"], tokenizer_sha256(demo_tokenizer()));
  EXPECT_EQ(w["shape"][1], 64);
  EXPECT_EQ(TensorStore::open(good)->info("calib").shape, (std::vector<int64_t>{w["shape"][0].get<int64_t>(), 64}));
  ASSERT_EQ(run_sparsa({"tokenize", "--tokenizer", other_tokenizer(tmp).string(), "--text-file", text, "--out",
                        bad.string(), "--key", "calib", "--seqlen", "64"})
                .exit_code,
            0);
  const auto commands = [&](const fs::path& file) {
    const std::string f = file.string();
    return std::vector<std::vector<std::string>>{
        {"eval", "--eval-tokens", f, "--eval-key", "calib", "--eval-limit", "1"},
        {"acts", "--calib", f, "--calib-key", "calib", "--nsamples", "1", "--act-sparsities", "0.5"},
        {"prune", "--method", "wanda", "--sparsity", "0.5", "--calib", f, "--calib-key", "calib", "--nsamples", "1",
         "--out", (tmp / ("pruned-" + file.stem().string())).string()}};
  };
  for (const auto& args : commands(good)) {
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << args[0] << ": " << r.err;
  }
  for (const auto& args : commands(bad)) {
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("another tokenizer"), std::string::npos) << args[0] << ": " << r.err;
  }
  // A file recording no tokenizer: one warning line (beside the progress summary), and the command works.
  const fs::path bare = token_file(tmp, "bare.safetensors", {}, "eval");
  const auto r = run_sparsa({"eval", "--eval-tokens", bare.string(), "--eval-limit", "1", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string warning = "warning: " + bare.string() + " records no tokenizer";
  const size_t at = r.err.find(warning);
  EXPECT_NE(at, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warning", at + 1), std::string::npos) << r.err;
}

// Without --calib or --calib-text, acts, prune (Wanda) and generate --act-sparsity calibrate on
// the bundled data/calib-tokens.safetensors, as study does; its recorded tokenizer refuses it for
// the demo model with another tokenizer file beside it.
TEST(TokenFileCli, TheBundledCalibrationIsEveryCommandsDefault) {
  TempDir tmp;
  const auto commands = [&](const fs::path& model) {
    const std::string m = model.string();
    return std::vector<std::vector<std::string>>{
        {"acts", "--model", m, "--nsamples", "1", "--act-sparsities", "0.5", "--json"},
        {"prune", "--model", m, "--method", "wanda", "--sparsity", "0.5", "--nsamples", "1", "--json", "--out",
         (tmp / ("pruned-" + model.filename().string())).string()},
        {"generate", "--model", m, "--prompt", "Once", "--steps", "2", "--act-sparsity", "0.5", "--nsamples", "1",
         "--json"}};
  };
  for (const auto& args : commands(demo_dir())) {
    const auto r = run_sparsa(args);
    ASSERT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
    EXPECT_NE(r.out.find("calib-tokens.safetensors"), std::string::npos) << args[0] << ": " << r.out;
  }
  // The demo model with another tokenizer.json: the same weights (linked), another tokenizer hash.
  const fs::path other = tmp / "other-model";
  fs::create_directories(other);
  for (const auto& e : fs::directory_iterator(demo_dir()))
    if (e.path().filename() != "tokenizer.json") fs::create_symlink(e.path(), other / e.path().filename());
  fs::copy_file(other_tokenizer(tmp), other / "tokenizer.json");
  for (const auto& args : commands(other)) {
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("another tokenizer"), std::string::npos) << args[0] << ": " << r.err;
  }
}

TEST(TokenFileCli, TokenizeOutRefusesBadRequests) {
  TempDir tmp;
  const std::string out = (tmp / "t.safetensors").string();
  const auto longer = run_sparsa({"tokenize", "--tokenizer", demo_tokenizer().string(), "--text", "Hello world.",
                                  "--out", out, "--seqlen", "4096"});
  EXPECT_EQ(longer.exit_code, 2);
  EXPECT_NE(longer.err.find("fewer than one window"), std::string::npos) << longer.err;
  const auto decode = run_sparsa({"tokenize", "--tokenizer", demo_tokenizer().string(), "--text", "1 2", "--decode",
                                  "--out", out});
  EXPECT_EQ(decode.exit_code, 2);
  const auto over = run_sparsa({"tokenize", "--tokenizer", demo_tokenizer().string(), "--text", "Hi", "--out",
                                demo_tokenizer().string()});
  EXPECT_EQ(over.exit_code, 2) << over.err;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace sparsa
