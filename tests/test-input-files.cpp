// Inputs that are not regular files, sizes an input claims, and the errors about files the user
// named: every file sparsa reads is opened through InputFile (non-blocking, regular files only),
// so a FIFO, a folder or a device given where a file belongs is one clear line at once, never a
// hang; claimed sizes are checked before memory is allocated for them; output paths that cannot
// be written name the user's path and the OS's reason, never a temporary name.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparsa/atomic_file.h"
#include "sparsa/input_file.h"
#include "sparsa/model.h"
#include "sparsa/runs.h"
#include "sparsa/safetensors.h"
#include "sparsa/store.h"
#include "sparsa/tokenizer.h"
#include "sparsa/torch_pt.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::bad_input_message;
using test::CommandResult;
using test::TempDir;
using test::write_file;

fs::path demo_model() { return test::repo_dir() / "models" / "tiny-llama-15m"; }
fs::path calib_tokens() { return test::repo_dir() / "data" / "calib-tokens.safetensors"; }


fs::path make_fifo(const fs::path& p) {
  EXPECT_EQ(mkfifo(p.c_str(), 0644), 0) << p;
  return p;
}

// A FIFO read by the library would block in open() forever: each test that makes one runs under
// an alarm, so a regression kills the program (SIGALRM) instead of hanging the suite.
class NonRegular : public ::testing::Test {
 protected:
  void SetUp() override { alarm(120); }
  void TearDown() override { alarm(0); }
};

void expect_refused(const std::string& message, const fs::path& path, const std::string& kind) {
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find(kind), std::string::npos) << message;
}

TEST_F(NonRegular, InputFileRefusesEveryKindOfNonRegularFile) {
  TempDir tmp;
  const fs::path fifo = make_fifo(tmp / "pipe");
  expect_refused(bad_input_message([&] { InputFile f(fifo); }), fifo, "FIFO");
  expect_refused(bad_input_message([&] { InputFile f(tmp.path()); }), tmp.path(), "a folder");
  expect_refused(bad_input_message([&] { InputFile f("/dev/zero"); }), "/dev/zero", "character device");
  expect_refused(bad_input_message([&] { InputFile f(tmp / "absent"); }), tmp / "absent", "no such file");

  const fs::path sock = tmp / "sock";
  const int s = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  ASSERT_EQ(bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  expect_refused(bad_input_message([&] { InputFile f(sock); }), sock, "socket");
  close(s);

  // A symbolic link to a FIFO is the FIFO.
  fs::create_symlink(fifo, tmp / "link");
  expect_refused(bad_input_message([&] { InputFile f(tmp / "link"); }), tmp / "link", "FIFO");
}

TEST_F(NonRegular, InputFileReadsRegularFilesAndBoundsThem) {
  TempDir tmp;
  write_file(tmp / "f", "hello");
  const InputFile f(tmp / "f");
  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(f.read_all(), "hello");
  char buf[3];
  f.read_at(1, buf, 3);
  EXPECT_EQ(std::string(buf, 3), "ell");
  EXPECT_THROW(f.read_at(3, buf, 3), Error);  // past the end
  const std::string m = bad_input_message([&] { f.read_all(4, "JSON file"); });
  EXPECT_NE(m.find("limit of 4"), std::string::npos) << m;
  EXPECT_NO_THROW(check_regular_if_exists(tmp / "absent"));
  expect_refused(bad_input_message([&] { check_regular_if_exists(make_fifo(tmp / "db")); }), tmp / "db", "FIFO");
}

// Every reader of the library, given a FIFO.
TEST_F(NonRegular, EveryReaderRefusesAFifo) {
  TempDir tmp;
  const fs::path fifo = make_fifo(tmp / "pipe");
  const auto check = [&](const char* what, auto&& f) {
    SCOPED_TRACE(what);
    expect_refused(bad_input_message(f), fifo, "FIFO");
  };
  check("safetensors", [&] { SafetensorsFile::open(fifo); });
  check("tensor store", [&] { TensorStore::open(fifo); });
  check("config.json", [&] { load_hf_config(fifo); });
  check("llama2.c model", [&] { load_model(fifo); });
  check("tokenizer.json", [&] { HfTokenizer::load(fifo); });
  check("tokenizer.bin", [&] { Llama2cTokenizer::load(fifo, 32); });
  check(".pt", [&] { load_torch_file(fifo); });
  check("text", [&] { read_file_contents(fifo); });
  check("utf-8 text", [&] { read_utf8_file(fifo); });
  check("database", [&] { Store::open(fifo, Store::Mode::kReadWrite); });
}

// A model folder whose config.json, index or shard is a FIFO.
TEST_F(NonRegular, ModelFolderPartsThatAreFifos) {
  for (const std::string part : {"config.json", "model.safetensors.index.json", "model-00002-of-00003.safetensors"}) {
    SCOPED_TRACE(part);
    TempDir tmp;
    const fs::path model = tmp / "model";
    fs::copy(demo_model(), model);
    fs::remove(model / part);
    make_fifo(model / part);
    expect_refused(bad_input_message([&] { load_model(model); }), model / part, "FIFO");
  }
}

CommandResult run(const std::vector<std::string>& args) {
  return test::run_sparsa_limited(args, {.timeout_seconds = 120});
}

void expect_cli_refused(const CommandResult& r, const fs::path& path, const std::string& kind = "not a regular file") {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(path.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(kind), std::string::npos) << r.err;
}

// The commands' file options, each given a FIFO (the CLI as a user runs it).
TEST_F(NonRegular, CommandsRefuseAFifoForEveryFileOption) {
  TempDir tmp;
  const fs::path fifo = make_fifo(tmp / "pipe");
  const std::string m = demo_model().string(), f = fifo.string();
  const std::vector<std::vector<std::string>> commands = {
      {"eval", "--model", m, "--eval-text", f, "--eval-limit", "1"},
      {"eval", "--model", m, "--eval-tokens", f, "--eval-key", "eval"},
      {"eval", "--model", f},
      {"eval", "--model", m, "--eval-tokens", calib_tokens().string(), "--eval-key", "calib", "--eval-limit", "1", "--db", f},
      {"prune", "--method", "wanda", "--sparsity", "0.5", "--model", m, "--calib-text", f, "--out",
       (tmp / "out").string()},
      {"prune", "--method", "wanda", "--sparsity", "0.5", "--model", m, "--calib", f, "--calib-key", "calib",
       "--out", (tmp / "out").string()},
      {"tokenize", "--tokenizer", f, "--text", "hi"},
      {"tokenize", "--tokenizer", (demo_model() / "tokenizer.json").string(), "--text-file", f},
      {"generate", "--model", m, "--tokenizer", f, "--prompt", "hi", "--steps", "2"},
      {"compare", f, f},
      {"plot", "spy", "--mask", f, "--key", "x", "--out", (tmp / "spy.png").string()},
      {"report", "--db", f},
      {"export", "--db", f, "--parquet", (tmp / "pq").string()},
  };
  for (const auto& args : commands) {
    SCOPED_TRACE(args[0] + " " + args[1] + " " + args[2]);
    const auto start = std::chrono::steady_clock::now();
    expect_cli_refused(run(args), fifo);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 60.0);
  }
}

