// The safetensors reader and writer, fp16/bf16 conversion, sharded checkpoints, and what the
// library and `sparsa eval` do with every kind of malformed file: Error(kBadInput) / exit code 2
// with exactly one line on stderr that names the file and what is wrong, never a crash.
//
// The malformed files are built by hand (8-byte little-endian header length + JSON + data), not
// with write_safetensors, so that the reader is not tested against its own writer only.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/safetensors.h"
#include "sparsa/tensor.h"
#include "test_support.h"

namespace sparsa {
namespace {

using test::bad_input_message;

namespace fs = std::filesystem;
using test::read_file;
using test::repo_dir;
using test::run_sparsa;
using test::shared_available;
using test::shared_dir;
using test::TempDir;
using test::write_file;

// ---- helpers ----

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A safetensors file from its parts: length prefix + header + data.
std::string st_bytes(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

template <typename T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// True when `s` is exactly one line: one '\n', at the end.


std::vector<std::string> dir_entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

const fs::path& demo_model_dir() {
  static const fs::path p = repo_dir() / "models" / "tiny-llama-15m";
  return p;
}

fs::path golden_tokens() { return shared_dir() / "golden" / "tokens.safetensors"; }

// ---- write_safetensors -> SafetensorsFile::open round trip ----

// Empty tensors load as empty tensors of their shape in every loader (UBSan: no memcpy from the
// null data pointer of an empty tensor; found by the CLI option fuzzer with an empty tokens file).
TEST(SafetensorsRead, EmptyTensorsLoadEmpty) {
  TempDir dir;
  const fs::path path = dir / "empty.safetensors";
  write_safetensors(path, {{"ids", DType::I32, {0, 3}, nullptr}, {"ids64", DType::I64, {0}, nullptr},
                           {"w", DType::BF16, {3, 0}, nullptr}});
  const auto store = TensorStore::open(path);
  EXPECT_EQ(store->load_i32("ids").shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(store->load_i32("ids64").numel(), 0u);
  EXPECT_EQ(store->load_f32("w").shape, (std::vector<int64_t>{3, 0}));
}

// A name the file lacks is an error that lists the names nearest to it (e.g. plot spy --key).
TEST(SafetensorsRead, AMissingNameListsTheNearestOnes) {
  TempDir dir;
  const fs::path path = dir / "masks.safetensors";
  const std::vector<uint8_t> byte(1, 0);
  std::vector<TensorToWrite> tensors;
  const std::vector<std::string> names = {"l.0.up_proj.mask", "l.0.down_proj.mask", "l.1.up_proj.mask",
                                          "l.1.down_proj.mask", "l.2.up_proj.mask", "l.2.down_proj.mask",
                                          "l.3.up_proj.mask"};
  for (const std::string& n : names) tensors.push_back({n, DType::U8, {1}, byte.data()});
  write_safetensors(path, tensors);
  const auto store = TensorStore::open(path);
  try {
    store->info("l.2.up.mask");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_NE(std::string(e.what()).find(": no tensor 'l.2.up.mask'; it holds l.2.up_proj.mask, l.2.down_proj.mask, "),
              std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("... (7 in all)"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsWrite, RoundTripEveryDtypeShapeAndMetadata) {
  TempDir tmp;
  const auto path = tmp / "round.safetensors";
  const std::vector<float> f32 = {1.5f, -2.25f, 0.0f, 3.0e-5f, 1e30f, -0.0f};                  // [2, 3]
  const std::vector<uint16_t> f16 = {f32_to_f16(1.0f), f32_to_f16(-0.5f), f32_to_f16(65504.0f),  // [4]
                                     f32_to_f16(6.0e-8f)};
  const std::vector<uint16_t> bf16 = {f32_to_bf16(1.0f), f32_to_bf16(-3.140625f)};              // [2, 1]
  const std::vector<int32_t> i32 = {std::numeric_limits<int32_t>::min(), -1, 0, 1,               // [2, 3]
                                    std::numeric_limits<int32_t>::max(), 42};
  const std::vector<uint8_t> u8 = {0, 1, 2, 128, 255};                                           // [5]
  const std::vector<float> scalar = {7.0f};                                                      // []
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "héllo \"quoted\""}};
  write_safetensors(path,
                    {{"w.f32", DType::F32, {2, 3}, f32.data()},
                     {"w.f16", DType::F16, {4}, f16.data()},
                     {"w.bf16", DType::BF16, {2, 1}, bf16.data()},
                     {"ids", DType::I32, {2, 3}, i32.data()},
                     {"empty", DType::F32, {0, 4}, nullptr},
                     {"scalar", DType::F32, {}, scalar.data()},
                     {"mask", DType::U8, {5}, u8.data()}},
                    meta);

  // The data section starts 8-byte aligned, and the header is what the format says.
  const std::string bytes = read_file(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u) << "data section not 8-byte aligned";
  const size_t data_bytes = 6 * 4 + 4 * 2 + 2 * 2 + 6 * 4 + 0 + 4 + 5;
  EXPECT_EQ(bytes.size(), 8 + n + data_bytes);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["w.f32"]["dtype"], "F32");
  EXPECT_EQ(header["w.bf16"]["shape"], nlohmann::json::array({2, 1}));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  // Tensors are laid out in the given order.
  EXPECT_EQ(header["w.f32"]["data_offsets"], nlohmann::json::array({0, 24}));
  EXPECT_EQ(header["w.f16"]["data_offsets"], nlohmann::json::array({24, 32}));
  EXPECT_EQ(header["mask"]["data_offsets"], nlohmann::json::array({data_bytes - 5, data_bytes}));

  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata(), meta);
  EXPECT_EQ(f->tensors().size(), 7u);
  EXPECT_EQ(f->find("nosuch"), nullptr);

  const TensorInfo* t = f->find("w.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->nbytes, 24u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 8, 0u);  // first tensor sits at the aligned data start
  EXPECT_EQ(std::memcmp(t->data, f32.data(), 24), 0);

  t = f->find("w.f16");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F16);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(std::memcmp(t->data, f16.data(), 8), 0);

  t = f->find("w.bf16");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::BF16);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(std::memcmp(t->data, bf16.data(), 4), 0);

  t = f->find("ids");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::I32);
  EXPECT_EQ(std::memcmp(t->data, i32.data(), 24), 0);

