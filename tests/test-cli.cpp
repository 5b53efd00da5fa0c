// The `sparsa` command line: usage errors exit 2 with one line on stderr, --help exits 0 and
// lists the flags of the contract, and `sparsa eval --json` prints one JSON object.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using test::run_sparsa;
using test::shared_available;
using test::shared_dir;
using test::TempDir;


fs::path golden_tokens() { return shared_dir() / "golden" / "tokens.safetensors"; }

// A tokens file of valid ids for the demo model: "eval" [rows, cols].
fs::path small_tokens(const TempDir& tmp, int64_t rows, int64_t cols) {
  std::vector<int32_t> ids(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(3 + (i * 37) % 8000);
  const auto path = tmp / "tokens.safetensors";
  write_safetensors(path, {{"eval", DType::I32, {rows, cols}, ids.data()}});
  return path;
}

void expect_usage_error(const test::CommandResult& r, const std::string& what) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << "stderr is not one line: " << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << "stderr does not mention '" << what << "': " << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Cli, SeqlenAboveTheModelContextIsBadInput) {
  TempDir tmp;
  const auto tokens = small_tokens(tmp, 2, 1100);
  const auto r = run_sparsa({"eval", "--eval-tokens", tokens.string(), "--eval-key", "eval", "--seqlen", "1024"});
  expect_usage_error(r, "context");
  EXPECT_NE(r.err.find("512"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1024"), std::string::npos) << r.err;
}

TEST(Cli, SeqlenBelowTwoIsBadInput) {
  TempDir tmp;
  const auto tokens = small_tokens(tmp, 2, 16);
  expect_usage_error(run_sparsa({"eval", "--eval-tokens", tokens.string(), "--eval-key", "eval", "--seqlen", "1"}), "--seqlen");
  expect_usage_error(run_sparsa({"eval", "--eval-tokens", tokens.string(), "--eval-key", "eval", "--seqlen", "-5"}), "--seqlen");
}

TEST(Cli, FewerTokensThanOneWindowNamesTheFile) {
  TempDir tmp;
  const auto tokens = small_tokens(tmp, 1, 100);
  const auto r = run_sparsa({"eval", "--eval-tokens", tokens.string(), "--eval-key", "eval", "--seqlen", "200"});
  expect_usage_error(r, tokens.string());
}

TEST(Cli, NegativeLimitIsBadInput) {
  TempDir tmp;
  const auto tokens = small_tokens(tmp, 2, 16);
  expect_usage_error(run_sparsa({"eval", "--eval-tokens", tokens.string(), "--eval-key", "eval", "--eval-limit", "-1"}), "--eval-limit");
}

// (CLI11 reports "A subcommand is required" here, without the unknown name: exit code and one
// line are the contract; the wording is main.cpp's business.)
TEST(Cli, UnknownSubcommandIsAUsageError) {
  expect_usage_error(run_sparsa({"frobnicate"}), "unknown command 'frobnicate'");
  expect_usage_error(run_sparsa({"frobnicate", "--model", "x"}), "unknown command 'frobnicate'");
}

TEST(Cli, NoSubcommandIsAUsageError) {
  const auto r = run_sparsa({});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
}

TEST(Cli, UnknownFlagIsAUsageError) {
  expect_usage_error(run_sparsa({"eval", "--frobnicate"}), "--frobnicate");
  expect_usage_error(run_sparsa({"generate", "--prompt", "hi", "--frobnicate", "3"}), "--frobnicate");
  expect_usage_error(run_sparsa({"--frobnicate"}), "");
}

TEST(Cli, MalformedFlagValuesAreUsageErrors) {
  expect_usage_error(run_sparsa({"eval", "--seqlen", "abc"}), "--seqlen");
  expect_usage_error(run_sparsa({"eval", "--device", "tpu"}), "--device");
  expect_usage_error(run_sparsa({"eval", "--model"}), "--model");  // the value is missing
  expect_usage_error(run_sparsa({"eval", "--eval-tokens", "a.safetensors", "--eval-text", "b.txt"}), "--eval-t");  // excluded pair
}

TEST(Cli, HelpExitsZeroAndListsTheCommands) {
  const auto r = run_sparsa({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"eval", "generate", "tokenize"}) EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(Cli, EvalHelpExitsZeroAndListsTheContractFlags) {
  const auto r = run_sparsa({"eval", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* flag : {"--model", "--tokenizer", "--eval-tokens", "--eval-key", "--eval-text", "--eval-limit", "--seqlen", "--device", "--json"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << " missing from:\n" << r.out;
}

TEST(Cli, GenerateHelpExitsZeroAndListsTheContractFlags) {
  const auto r = run_sparsa({"generate", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* flag : {"--model", "--tokenizer", "--prompt", "--steps", "--temperature"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << " missing from:\n" << r.out;
}

TEST(Cli, AnOptionGivenTwiceIsAUsageErrorSayingSo) {
  const auto r = run_sparsa({"eval", "--eval-key", "a", "--eval-key", "b"});
  expect_usage_error(r, "--eval-key takes one value and was given 2 (pass it once)");
  expect_usage_error(run_sparsa({"generate", "--prompt", "a", "--steps", "2", "--steps", "3"}), "--steps takes one value");
}

// Found by the CLI option fuzzer: --threads 100000 overflowed libgomp's stack (SIGSEGV under
// ASan), 2147483647 exhausted memory. Every command with --threads refuses it before any work.
TEST(Cli, ThreadCountsOutsideTheBoundAreUsageErrors) {
  TempDir tmp;
  const std::vector<std::vector<std::string>> commands = {
      {"eval"},
      {"generate", "--prompt", "hi"},
      {"prune", "--method", "magnitude", "--sparsity", "0.5", "--out", (tmp / "pruned").string()},
      {"acts", "--calib", (tmp / "none.safetensors").string()},
      {"synth", "--out", (tmp / "synth").string()},
      {"study", "--out", (tmp / "study").string()}};
  for (const auto& command : commands)
    for (const char* threads : {"100000", "2147483647", "-1"}) {
      auto args = command;
      args.insert(args.end(), {"--threads", threads});
      SCOPED_TRACE(command.front() + " --threads " + threads);
      expect_usage_error(run_sparsa(args), "--threads");
    }
  EXPECT_FALSE(fs::exists(tmp / "pruned") || fs::exists(tmp / "synth") || fs::exists(tmp / "study"));
}

// Found by the CLI option fuzzer: `--cols 9223372036854775807` overflowed (cols + 7) / 8 (UBSan).
TEST(Cli, SpyColumnsThatDoNotFitTheMaskAreUsageErrors) {
  TempDir tmp;
  const std::vector<uint8_t> packed(4 * 2, 0x5a);  // 4 rows of 9..16 columns
  const auto mask = tmp / "masks.safetensors";
  write_safetensors(mask, {{"m.mask", DType::U8, {4, 2}, packed.data()}});
  for (const char* cols : {"9223372036854775807", "17", "8"}) {
    SCOPED_TRACE(cols);
    expect_usage_error(run_sparsa({"plot", "spy", "--mask", mask.string(), "--key", "m.mask", "--out",
                                   (tmp / "spy.png").string(), "--cols", cols}),
                       "--cols");
  }
  EXPECT_FALSE(fs::exists(tmp / "spy.png"));
  const auto ok = run_sparsa({"plot", "spy", "--mask", mask.string(), "--key", "m.mask", "--out",
                              (tmp / "spy.png").string(), "--cols", "9"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

// The option table the CLI fuzzer reads (fuzz/cli_options.py): every command of --help with its
// options, their types and validators; not itself listed in --help.
TEST(Cli, ListOptionsIsTheParsersTable) {
  const auto r = run_sparsa({"--list-options"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto table = nlohmann::json::parse(r.out);
  std::map<std::string, nlohmann::json> commands;
  for (const auto& c : table.at("commands")) commands[c.at("command").get<std::string>()] = c.at("options");
  for (const char* c : {"study", "report", "serve", "eval", "generate", "tokenize", "compare", "acts", "import",
                        "export", "plot spy", "prune", "synth"})
    EXPECT_TRUE(commands.count(c)) << c << " missing from " << r.out;
  const auto option = [&](const std::string& command, const std::string& name) {
    for (const auto& o : commands[command])
      if (o.at("name") == name) return o;
    ADD_FAILURE() << command << " " << name << " missing";
    return nlohmann::json::object();
  };
  const auto method = option("prune", "--method");
  EXPECT_TRUE(method.at("required").get<bool>());
  EXPECT_EQ(method.at("type"), "TEXT");
  EXPECT_EQ(method.at("validators"), nlohmann::json::array({"{magnitude,wanda,sparsegpt}"}));
  EXPECT_TRUE(option("eval", "--json").at("flag").get<bool>());
  EXPECT_EQ(option("eval", "--seqlen").at("type"), "INT");
  EXPECT_EQ(option("eval", "--eval-text").at("excludes"), nlohmann::json::array({"--eval-tokens", "--task"}));
  EXPECT_EQ(option("generate", "--top-p").at("type"), "FLOAT");
  EXPECT_TRUE(option("compare", "sets").at("positional").get<bool>());
  EXPECT_NE(option("compare", "sets").at("max_values").get<int>(), 1);
  for (const auto& [name, options] : commands)
    for (const auto& o : options) EXPECT_NE(o.at("name"), "--help") << name;
  EXPECT_EQ(run_sparsa({"--help"}).out.find("list-options"), std::string::npos);
}

TEST(Cli, VersionExitsZero) {
  const auto r = run_sparsa({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("sparsa"), std::string::npos) << r.out;
}

TEST(Cli, NonexistentModelIsBadInputNamingIt) {
  expect_usage_error(run_sparsa({"eval", "--model", "/nonexistent"}), "/nonexistent");
  expect_usage_error(run_sparsa({"generate", "--model", "/nonexistent", "--prompt", "hi"}), "/nonexistent");
}

TEST(Cli, ASafetensorsFileAsModelAsksForTheFolder) {
  TempDir tmp;
  const auto tokens = small_tokens(tmp, 1, 8);
  expect_usage_error(run_sparsa({"eval", "--model", tokens.string()}), "checkpoint folder");
}

TEST(Cli, EmptyModelFolderIsBadInputNamingIt) {
  TempDir tmp;
  const auto r = run_sparsa({"eval", "--model", tmp.path().string()});
  expect_usage_error(r, tmp.path().string());
}

TEST(Cli, TextFileThatDoesNotExistIsBadInputNamingIt) {
  TempDir tmp;
  const auto missing = tmp / "missing.txt";
  expect_usage_error(run_sparsa({"eval", "--eval-text", missing.string()}), missing.string());
}

TEST(Cli, EvalJsonOnTwoGoldenWindows) {
  if (!shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = run_sparsa({"eval", "--json", "--eval-limit", "2", "--eval-tokens", golden_tokens().string(), "--eval-key", "eval"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(test::one_line(r.out)) << "stdout is not one line: " << r.out;
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out;
  ASSERT_TRUE(j.is_object()) << r.out;
  ASSERT_TRUE(j.contains("ppl") && j["ppl"].is_number()) << r.out;
  ASSERT_TRUE(j.contains("tokens") && j["tokens"].is_number_integer()) << r.out;
  ASSERT_TRUE(j.contains("seconds") && j["seconds"].is_number()) << r.out;
  EXPECT_EQ(j["tokens"].get<int64_t>(), 2 * 512);
  const double ppl = j["ppl"].get<double>();
  // The first two windows of the dense model give ~142.4 (the whole eval set: 89.67).
  EXPECT_GT(ppl, 50.0);
  EXPECT_LT(ppl, 150.0);
  EXPECT_GE(j["seconds"].get<double>(), 0.0);
  if (j.contains("mean_nll")) EXPECT_NEAR(std::log(ppl), j["mean_nll"].get<double>(), 1e-9);
  if (j.contains("predicted_tokens")) EXPECT_EQ(j["predicted_tokens"].get<int64_t>(), 2 * 511);
}

// --seqlen shorter than the rows re-cuts the stream; --eval-limit then counts the new windows.
TEST(Cli, EvalJsonWithShorterSeqlen) {
  TempDir tmp;
  const auto tokens = small_tokens(tmp, 2, 64);
  const auto r = run_sparsa({"eval", "--json", "--eval-tokens", tokens.string(), "--eval-key", "eval", "--seqlen", "32", "--eval-limit", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(test::one_line(r.out)) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"].get<int64_t>(), 3 * 32);
  EXPECT_TRUE(std::isfinite(j["ppl"].get<double>()));
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
}

}  // namespace
}  // namespace sparsa