TEST_F(NonRegular, CommandsRefuseAFolderOrDeviceWhereAFileBelongs) {
  TempDir tmp;
  expect_cli_refused(run({"eval", "--model", demo_model().string(), "--eval-text", tmp.path().string()}), tmp.path(),
                     "a folder, not a regular file");
  expect_cli_refused(run({"tokenize", "--tokenizer", "/dev/zero", "--text", "hi"}), "/dev/zero", "character device");
  expect_cli_refused(run({"eval", "--model", demo_model().string(), "--eval-text", "/dev/stdin"}), "/dev/stdin");
}

// ---- memory bounds: sizes from the file are checked against the file before allocating ----

// The demo model's folder with config.json edited by `edit`.
fs::path model_with_config(const TempDir& tmp, const std::function<void(json&)>& edit) {
  const fs::path model = tmp / "model";
  fs::copy(demo_model(), model);
  json c = json::parse(test::read_file(model / "config.json"));
  edit(c);
  write_file(model / "config.json", c.dump());
  return model;
}

TEST(MemoryBounds, LayerCountBeyondTheCheckpointIsRefusedBeforeAllocating) {
  for (const int64_t layers : {int64_t{7}, int64_t{1} << 40}) {
    SCOPED_TRACE(layers);
    TempDir tmp;
    const fs::path model = model_with_config(tmp, [&](json& c) { c["num_hidden_layers"] = layers; });
    const std::string m = bad_input_message([&] { load_model(model); });
    EXPECT_NE(m.find("num_hidden_layers"), std::string::npos) << m;
    EXPECT_EQ(m.find("out of memory"), std::string::npos) << m;
    const CommandResult r = run({"eval", "--model", model.string(), "--eval-tokens", calib_tokens().string(), "--eval-key",
                                 "calib", "--eval-limit", "1"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("num_hidden_layers"), std::string::npos) << r.err;
  }
}

TEST(MemoryBounds, ConfigSizesMustMatchTheTensors) {
  TempDir tmp;
  const fs::path model = model_with_config(tmp, [](json& c) { c["vocab_size"] = int64_t{1} << 30; });
  const std::string m = bad_input_message([&] { load_model(model); });
  EXPECT_NE(m.find("model.embed_tokens.weight"), std::string::npos) << m;
  EXPECT_NE(m.find("1073741824"), std::string::npos) << m;
}

TEST(MemoryBounds, Llama2cTokenizerVocabularyMustFitTheFile) {
  TempDir tmp;
  const fs::path p = tmp / "tok.bin";
  write_file(p, std::string("\x04\0\0\0", 4) + std::string(8 * 4, '\0'));
  const std::string m = bad_input_message([&] { Llama2cTokenizer::load(p, 2000000000); });
  EXPECT_NE(m.find(p.string()), std::string::npos) << m;
  EXPECT_NE(m.find("2000000000 tokens"), std::string::npos) << m;
}

TEST(MemoryBounds, OutOfMemoryNamesWhatWasBeingLoaded) {
  const std::string m = [] {
    try {
      naming_out_of_memory([] { return std::string("loading tensor 'w' of m.safetensors"); },
                           []() -> int { throw std::bad_alloc(); });
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_EQ(m, "out of memory while loading tensor 'w' of m.safetensors");
}

// JSON values are copied and printed recursively: 100 000 levels of brackets in any JSON file
// (config.json, the shard index, a safetensors header, summary.json) is refused when parsing.
TEST(MemoryBounds, DeeplyNestedJsonIsRefusedInEveryJsonFile) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto expect_nesting_refused = [](const std::string& m, const fs::path& file) {
    EXPECT_NE(m.find(file.string() + ": "), std::string::npos) << m;
    EXPECT_NE(m.find("nested more than 256 levels deep"), std::string::npos) << m;
  };
  for (const std::string file : {"config.json", "model.safetensors.index.json"}) {
    SCOPED_TRACE(file);
    TempDir tmp;
    const fs::path model = tmp / "model";
    fs::copy(demo_model(), model);
    std::string text = test::read_file(model / file);
    text.insert(text.find('{') + 1, "\"deep\": " + deep + ", ");
    write_file(model / file, text);
    expect_nesting_refused(bad_input_message([&] { load_model(model); }), model / file);
  }
  TempDir tmp;
  std::string header = "{\"__metadata__\": " + deep + "}";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  write_file(tmp / "deep.safetensors", bytes + header);
  expect_nesting_refused(bad_input_message([&] { SafetensorsFile::open(tmp / "deep.safetensors"); }),
                         tmp / "deep.safetensors");

  write_file(tmp / "summary.json", "{\"deep\": " + deep + "}");
  expect_nesting_refused(bad_input_message([&] { PrunedFolder(tmp.path()).read_summary(); }), tmp / "summary.json");
}

// ---- text inputs must be UTF-8; the error names the file and the byte ----

TEST(TextInputs, InvalidUtf8NamesTheFileAndOffset) {
  TempDir tmp;
  const fs::path bad = tmp / "bad.txt";
  write_file(bad, "caf\xc3\xa9 ok \xff tail");
  const std::string m = bad_input_message([&] { read_utf8_file(bad); });
  EXPECT_EQ(m, bad.string() + ": not valid UTF-8 at byte offset 9");
  write_file(tmp / "good.txt", "caf\xc3\xa9");
  EXPECT_EQ(read_utf8_file(tmp / "good.txt"), "caf\xc3\xa9");

  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"eval", "--model", demo_model().string(), "--eval-text", bad.string(), "--eval-limit", "1"},
           {"prune", "--method", "wanda", "--sparsity", "0.5", "--model", demo_model().string(), "--calib-text",
            bad.string(), "--nsamples", "1", "--seqlen", "8", "--out", (tmp / "out").string()}}) {
    SCOPED_TRACE(args[0]);
    const CommandResult r = run(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(bad.string() + ": not valid UTF-8 at byte offset 9"), std::string::npos) << r.err;
  }
}