  t = f->find("empty");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(t->nbytes, 0u);
  EXPECT_EQ(t->numel(), 0u);

  t = f->find("scalar");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->shape.empty());
  EXPECT_EQ(t->numel(), 1u);

  t = f->find("mask");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::U8);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(std::memcmp(t->data, u8.data(), 5), 0);

  // The same values through the typed loaders.
  const auto store = TensorStore::open(path);
  EXPECT_EQ(store->names(), (std::vector<std::string>{"empty", "ids", "mask", "scalar", "w.bf16", "w.f16", "w.f32"}));
  const Tensor a = store->load_f32("w.f32", {2, 3});
  EXPECT_EQ(a.data, f32);
  const Tensor h = store->load_f32("w.f16");
  EXPECT_EQ(h.data, (std::vector<float>{1.0f, -0.5f, 65504.0f, std::ldexp(1.0f, -24)}));
  const Tensor b = store->load_f32("w.bf16");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(b.data, (std::vector<float>{1.0f, -3.140625f}));
  const TensorI32 ids = store->load_i32("ids");
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ids.data, i32);
  EXPECT_EQ(store->load_f32("empty").numel(), 0u);
}

TEST(SafetensorsWrite, NoMetadataMeansNoMetadataKey) {
  TempDir tmp;
  const std::vector<float> v = {1, 2};
  write_safetensors(tmp / "a.safetensors", {{"v", DType::F32, {2}, v.data()}});
  const std::string bytes = read_file(tmp / "a.safetensors");
  EXPECT_EQ(bytes.find("__metadata__"), std::string::npos);
  EXPECT_TRUE(SafetensorsFile::open(tmp / "a.safetensors")->metadata().empty());
}

TEST(SafetensorsWrite, ReplacesTheFileAtomicallyAndLeavesNoTempFile) {
  TempDir tmp;
  const auto path = tmp / "x.safetensors";
  const std::vector<float> old_v = {1, 2, 3}, new_v = {4, 5, 6, 7};
  write_safetensors(path, {{"x", DType::F32, {3}, old_v.data()}});
  EXPECT_EQ(dir_entries(tmp.path()), std::vector<std::string>{"x.safetensors"});

  // A reader that has the old file mapped keeps seeing the old bytes: the new file is a new
  // inode renamed over the old name, not the old file rewritten in place.
  const auto old_file = SafetensorsFile::open(path);
  struct stat before {};
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  write_safetensors(path, {{"x", DType::F32, {4}, new_v.data()}});
  struct stat after {};
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino) << "the file was rewritten in place, not replaced";
  EXPECT_EQ(dir_entries(tmp.path()), std::vector<std::string>{"x.safetensors"}) << "a temporary file was left";

  const TensorInfo* o = old_file->find("x");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(std::memcmp(o->data, old_v.data(), 12), 0);
  EXPECT_EQ(TensorStore::open(path)->load_f32("x").data, new_v);
}

TEST(SafetensorsWrite, UnwritableFolderIsARuntimeErrorNamingThePathAndLeavesNothing) {
  TempDir tmp;
  const auto path = tmp / "no-such-dir" / "x.safetensors";
  const std::vector<float> v = {1};
  try {
    write_safetensors(path, {{"x", DType::F32, {1}, v.data()}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(dir_entries(tmp.path()).empty());
}

// ---- StagingDir (sparsa/atomic_file.h): a folder assembled beside its place, moved in at the end ----

TEST(StagingDir, CommitMovesTheFinishedFolderIntoPlace) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  {
    StagingDir staging(out);
    EXPECT_EQ(staging.path(), fs::path(out.string() + ".tmp-" + std::to_string(getpid())));
    EXPECT_EQ(dir_entries(staging.path()), std::vector<std::string>{});
    write_file(staging.path() / "a.txt", "a");
    EXPECT_FALSE(fs::exists(out)) << "nothing may appear at the target before the commit";
    staging.commit(false);
  }
  EXPECT_EQ(dir_entries(tmp.path()), std::vector<std::string>{"out"});
  EXPECT_EQ(read_file(out / "a.txt"), "a");
}

TEST(StagingDir, AFailedRunLeavesNothing) {
  TempDir tmp;
  try {
    StagingDir staging(tmp / "deep" / "out");
    write_file(staging.path() / "half.txt", "half");
    throw Error(ErrorKind::kRuntime, "the run failed");
  } catch (const Error&) {
  }
  EXPECT_EQ(dir_entries(tmp / "deep"), std::vector<std::string>{});
}

TEST(StagingDir, ANonEmptyFolderIsReplacedOnlyWhenAsked) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  fs::create_directories(tmp / "empty-before");
  {
    StagingDir staging(tmp / "empty-before");  // an empty folder is replaced without asking
    write_file(staging.path() / "new.txt", "new");
    staging.commit(false);
  }
  EXPECT_EQ(dir_entries(tmp / "empty-before"), std::vector<std::string>{"new.txt"});

  fs::create_directories(out);
  write_file(out / "old.txt", "old");
  fs::path kept;
  {
    StagingDir staging(out);
    kept = staging.path();
    write_file(staging.path() / "new.txt", "new");
    try {
      staging.commit(false);
      ADD_FAILURE() << "a non-empty folder was replaced without being asked to";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
      const std::string what = e.what();
      EXPECT_NE(what.find(out.string() + ": "), std::string::npos) << what;
      EXPECT_NE(what.find("the result is left in " + kept.string()), std::string::npos) << what;
    }
  }
  EXPECT_EQ(read_file(out / "old.txt"), "old");
  EXPECT_EQ(read_file(kept / "new.txt"), "new") << "the finished folder is kept after a failed commit";
  fs::remove_all(kept);

  {
    StagingDir staging(out);
    write_file(staging.path() / "new.txt", "new");
    staging.commit(true);
  }
  EXPECT_EQ(dir_entries(out), std::vector<std::string>{"new.txt"});
  EXPECT_EQ(dir_entries(tmp.path()), (std::vector<std::string>{"empty-before", "out"}));
}

TEST(StagingDir, StagingFoldersOfKilledRunsAreRemoved) {
  TempDir tmp;
  const fs::path dead = tmp / "out.tmp-999999999", alive = tmp / ("out.tmp-" + std::to_string(getppid()));
  const fs::path other = tmp / "other.tmp-999999999";
  for (const fs::path& d : {dead, alive, other}) {
    fs::create_directories(d);
    write_file(d / "x", "x");
  }
  StagingDir staging(tmp / "out");
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive / "x")) << "a running process's staging folder must stay";
  EXPECT_TRUE(fs::exists(other / "x")) << "another folder's staging folders are not ours";
}

// Header order is kept (the doc of tensors() says "in header order"), even when it is not sorted.
TEST(SafetensorsRead, TensorsComeInHeaderOrder) {
  TempDir tmp;
  const std::string header =
      R"({"zeta":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"alpha":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})";
  write_file(tmp / "o.safetensors", st_bytes(header, "abcd"));
  const auto f = SafetensorsFile::open(tmp / "o.safetensors");
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "zeta");
  EXPECT_EQ(f->tensors()[1].name, "alpha");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->find("alpha")->data), 2), "cd");
}

// Hand-written files the writer would never make but the format allows.
TEST(SafetensorsRead, AcceptsGapsPaddedHeaderAndI64F64) {
  TempDir tmp;
  const std::vector<int64_t> i64 = {5, -7, 2147483647};
  const std::vector<double> f64 = {0.5, -1e-3};
  std::string header = R"({"ids":{"dtype":"I64","shape":[3],"data_offsets":[8,32]},"d":{"dtype":"F64","shape":[2],"data_offsets":[32,48]}})";
  header += "   ";  // trailing spaces are legal JSON whitespace
  write_file(tmp / "g.safetensors", st_bytes(header, std::string(8, 'x') + raw_bytes(i64) + raw_bytes(f64)));
  const auto store = TensorStore::open(tmp / "g.safetensors");
  EXPECT_EQ(store->load_i32("ids").data, (std::vector<int32_t>{5, -7, 2147483647}));
  const Tensor d = store->load_f32("d");
  EXPECT_EQ(d.data, (std::vector<float>{0.5f, static_cast<float>(-1e-3)}));
}

// ---- the typed loaders refuse what they cannot give, naming the file and tensor ----