// ---- outputs: a folder where a file belongs (and the reverse), a folder that cannot be written ----

fs::path golden_like_masks(const TempDir& tmp) {
  const fs::path masks = tmp / "masks.safetensors";
  const std::vector<uint8_t> packed(4 * 2, 0x5a);
  write_safetensors(masks, {{"m.mask", DType::U8, {4, 2}, packed.data()}});
  return masks;
}

std::vector<std::string> spy_args(const fs::path& masks, const fs::path& out) {
  return {"plot", "spy", "--mask", masks.string(), "--key", "m.mask", "--out", out.string()};
}

TEST(Outputs, AFolderWhereAFileBelongs) {
  TempDir tmp;
  const fs::path masks = golden_like_masks(tmp);
  const fs::path folder = tmp / "figures";  // beside the input: an --out over an input is refused first
  fs::create_directory(folder);
  const CommandResult r = run(spy_args(masks, folder));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(folder.string() + ": is a folder"), std::string::npos) << r.err;

  const CommandResult missing = run(spy_args(masks, tmp / "no" / "such" / "spy.png"));
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.err.find(".tmp-"), std::string::npos) << missing.err;

  EXPECT_EQ(run(spy_args(masks, tmp / "spy.png")).exit_code, 0);
}

// The finished file is renamed over its path: a device or FIFO there would be replaced (as root,
// /dev/null itself), so an output path that is not a regular file is refused and left as it was.
TEST(Outputs, ANonRegularOutputIsRefusedAndLeftAlone) {
  TempDir tmp;
  const fs::path masks = golden_like_masks(tmp);
  const fs::path fifo = make_fifo(tmp / "out.png");
  const CommandResult r = run(spy_args(masks, fifo));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(fifo.string() + ": exists and is not a regular file"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_fifo(fifo));
  fs::create_symlink(fifo, tmp / "link.png");
  EXPECT_EQ(run(spy_args(masks, tmp / "link.png")).exit_code, 2);
  EXPECT_TRUE(fs::is_symlink(tmp / "link.png"));
}