TEST(SafetensorsRead, LoaderErrorsNameTheFileAndTensor) {
  TempDir tmp;
  const auto path = tmp / "typed.safetensors";
  const std::vector<int64_t> big = {1, std::numeric_limits<int64_t>::max()};
  const std::vector<int32_t> i32 = {1, 2, 3, 4};
  const std::vector<float> f32 = {1, 2, 3, 4};
  write_safetensors(path, {{"big", DType::I64, {2}, big.data()},
                           {"ints", DType::I32, {4}, i32.data()},
                           {"floats", DType::F32, {2, 2}, f32.data()}});
  const auto store = TensorStore::open(path);
  auto has = [&](const std::string& msg, const std::string& what) {
    EXPECT_NE(msg.find(path.string()), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "message does not say '" << what << "': " << msg;
  };
  has(bad_input_message([&] { store->info("nosuch"); }), "nosuch");
  has(bad_input_message([&] { store->load_f32("nosuch"); }), "nosuch");
  has(bad_input_message([&] { store->load_i32("big"); }), "big");
  has(bad_input_message([&] { store->load_i32("floats"); }), "floats");
  has(bad_input_message([&] { store->load_f32("ints"); }), "ints");
  has(bad_input_message([&] { store->load_f32("floats", {4}); }), "[2, 2]");
  EXPECT_FALSE(store->contains("nosuch"));
  EXPECT_TRUE(store->contains("ints"));
}

TEST(SafetensorsRead, MissingFileAndFolderAreBadInputNamingThePath) {
  TempDir tmp;
  const auto missing = tmp / "missing.safetensors";
  EXPECT_NE(bad_input_message([&] { SafetensorsFile::open(missing); }).find(missing.string()), std::string::npos);
  EXPECT_NE(bad_input_message([&] { TensorStore::open(missing); }).find(missing.string()), std::string::npos);
  // A folder with neither model.safetensors nor an index.
  EXPECT_NE(bad_input_message([&] { TensorStore::open(tmp.path()); }).find(tmp.path().string()), std::string::npos);
  // A folder is not a safetensors file.
  EXPECT_NE(bad_input_message([&] { SafetensorsFile::open(tmp.path()); }).find(tmp.path().string()), std::string::npos);
}

// ---- f16 / bf16 conversions ----

// An independent reference for binary16: sign * mant * 2^(exp-25) (normal) or mant * 2^-24 (subnormal).
float f16_reference(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 31) v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else v = std::ldexp(static_cast<float>(1024 + mant), exp - 25);
  return sign ? -v : v;
}

TEST(Conversion, F16ToF32MatchesTheDefinitionForAllValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = f16_to_f32(static_cast<uint16_t>(h)), want = f16_reference(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
      ASSERT_EQ(std::signbit(got), std::signbit(want)) << std::hex << h;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want)) << std::hex << h << " -> " << got;
    }
  }
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));             // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));           // largest subnormal
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));              // smallest normal
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
}

TEST(Conversion, F32ToF16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const uint16_t back = f32_to_f16(f);
    if (std::isnan(f)) {
      ASSERT_EQ(back & 0x7c00, 0x7c00) << std::hex << h;
      ASSERT_NE(back & 0x03ff, 0) << "NaN became infinity: " << std::hex << h;
      ASSERT_EQ(back & 0x8000, h & 0x8000) << std::hex << h;
    } else {
      ASSERT_EQ(back, h) << std::hex << h;
    }
  }
}

TEST(Conversion, F32ToF16RoundsToNearestEven) {
  // Every pair of adjacent positive finite halves (subnormals included) and the one from the
  // largest finite to infinity: the exact midpoint goes to the even one, a hair either side
  // goes to the nearer one.
  for (uint16_t lo = 0; lo < 0x7c00; ++lo) {
    const uint16_t hi = static_cast<uint16_t>(lo + 1);
    const float a = f16_to_f32(lo), b = hi == 0x7c00 ? 65536.0f : f16_to_f32(hi);  // 65536 = the next step past 65504
    const float mid = (a + b) / 2;  // exact: 12 significant bits
    ASSERT_TRUE(mid > a && mid < b);
    const uint16_t even = (lo & 1) ? hi : lo;
    ASSERT_EQ(f32_to_f16(mid), even) << "midpoint of " << std::hex << lo << " and " << hi;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 0.0f)), lo) << std::hex << lo;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 1e30f)), hi) << std::hex << lo;
    ASSERT_EQ(f32_to_f16(-mid), even | 0x8000) << std::hex << lo;
  }
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie between 65504 (odd) and the overflow: infinity
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);                                // half the smallest subnormal: tie to 0
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);                                // 1.5 ulp: tie to 2
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -30)), 0x8000);                               // keeps the sign
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);                         // tie to even 1.0
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);                     // tie to even 1.0+2ulp
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0);
  const uint16_t snan = f32_to_f16(std::bit_cast<float>(0x7f800001u));  // payload only in the low bits
  EXPECT_TRUE((snan & 0x7c00) == 0x7c00 && (snan & 0x3ff) != 0) << "NaN became infinity";
}

TEST(Conversion, Bf16IsTheTopHalfOfF32) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_f32(static_cast<uint16_t>(b));
    ASSERT_EQ(std::bit_cast<uint32_t>(f), b << 16);
    const uint16_t back = f32_to_bf16(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(back))) << std::hex << b;
      ASSERT_EQ(back & 0x8000, b & 0x8000) << std::hex << b;
    } else {
      ASSERT_EQ(back, b) << std::hex << b;  // subnormals, zeros, infinities included
    }
  }
}

TEST(Conversion, F32ToBf16RoundsToNearestEven) {
  for (uint32_t lo = 0; lo < 0x7f80; ++lo) {
    const uint32_t mid = lo << 16 | 0x8000u;  // exactly halfway to lo + 1
    const uint16_t even = static_cast<uint16_t>((lo & 1) ? lo + 1 : lo);
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid)), even) << std::hex << lo;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid - 1)), lo) << std::hex << lo;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid + 1)), lo + 1) << std::hex << lo;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid | 0x80000000u)), even | 0x8000) << std::hex << lo;
  }
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to infinity
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie to even 1.0
  // A NaN whose payload sits only in the low 16 bits must not truncate to infinity.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0xff800001u)))));
  EXPECT_TRUE(std::signbit(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0xff800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Conversion, ConvertToF32HandlesEveryFloatingDtype) {
  const std::vector<uint16_t> h = {0x3c00, 0x0001, 0xfc00};
  const std::vector<uint16_t> b = {0x3f80, 0xc040, 0x0001};
  const std::vector<double> d = {1.0, -2.5, 1e300};
  std::vector<float> out(3);
  convert_to_f32(DType::F16, h.data(), out.data(), 3);
  EXPECT_EQ(out, (std::vector<float>{1.0f, std::ldexp(1.0f, -24), -std::numeric_limits<float>::infinity()}));
  convert_to_f32(DType::BF16, b.data(), out.data(), 3);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -3.0f, std::ldexp(1.0f, -133)}));
  convert_to_f32(DType::F64, d.data(), out.data(), 3);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.5f, std::numeric_limits<float>::infinity()}));
}