TEST(Outputs, AFileWhereAFolderBelongs) {
  TempDir tmp;
  write_file(tmp / "file", "x");
  const std::string m = bad_input_message([&] { create_output_folder(tmp / "file" / "sub"); });
  EXPECT_EQ(m, (tmp / "file").string() + ": exists and is not a folder");
  const CommandResult r = run({"synth", "--preset", "tiny", "--out", (tmp / "file").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("exists and is not a folder"), std::string::npos) << r.err;
}

// std::filesystem::exists throws for a name over NAME_MAX (found by fuzz-sharded-index); the path
// questions the library asks answer false for every path that cannot name anything.
TEST(PathQuestions, PathsThatCannotNameAnythingAreAbsentNotErrors) {
  TempDir tmp;
  write_file(tmp / "file", "x");
  fs::create_symlink(tmp / "loop", tmp / "loop");
  fs::create_symlink(tmp / "nowhere", tmp / "dangling");
  for (const fs::path& p : {tmp / std::string(400, 'k'), tmp / "file" / "x", tmp / "loop", tmp / "dangling", tmp / "missing"}) {
    SCOPED_TRACE(p.string());
    EXPECT_FALSE(path_exists(p));
    EXPECT_FALSE(is_folder(p));
    EXPECT_FALSE(is_regular_file_path(p));
    EXPECT_FALSE(is_nonempty_folder(p));
  }
  EXPECT_TRUE(is_regular_file_path(tmp / "file"));
  EXPECT_FALSE(is_folder(tmp / "file"));
  EXPECT_TRUE(is_folder(tmp.path()));
  EXPECT_TRUE(is_nonempty_folder(tmp.path()));

  const std::string long_name = (tmp / std::string(400, 'k')).string();
  for (const std::vector<std::string>& args : {std::vector<std::string>{"eval", "--model", long_name},
                                               {"prune", "--model", long_name, "--method", "magnitude", "--sparsity", "0.5", "--out", (tmp / "out").string()},
                                               {"study", "--model", long_name, "--out", (tmp / "s").string()},
                                               {"plot", "spy", "--mask", long_name, "--key", "m", "--out", (tmp / "x.png").string()},
                                               {"eval", "--model", demo_model().string(), "--eval-tokens", long_name}}) {
    SCOPED_TRACE(args[0]);
    const CommandResult r = run(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(long_name), std::string::npos) << r.err;
  }
}

// /sys refuses new files even to root: a folder no one may write into.
TEST(Outputs, AnUnwritableFolderNamesTheUsersPathAndTheReason) {
  if (!fs::is_directory("/sys/kernel")) GTEST_SKIP() << "no /sys";
  TempDir tmp;
  const fs::path masks = golden_like_masks(tmp);
  const auto check = [](const CommandResult& r, const std::string& path) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
    const bool reason = r.err.find("Permission denied") != std::string::npos ||
                        r.err.find("Operation not permitted") != std::string::npos;
    EXPECT_TRUE(reason) << r.err;
    EXPECT_EQ(r.err.find(".tmp-"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("filesystem error"), std::string::npos) << r.err;
  };
  check(run(spy_args(masks, "/sys/kernel/spy.png")), "/sys/kernel/spy.png");
  check(run({"synth", "--preset", "tiny", "--out", "/sys/kernel/synth"}), "/sys/kernel/synth");
  check(run({"prune", "--method", "magnitude", "--sparsity", "0.5", "--model", demo_model().string(), "--out",
             "/sys/kernel/pruned"}),
        "/sys/kernel/pruned");
}

}  // namespace
}  // namespace sparsa