TEST(Conversion, DtypeNamesAndSizes) {
  const std::vector<std::pair<std::string, size_t>> all = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                                           {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
  for (const auto& [name, size] : all) {
    const auto t = dtype_from_name(name);
    ASSERT_TRUE(t.has_value()) << name;
    EXPECT_EQ(dtype_name(*t), name);
    EXPECT_EQ(dtype_size(*t), size) << name;
  }
  EXPECT_FALSE(dtype_from_name("f32").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
}

// ---- sharded checkpoints ----

TEST(SafetensorsSharded, DemoModelLoadsFromItsThreeShards) {
  const auto store = TensorStore::open(demo_model_dir());
  const auto index = nlohmann::json::parse(read_file(demo_model_dir() / "model.safetensors.index.json"));
  const auto& wm = index["weight_map"];
  const auto names = store->names();
  EXPECT_EQ(names.size(), wm.size());
  EXPECT_EQ(names.size(), 3u + 6u * 9u);  // embed, norm, lm_head + 9 per layer
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  std::set<std::string> shard_files;
  for (auto it = wm.begin(); it != wm.end(); ++it) shard_files.insert(it->get<std::string>());
  EXPECT_EQ(shard_files.size(), 3u);

  // Every tensor is the one in the shard the index names (read independently here).
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards;
  for (const auto& f : shard_files) shards[f] = SafetensorsFile::open(demo_model_dir() / f);
  size_t total = 0;
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    ASSERT_TRUE(store->contains(it.key())) << it.key();
    const TensorInfo& t = store->info(it.key());
    const TensorInfo* direct = shards.at(it->get<std::string>())->find(it.key());
    ASSERT_NE(direct, nullptr) << it.key();
    EXPECT_EQ(t.dtype, DType::BF16) << it.key();
    EXPECT_EQ(t.shape, direct->shape) << it.key();
    ASSERT_EQ(t.nbytes, direct->nbytes) << it.key();
    EXPECT_EQ(std::memcmp(t.data, direct->data, t.nbytes), 0) << it.key();
    total += t.nbytes;
  }
  EXPECT_EQ(total, index["metadata"]["total_size"].get<size_t>());

  EXPECT_EQ(store->info("model.embed_tokens.weight").shape, (std::vector<int64_t>{8192, 384}));
  EXPECT_EQ(store->info("lm_head.weight").shape, (std::vector<int64_t>{8192, 384}));
  EXPECT_EQ(store->info("model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{384, 384}));
  EXPECT_EQ(store->info("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{128, 384}));
  EXPECT_EQ(store->info("model.layers.5.mlp.down_proj.weight").shape, (std::vector<int64_t>{384, 1024}));
  EXPECT_EQ(store->info("model.layers.5.mlp.gate_proj.weight").shape, (std::vector<int64_t>{1024, 384}));
  EXPECT_EQ(store->info("model.norm.weight").shape, (std::vector<int64_t>{384}));

  // Values: bf16 -> fp32 is exact, finite, and a trained norm is not all zeros or all ones.
  const Tensor norm = store->load_f32("model.norm.weight", {384});
  const auto* raw = store->info("model.norm.weight").data;
  bool varied = false;
  for (size_t i = 0; i < norm.numel(); ++i) {
    uint16_t bits;
    std::memcpy(&bits, raw + 2 * i, 2);
    ASSERT_EQ(std::bit_cast<uint32_t>(norm.data[i]), static_cast<uint32_t>(bits) << 16);
    ASSERT_TRUE(std::isfinite(norm.data[i]));
    varied |= norm.data[i] != norm.data[0];
  }
  EXPECT_TRUE(varied);
  const Tensor down = store->load_f32("model.layers.5.mlp.down_proj.weight", {384, 1024});
  double sum_sq = 0;
  for (float v : down.data) {
    ASSERT_TRUE(std::isfinite(v));
    sum_sq += double(v) * v;
  }
  EXPECT_GT(sum_sq, 0.0);
}

// A model folder in a TempDir: the demo model's small files copied, its shards linked.
// `skip_shard` (a file name) is left out.
fs::path fake_model(const TempDir& tmp, const std::string& skip_shard = "") {
  const fs::path dir = tmp / "model";
  fs::create_directories(dir);
  for (const char* f : {"config.json", "tokenizer.json", "model.safetensors.index.json"})
    fs::copy_file(demo_model_dir() / f, dir / f);
  for (const auto& e : fs::directory_iterator(demo_model_dir())) {
    const auto name = e.path().filename().string();
    if (e.path().extension() == ".safetensors" && name != skip_shard) fs::create_symlink(e.path(), dir / name);
  }
  return dir;
}

TEST(SafetensorsSharded, FakeFolderWithAllShardsLoads) {
  TempDir tmp;
  const auto store = TensorStore::open(fake_model(tmp));
  EXPECT_EQ(store->names().size(), 57u);
}

TEST(SafetensorsSharded, IndexNamingAMissingShardIsBadInput) {
  TempDir tmp;
  const std::string shard = "model-00002-of-00003.safetensors";
  const fs::path dir = fake_model(tmp, shard);
  const std::string msg = bad_input_message([&] { TensorStore::open(dir); });
  EXPECT_NE(msg.find(shard), std::string::npos) << msg;
  EXPECT_NE(msg.find((dir / "model.safetensors.index.json").string()), std::string::npos) << msg;

  const auto r = run_sparsa({"eval", "--model", dir.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(shard), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(SafetensorsSharded, CorruptShardIsBadInputNamingTheShard) {
  TempDir tmp;
  const std::string shard = "model-00003-of-00003.safetensors";
  const fs::path dir = fake_model(tmp, shard);
  const std::string bytes = read_file(demo_model_dir() / shard);
  write_file(dir / shard, bytes.substr(0, bytes.size() - 100));  // data cut short
  const std::string msg = bad_input_message([&] { TensorStore::open(dir); });
  EXPECT_NE(msg.find((dir / shard).string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("lm_head.weight"), std::string::npos) << msg;

  const auto r = run_sparsa({"eval", "--model", dir.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find((dir / shard).string()), std::string::npos) << r.err;
}

TEST(SafetensorsSharded, BrokenIndexIsBadInputNamingTheIndex) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "{\"weight_map\": "},
      {"no weight_map", "{\"metadata\": {}}"},
      {"weight_map not an object", "{\"weight_map\": [1, 2]}"},
      {"shard name not a string", "{\"weight_map\": {\"a\": 3}}"},
      {"shard outside the folder", "{\"weight_map\": {\"a\": \"../model-00001-of-00003.safetensors\"}}"},
      // Untrusted checkpoints (docs/reliability.md): no index entry may reach outside the folder.
      {"shard climbing to /etc", "{\"weight_map\": {\"a\": \"../../etc/passwd\"}}"},
      {"absolute shard path", "{\"weight_map\": {\"a\": \"/etc/passwd\"}}"},
      {"shard in a subfolder that climbs out", "{\"weight_map\": {\"a\": \"x/../../etc/passwd\"}}"},
      {"shard that is the parent folder", "{\"weight_map\": {\"a\": \"..\"}}"},
      {"shard that is the folder itself", "{\"weight_map\": {\"a\": \".\"}}"},
      {"empty shard name", "{\"weight_map\": {\"a\": \"\"}}"},
      {"shard name cut short by a NUL", "{\"weight_map\": {\"a\": \"..\\u0000.safetensors\"}}"},
      {"index not an object", "[]"},
      {"shard name with a line break", "{\"weight_map\": {\"a\": \"no\\nsuch.safetensors\"}}"},
      // Found by fuzz-sharded-index: a name over NAME_MAX made std::filesystem::exists throw.
      {"shard name longer than the file system allows",
       "{\"weight_map\": {\"a\": \"" + std::string(400, 'k') + ".safetensors\"}}"},
      {"shard under a file used as a folder", "{\"weight_map\": {\"a\": \"config.json/x.safetensors\"}}"},
  };
  for (const auto& [what, text] : cases) {
    SCOPED_TRACE(what);
    TempDir tmp;
    const fs::path dir = fake_model(tmp);
    write_file(dir / "model.safetensors.index.json", text);
    const std::string msg = bad_input_message([&] { TensorStore::open(dir); });
    EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
  }
}

TEST(SafetensorsSharded, IndexPlacingATensorInTheWrongShardIsBadInput) {
  TempDir tmp;
  const fs::path dir = fake_model(tmp);
  auto index = nlohmann::json::parse(read_file(dir / "model.safetensors.index.json"));
  index["weight_map"]["lm_head.weight"] = "model-00001-of-00003.safetensors";
  write_file(dir / "model.safetensors.index.json", index.dump());
  const auto store = TensorStore::open(dir);
  const std::string msg = bad_input_message([&] { store->load_f32("lm_head.weight"); });
  EXPECT_NE(msg.find("lm_head.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00001-of-00003.safetensors"), std::string::npos) << msg;
}

// ---- malformed files: each one a library test and a CLI test ----

struct BadFile {
  std::string name;       // test name and file stem
  std::string bytes;      // the whole file
  std::string expected;   // a fragment the message must contain (besides the file name)
};

void PrintTo(const BadFile& b, std::ostream* os) { *os << b.name; }

std::string valid_tokens_file() {
  const std::vector<int32_t> v = {1, 2, 3, 4};
  return st_bytes(R"({"eval":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})", raw_bytes(v));
}

std::string one_tensor(const std::string& entry, size_t data_bytes) {
  return st_bytes(R"({"eval":)" + entry + "}", std::string(data_bytes, '\0'));
}

std::vector<BadFile> bad_files() {
  const std::string valid = valid_tokens_file();
  return {
      {"Empty", "", "truncated"},
      {"ShorterThanLengthPrefix", std::string("\x10\x00\x00", 3), "truncated"},
      {"DataCutShort", valid.substr(0, valid.size() - 4), "leave the data section"},
      {"HeaderCutShort", valid.substr(0, 20), "past the end"},
      {"HeaderLengthPastEnd", le64(1000) + "{}" + std::string(8, '\0'), "past the end"},
      {"HeaderLengthHuge", le64(std::numeric_limits<uint64_t>::max()) + "{}", "past the end"},
      {"HeaderEmpty", le64(0), "not valid JSON"},
      {"HeaderNotJson", st_bytes("{not json}", ""), "not valid JSON"},
      {"HeaderBinaryGarbage", st_bytes(std::string("\xff\xfe\x00\x01\n\r", 6), ""), "not valid JSON"},
      {"HeaderNotObject", st_bytes("[1, 2, 3]", ""), "not a JSON object"},
      {"HeaderIsString", st_bytes("\"eval\"", ""), "not a JSON object"},
      {"EntryNotObject", st_bytes(R"({"eval": 5})", ""), "not an object"},
      {"Overlap", st_bytes(R"({"a":{"dtype":"I32","shape":[4],"data_offsets":[0,16]},)"
                           R"("eval":{"dtype":"I32","shape":[4],"data_offsets":[8,24]}})", std::string(24, '\0')),
       "overlaps"},
      {"SameBytesTwice", st_bytes(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                                  R"("eval":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
       "overlaps"},
      {"OffsetsPastData", one_tensor(R"({"dtype":"I32","shape":[4],"data_offsets":[16,32]})", 16), "leave the data section"},
      {"EndPastData", one_tensor(R"({"dtype":"I32","shape":[4],"data_offsets":[0,16]})", 15), "leave the data section"},
      {"BeginAfterEnd", one_tensor(R"({"dtype":"I32","shape":[2],"data_offsets":[8,0]})", 8), "[8, 0]"},
      {"OffsetsNotTwo", one_tensor(R"({"dtype":"I32","shape":[2],"data_offsets":[0]})", 8), "data_offsets"},
      {"OffsetNegative", one_tensor(R"({"dtype":"I32","shape":[2],"data_offsets":[-8,0]})", 8), "data_offsets"},
      {"OffsetsMissing", one_tensor(R"({"dtype":"I32","shape":[2]})", 8), "data_offsets"},
      {"UnknownDtype", one_tensor(R"({"dtype":"X17","shape":[2],"data_offsets":[0,8]})", 8), "unknown dtype 'X17'"},
      {"LowercaseDtype", one_tensor(R"({"dtype":"i32","shape":[2],"data_offsets":[0,8]})", 8), "unknown dtype 'i32'"},
      {"DtypeNotString", one_tensor(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})", 8), "dtype"},
      {"DtypeMissing", one_tensor(R"({"shape":[2],"data_offsets":[0,8]})", 8), "dtype"},
      {"ShapeTimesDtypeTooSmall", one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", 8), "needs 12 bytes"},
      {"ShapeTimesDtypeTooLarge", one_tensor(R"({"dtype":"I32","shape":[2,2],"data_offsets":[0,24]})", 24), "needs 16 bytes"},
      {"NegativeDim", one_tensor(R"({"dtype":"I32","shape":[-1,4],"data_offsets":[0,16]})", 16), "negative"},
      {"FractionalDim", one_tensor(R"({"dtype":"I32","shape":[2.5],"data_offsets":[0,8]})", 8), "non-integer"},
      {"StringDim", one_tensor(R"({"dtype":"I32","shape":["2"],"data_offsets":[0,8]})", 8), "non-integer"},
      {"ShapeNotArray", one_tensor(R"({"dtype":"I32","shape":2,"data_offsets":[0,8]})", 8), "shape"},
      {"ShapeOverflows", one_tensor(R"({"dtype":"I32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]})", 8),
       "too large"},
      {"MetadataNotObject", st_bytes(R"({"__metadata__":[1]})", ""), "__metadata__"},
      {"MetadataValueNotString", st_bytes(R"({"__metadata__":{"n":1}})", ""), "__metadata__"},
      // A tensor name with a line break must not break the one-line message.
      {"NameWithNewline", st_bytes(R"({"ev\nal":{"dtype":"X17","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
       "unknown dtype"},
  };
}

class MalformedSafetensors : public ::testing::TestWithParam<BadFile> {};

TEST_P(MalformedSafetensors, LibraryThrowsBadInputNamingTheFile) {
  const BadFile& c = GetParam();
  TempDir tmp;
  const auto path = tmp / (c.name + ".safetensors");
  write_file(path, c.bytes);
  const std::string msg = bad_input_message([&] { SafetensorsFile::open(path); });
  EXPECT_NE(msg.find(path.string()), std::string::npos) << "message does not name the file: " << msg;
  EXPECT_NE(msg.find(c.expected), std::string::npos) << "message does not say '" << c.expected << "': " << msg;
  // TensorStore::open goes through the same checks.
  const std::string msg2 = bad_input_message([&] { TensorStore::open(path); });
  EXPECT_NE(msg2.find(path.string()), std::string::npos) << msg2;
}

TEST_P(MalformedSafetensors, EvalExitsTwoWithOneLineNamingTheFile) {
  const BadFile& c = GetParam();
  TempDir tmp;
  const auto path = tmp / (c.name + ".safetensors");
  write_file(path, c.bytes);
  const auto r = run_sparsa({"eval", "--eval-tokens", path.string(), "--eval-key", "eval"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << "stderr is not one line: " << r.err;
  EXPECT_NE(r.err.find(path.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

INSTANTIATE_TEST_SUITE_P(Cases, MalformedSafetensors, ::testing::ValuesIn(bad_files()),
                         [](const ::testing::TestParamInfo<BadFile>& i) { return i.param.name; });

// The hand-built valid file really is valid (so the cases above fail for the stated reason).
TEST(SafetensorsRead, HandBuiltValidFileLoads) {
  TempDir tmp;
  write_file(tmp / "ok.safetensors", valid_tokens_file());
  const TensorI32 t = TensorStore::open(tmp / "ok.safetensors")->load_i32("eval");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(t.data, (std::vector<int32_t>{1, 2, 3, 4}));
}

// ---- --tokens with a key that is not there ----

TEST(SafetensorsCli, MissingKeyNamesTheKeyAndTheFile) {
  if (!shared_available()) GTEST_SKIP() << "../shared not present";
  const auto path = golden_tokens();
  const std::string msg = bad_input_message([&] { TensorStore::open(path)->load_i32("nosuchkey"); });
  EXPECT_NE(msg.find("nosuchkey"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;

  const auto r = run_sparsa({"eval", "--eval-tokens", path.string(), "--eval-key", "nosuchkey"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("nosuchkey"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens.safetensors"), std::string::npos) << r.err;
}

TEST(SafetensorsCli, TokensFileThatDoesNotExist) {
  TempDir tmp;
  const auto path = tmp / "nope.safetensors";
  const auto r = run_sparsa({"eval", "--eval-tokens", path.string(), "--eval-key", "eval"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(path.string()), std::string::npos) << r.err;
}

TEST(SafetensorsCli, TokensOfTheWrongDtypeOrRank) {
  TempDir tmp;
  const std::vector<float> f = {1, 2, 3, 4};
  const std::vector<int32_t> i = {1, 2, 3, 4, 5, 6, 7, 8};
  write_safetensors(tmp / "f.safetensors", {{"eval", DType::F32, {2, 2}, f.data()}});
  write_safetensors(tmp / "r3.safetensors", {{"eval", DType::I32, {2, 2, 2}, i.data()}});
  for (const char* name : {"f.safetensors", "r3.safetensors"}) {
    SCOPED_TRACE(name);
    const auto path = tmp / name;
    const auto r = run_sparsa({"eval", "--eval-tokens", path.string(), "--eval-key", "eval"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(path.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("eval"), std::string::npos) << r.err;
  }
}

TEST(SafetensorsCli, TokenIdsOutsideTheVocabulary) {
  TempDir tmp;
  for (const int32_t bad : {8192, -1}) {
    SCOPED_TRACE(bad);
    std::vector<int32_t> ids(2 * 16, 5);
    ids[20] = bad;
    const auto path = tmp / ("ids" + std::to_string(bad) + ".safetensors");
    write_safetensors(path, {{"eval", DType::I32, {2, 16}, ids.data()}});
    const auto r = run_sparsa({"eval", "--eval-tokens", path.string(), "--eval-key", "eval"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(path.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(std::to_string(bad)), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace sparsa
