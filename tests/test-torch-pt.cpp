// The safe torch .pt reader and the import of the Python study's per-matrix folders.
//
// Independent references: tests/data/pt/expected.json (the objects as torch 2.11 itself saw them,
// written by tests/data/pt/make_fixtures.py), hand-built pickles whose results are computed here by
// hand, and bit-by-bit unpacking of written masks. Hostile input: the evil / legacy / truncated
// fixtures, hand-made malformed pickles, and a randomized mutation loop over the fixtures.
#include <gtest/gtest.h>
#include <zip.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "sparsa/error.h"
#include "sparsa/safetensors.h"
#include "sparsa/torch_pt.h"
#include "test_support.h"

namespace sparsa {
namespace {

using test::bad_input_message;

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::string_literals;  // pickles hold NUL bytes
using Bytes = std::vector<uint8_t>;
using test::read_file;
using test::run_sparsa;
using test::TempDir;
using test::write_file;

const fs::path kPwned = "/tmp/sparsa_pwned";

fs::path fixture_dir() { return test::repo_dir() / "tests" / "data" / "pt"; }

json expected_json() { return json::parse(read_file(fixture_dir() / "expected.json")); }


// ---- zip archives built in memory with libzip (stored records, as torch writes them) ----

using Records = std::vector<std::pair<std::string, Bytes>>;

Records read_records(const fs::path& file) {
  int code = 0;
  zip_t* z = zip_open(file.c_str(), ZIP_RDONLY, &code);
  if (z == nullptr) throw std::runtime_error("cannot open " + file.string());
  Records out;
  for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); ++i) {
    zip_stat_t st;
    zip_stat_index(z, static_cast<zip_uint64_t>(i), 0, &st);
    Bytes b(st.size);
    zip_file_t* f = zip_fopen_index(z, static_cast<zip_uint64_t>(i), 0);
    zip_fread(f, b.data(), b.size());
    zip_fclose(f);
    out.emplace_back(st.name, std::move(b));
  }
  zip_discard(z);
  return out;
}

// Records named in `deflated` are compressed (torch itself never does), the others stored.
Bytes make_archive(const Records& records, const std::vector<std::string>& deflated = {}) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(nullptr, 0, 0, &err);
  zip_t* z = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  zip_source_keep(src);
  for (const auto& [name, bytes] : records) {
    zip_source_t* s = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
    const zip_int64_t idx = zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE);
    const bool deflate = std::find(deflated.begin(), deflated.end(), name) != deflated.end();
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, deflate ? 9 : 0);
  }
  zip_close(z);
  zip_source_open(src);
  zip_source_seek(src, 0, SEEK_END);
  Bytes out(static_cast<size_t>(zip_source_tell(src)));
  zip_source_seek(src, 0, SEEK_SET);
  zip_source_read(src, out.data(), out.size());
  zip_source_close(src);
  zip_source_free(src);
  zip_error_fini(&err);
  return out;
}

Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }

// An archive "t/" with the given data.pkl and storage data/0.
Bytes torch_archive(const std::string& pickle, const Bytes& storage0) {
  return make_archive({{"t/data.pkl", text_bytes(pickle)}, {"t/byteorder", text_bytes("little")},
                       {"t/data/0", storage0}, {"t/version", text_bytes("3\n")}});
}

PtValue load_bytes(const Bytes& b) { return load_torch_bytes(b.data(), b.size(), "hand.pt"); }

// ---- a pickle writer for hand-made streams ----

std::string long1(int64_t v) {  // LONG1 with 8 bytes: any int64
  std::string s = "\x8a\x08";
  for (int k = 0; k < 8; ++k) s += static_cast<char>(static_cast<uint64_t>(v) >> (8 * k));
  return s;
}
std::string unicode(const std::string& s) {
  std::string out = "X";
  for (int k = 0; k < 4; ++k) out += static_cast<char>(s.size() >> (8 * k));
  return out + s;
}
std::string int_tuple(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (const int64_t x : v) s += long1(x);
  return s + "t";
}
// _rebuild_tensor_v2(FloatStorage '0' of `numel`, offset, size, stride, False, {}) as a whole pickle.
std::string tensor_pickle(int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                          const std::vector<int64_t>& stride) {
  return "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n" "((" + unicode("storage") + "ctorch\nFloatStorage\n" +
         unicode("0") + unicode("cpu") + long1(numel) + "tQ" + long1(offset) + int_tuple(size) + int_tuple(stride) +
         "\x89}tR.";
}
Bytes floats(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// ---- comparing with expected.json ----

std::optional<DType> torch_dtype(const std::string& s) {
  static const std::map<std::string, DType> names = {
      {"float32", DType::F32}, {"float16", DType::F16}, {"bfloat16", DType::BF16}, {"float64", DType::F64},
      {"int64", DType::I64},   {"int32", DType::I32},   {"uint8", DType::U8},      {"bool", DType::BOOL}};
  const auto it = names.find(s);
  return it == names.end() ? std::nullopt : std::optional<DType>(it->second);
}

template <typename T>
std::vector<T> decode(const Bytes& b) {
  std::vector<T> v(b.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}

void expect_tensor(const PtValue& v, const json& e, const std::string& at) {
  ASSERT_TRUE(v.is<PtTensor>()) << at << ": got " << v.type_name();
  const PtTensor& t = v.as<PtTensor>();
  const auto dtype = torch_dtype(e["dtype"].get<std::string>());
  ASSERT_TRUE(dtype.has_value()) << at;
  EXPECT_EQ(t.dtype, *dtype) << at;
  ASSERT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>()) << at;
  const json& values = e["values"];
  ASSERT_EQ(static_cast<size_t>(t.numel()), values.size()) << at;
  const Bytes raw = t.contiguous_bytes();
  if (t.dtype == DType::F64) {
    EXPECT_EQ(decode<double>(raw), values.get<std::vector<double>>()) << at;
  } else if (t.dtype == DType::I64) {
    EXPECT_EQ(decode<int64_t>(raw), values.get<std::vector<int64_t>>()) << at;
  } else if (t.dtype == DType::I32) {
    EXPECT_EQ(decode<int32_t>(raw), values.get<std::vector<int32_t>>()) << at;
  } else if (t.dtype == DType::BOOL || t.dtype == DType::U8) {
    EXPECT_EQ(t.to_u8().data, values.get<std::vector<uint8_t>>()) << at;
  } else {  // F32 / F16 / BF16: torch printed them as exact doubles
    const Tensor f = t.to_f32();
    for (size_t k = 0; k < values.size(); ++k)
      ASSERT_EQ(f.data[k], static_cast<float>(values[k].get<double>())) << at << " element " << k;
  }
}

void expect_object(const PtValue& v, const json& e, const std::string& at) {
  const std::string kind = e["kind"];
  if (kind == "tensor") return expect_tensor(v, e, at);
  if (kind == "NoneType") {
    EXPECT_TRUE(v.is_none()) << at;
    return;
  }
  ASSERT_EQ(v.type_name(), kind) << at;
  if (kind == "dict" || kind == "OrderedDict") {
    const PtDict& d = v.as<PtDict>();
    ASSERT_EQ(d.size(), e["items"].size()) << at;
    for (const auto& [key, value] : e["items"].items()) {  // nlohmann keeps the keys sorted, so look up
      const PtValue* got = d.find(PtKey{key});
      ASSERT_NE(got, nullptr) << at << ": missing key " << key;
      expect_object(*got, value, at + "." + key);
    }
  } else if (kind == "list" || kind == "tuple") {
    const auto& items = kind == "list" ? v.as<PtList>().items : v.as<PtTuple>().items;
    ASSERT_EQ(items.size(), e["items"].size()) << at;
    for (size_t k = 0; k < items.size(); ++k)
      expect_object(items[k], e["items"][k], at + "[" + std::to_string(k) + "]");
  } else if (kind == "int") {
    EXPECT_EQ(v.as<int64_t>(), e["value"].get<int64_t>()) << at;
  } else if (kind == "float") {
    EXPECT_EQ(v.as<double>(), e["value"].get<double>()) << at;
  } else if (kind == "str") {
    EXPECT_EQ(v.as<std::string>(), e["value"].get<std::string>()) << at;
  } else if (kind == "bool") {
    EXPECT_EQ(v.as<bool>(), e["value"].get<bool>()) << at;
  } else {
    FAIL() << at << ": expected.json kind " << kind << " not handled by the test";
  }
}

// ---- the fixtures ----

TEST(TorchPt, EveryFixtureMatchesTorch) {
  const json ex = expected_json();
  int checked = 0, rejected = 0;
  for (const auto& [name, entry] : ex["files"].items()) {
    SCOPED_TRACE(name);
    const fs::path file = fixture_dir() / name;
    if (entry.value("reject", false)) {
      bad_input_message([&] { load_torch_file(file); });
      ++rejected;
      continue;
    }
    expect_object(load_torch_file(file), entry["object"], name);
    ++checked;
  }
  EXPECT_EQ(checked, 15);
  EXPECT_EQ(rejected, 4);
}

TEST(TorchPt, DictOrderViewsAndSharedStorage) {
  const PtValue v = load_torch_file(fixture_dir() / "state_dict.pt");
  ASSERT_EQ(v.type_name(), "OrderedDict");
  const PtDict& d = v.as<PtDict>();
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(std::get<std::string>(d.items()[0].first), "a.weight");  // insertion order kept
  EXPECT_EQ(std::get<std::string>(d.items()[2].first), "b.bias");
  const PtTensor& w = d.find(PtKey{"a.weight"})->as<PtTensor>();
  const PtTensor& wt = d.find(PtKey{"a.weight_t"})->as<PtTensor>();
  EXPECT_EQ(w.storage.get(), wt.storage.get());  // one storage, two views
  EXPECT_EQ(wt.strides, (std::vector<int64_t>{1, 4}));
  const Tensor a = w.to_f32(), b = wt.to_f32();
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(b.data[r * 4 + c], a.data[c * 4 + r]);

  const PtTensor s = load_torch_file(fixture_dir() / "slice_offset.pt").as<PtTensor>();
  EXPECT_EQ(s.storage_offset, 10);
  // arange(40)[10:22]
  EXPECT_EQ(s.to_f32().data, (std::vector<float>{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}));
}

TEST(TorchPt, RejectsCodeExecutionWithoutRunningIt) {
  std::error_code ec;
  fs::remove(kPwned, ec);
  const std::string sys = bad_input_message([] { load_torch_file(fixture_dir() / "evil_os_system.pt"); });
  EXPECT_NE(sys.find("posix.system"), std::string::npos) << sys;
  EXPECT_NE(sys.find("evil_os_system.pt"), std::string::npos) << sys;
  EXPECT_FALSE(fs::exists(kPwned));
  const std::string ev = bad_input_message([] { load_torch_file(fixture_dir() / "evil_eval.pt"); });
  EXPECT_NE(ev.find("__builtin__.eval"), std::string::npos) << ev;  // pickle protocol 2 spells builtins so
  EXPECT_NE(ev.find("evil_eval.pt"), std::string::npos) << ev;
}

TEST(TorchPt, RejectsLegacyTruncatedAndNonArchives) {
  const std::string legacy = bad_input_message([] { load_torch_file(fixture_dir() / "legacy_format.pt"); });
  EXPECT_NE(legacy.find("legacy torch.save format"), std::string::npos) << legacy;
  const std::string trunc = bad_input_message([] { load_torch_file(fixture_dir() / "truncated_storage.pt"); });
  EXPECT_NE(trunc.find("data/0 holds 70 bytes but data.pkl declares 140"), std::string::npos) << trunc;
  EXPECT_NE(trunc.find("truncated_storage.pt"), std::string::npos) << trunc;
  const std::string json_file = bad_input_message([] { load_torch_file(fixture_dir() / "expected.json"); });
  EXPECT_NE(json_file.find("not a torch.save file"), std::string::npos) << json_file;
  const Bytes big_endian = make_archive({{"t/data.pkl", text_bytes("\x80\x02N.")}, {"t/byteorder", text_bytes("big")}});
  EXPECT_NE(bad_input_message([&] { load_bytes(big_endian); }).find("big-endian"), std::string::npos);
  const Bytes no_pickle = make_archive({{"t/version", text_bytes("3\n")}});
  EXPECT_NE(bad_input_message([&] { load_bytes(no_pickle); }).find("data.pkl"), std::string::npos);
}

// ---- hand-built pickles ----

TEST(TorchPt, HandBuiltTensorView) {
  // storage [0, 1, 2, 3, 4, 5]; offset 1, size (2, 2), stride (1, 2): rows [1, 3], [2, 4].
  const PtValue v = load_bytes(torch_archive(tensor_pickle(6, 1, {2, 2}, {1, 2}), floats({0, 1, 2, 3, 4, 5})));
  const Tensor t = v.as<PtTensor>().to_f32();
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(t.data, (std::vector<float>{1, 3, 2, 4}));
  // stride 0 broadcasts one element
  const Tensor b = load_bytes(torch_archive(tensor_pickle(1, 0, {3}, {0}), floats({7}))).as<PtTensor>().to_f32();
  EXPECT_EQ(b.data, (std::vector<float>{7, 7, 7}));
}

TEST(TorchPt, MalformedPicklesGiveErrors) {
  const Bytes six = floats({0, 1, 2, 3, 4, 5});
  const auto message = [&](const std::string& pickle) {
    return bad_input_message([&] { load_bytes(torch_archive(pickle, six)); });
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\x80\x02\xff.", "0xff at offset 2"},                 // unknown opcode
      {"\x80\x06N.", "protocol 6"},                         // a future protocol
      {"\x80\x02N\x86.", "stack underflow"},                 // TUPLE2 of one item
      {"\x80\x02Na.", "stack underflow"},                     // APPEND with no list
      {"\x80\x02(\x85.", "stack underflow"},                  // TUPLE1 may not reach below a MARK
      {"\x80\x02h\x05.", "memo key 5"},                       // BINGET of a missing key
      {"\x80\x02j\x00\x00\x01\x00."s, "memo key 65536"},      // LONG_BINGET of a missing key
      {"\x80\x02X\xff\xff\xff\x7f" "abc.", "truncated"},      // huge length prefix
      {"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff."s, "truncated"},  // BINUNICODE8 of 2^64-1 bytes
      {"\x80\x02\x8a\x09" "123456789."s, "64 bits"},          // LONG1 wider than int64
      {"\x80\x02N", "without a STOP"},
      {"\x80\x02t.", "no MARK"},
      {"\x80\x02}NNN\x86s.", "dict keys must be str or int"},
      {"\x80\x02" "cbuiltins\ngetattr\n.", "builtins.getattr"},
      {"\x80\x02(X\x03\x00\x00\x00" "abc" "X\x03\x00\x00\x00" "def\x93."s, "abc.def"},  // STACK_GLOBAL
      {"\x80\x02" "ctorch\nFloatStorage\n)R.", "called as a function"},
      {"\x80\x02" "ctorch\nFloatStorage\n.", "appears as a value"},
      {"\x80\x02X\x02\x00\x00\x00\xc3\x28."s, "UTF-8"},
      {"\x80\x02]q\x00h\x00" "a."s, "nested deeper"},         // a list containing itself
      {tensor_pickle(6, 0, {int64_t{1} << 62, int64_t{1} << 62}, {1, 1}), "more elements than int64"},
      {tensor_pickle(6, 0, {3}, {-1}), "negative stride"},
      {tensor_pickle(6, -1, {3}, {1}), "negative storage offset"},
      {tensor_pickle(6, 0, {-2, 3}, {3, 1}), "negative size"},
      {tensor_pickle(6, 4, {2, 2}, {2, 1}), "shorter than the tensor"},  // reads element 7 of 6
      {tensor_pickle(7, 0, {6}, {1}), "holds 24 bytes but data.pkl declares 28"},  // 7 floats declared, 6 stored
      {tensor_pickle(5, 0, {5}, {1}), "holds 24 bytes but data.pkl declares 20"},  // more stored than declared
      {tensor_pickle(6, 0, {3, 2}, {int64_t{1} << 62, 1}), "past int64"},
      {tensor_pickle(6, 0, {2}, {1, 1}), "differ in rank"},
  };
  for (const auto& [pickle, needle] : cases) {
    const std::string m = message(pickle);
    EXPECT_NE(m.find(needle), std::string::npos) << "expected '" << needle << "' in: " << m;
    EXPECT_NE(m.find("hand.pt"), std::string::npos) << m;
  }
}

TEST(TorchPt, SharedReferencesAndMarksAreBounded) {
  // l0 = []; l(k+1) = [lk, lk]: 2^40 objects once expanded, from a few hundred bytes.
  std::string p = "\x80\x02]r\x00\x00\x00\x00"s;
  for (uint32_t k = 0; k < 40; ++k) {
    std::string get = "j";
    for (int b = 0; b < 4; ++b) get += static_cast<char>(k >> (8 * b));
    std::string put = "r";
    for (int b = 0; b < 4; ++b) put += static_cast<char>((k + 1) >> (8 * b));
    p += "]" + put + "(" + get + get + "e";
  }
  EXPECT_NE(bad_input_message([&] { load_bytes(torch_archive(p + ".", {})); }).find("expand"), std::string::npos);
  EXPECT_NE(bad_input_message([&] { load_bytes(torch_archive("\x80\x02" + std::string(70000, '(') + "N.", {})); })
                .find("open MARKs"),
            std::string::npos);
}

// The archive of torch_archive with data/0 deflated.
Bytes deflated_archive(const std::string& pickle, const Bytes& storage0) {
  return make_archive({{"t/data.pkl", text_bytes(pickle)}, {"t/data/0", storage0}}, {"t/data/0"});
}

// A small archive whose storage inflates far beyond what data.pkl declares is refused from the
// zip directory, before the storage is inflated or allocated; one that declares it is read.
TEST(TorchPt, StorageSizeIsCheckedAgainstTheDeclarationBeforeReading) {
  const Bytes zeros(64u << 20, 0);  // 64 MiB of zeros deflate to ~64 KiB
  const Bytes bomb = deflated_archive(tensor_pickle(6, 0, {6}, {1}), zeros);
  ASSERT_LT(bomb.size(), 1u << 20);
  const std::string m = bad_input_message([&] { load_bytes(bomb); });
  EXPECT_NE(m.find("data/0 holds 67108864 bytes but data.pkl declares 24"), std::string::npos) << m;
  // Declared honestly, the same storage loads (the bound is the declaration, not the ratio).
  const Bytes honest = deflated_archive(tensor_pickle(16, 0, {16}, {1}), Bytes(64, 0));
  EXPECT_EQ(load_bytes(honest).as<PtTensor>().to_f32().data, std::vector<float>(16, 0.0f));
}

// A storage no tensor is built on is never read (here its record does not even exist): {} with
// the storage as a BUILD state, which is dropped.
TEST(TorchPt, UnusedStorageIsNotRead) {
  const std::string pickle = "\x80\x02}((" + unicode("storage") + "ctorch\nFloatStorage\n" + unicode("0") +
                             unicode("cpu") + long1(int64_t{1} << 40) + "tQtb.";
  const PtValue v = load_bytes(make_archive({{"t/data.pkl", text_bytes(pickle)}, {"t/version", text_bytes("3\n")}}));
  EXPECT_EQ(v.type_name(), "dict");
}

// ---- never a crash: random mutations of the fixtures ----

size_t materialise_all(const PtValue& v) {  // touches every tensor, returns how many
  if (v.is<PtTensor>()) {
    v.as<PtTensor>().to_f32();
    return 1;
  }
  size_t n = 0;
  if (v.is<PtList>()) for (const auto& x : v.as<PtList>().items) n += materialise_all(x);
  if (v.is<PtTuple>()) for (const auto& x : v.as<PtTuple>().items) n += materialise_all(x);
  if (v.is<PtDict>()) for (const auto& [k, x] : v.as<PtDict>().items()) n += materialise_all(x);
  return n;
}

// Loads `b`: returns 1 when it parsed, 0 when it threw sparsa::Error (anything else fails the test).
int try_load(const Bytes& b) {
  try {
    materialise_all(load_bytes(b));
    return 1;
  } catch (const Error&) {
    return 0;
  }
}

TEST(TorchPt, MutatedFixturesParseOrThrowNeverCrash) {
  std::mt19937_64 rng(20261129);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fixture_dir()))
    if (e.path().extension() == ".pt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 19u);
  int parsed = 0, runs = 0;
  const auto mutate = [&](Bytes b) {
    if (b.empty()) return b;
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      b.resize(rng() % b.size());  // truncation
    } else {
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < flips; ++k) {
        uint8_t& c = b[rng() % b.size()];
        c = kind == 1 ? static_cast<uint8_t>(rng()) : kind == 2 ? static_cast<uint8_t>(c ^ (1u << (rng() % 8)))
                                                               : static_cast<uint8_t>(c + 1 - rng() % 3);
      }
    }
    return b;
  };
  for (const auto& f : files) {
    const std::string s = read_file(f);
    const Bytes whole(s.begin(), s.end());
    for (int k = 0; k < 100; ++k, ++runs) parsed += try_load(mutate(whole));  // the zip layer
    if (f.filename() == "legacy_format.pt") continue;
    Records records = read_records(f);
    for (auto& [name, bytes] : records) {
      if (!name.ends_with("/data.pkl")) continue;
      const Bytes pickle = bytes;
      for (int k = 0; k < 200; ++k, ++runs) {  // the unpickler, behind a valid zip
        bytes = mutate(pickle);
        parsed += try_load(make_archive(records));
      }
      bytes = pickle;
    }
  }
  EXPECT_EQ(runs, 19 * 100 + 18 * 200);
  EXPECT_GT(parsed, 0);  // some mutations are harmless (a changed value)
  std::printf("mutation loop: %d inputs, %d parsed, %d rejected with sparsa::Error\n", runs, parsed, runs - parsed);
}

// ---- importing a study folder ----

const json& expected_values(const json& ex, const std::string& name) { return ex["files"][name]["object"]["values"]; }

void copy_layer_fixtures(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(fixture_dir()))
    if (e.path().filename().string().starts_with("layer")) fs::copy_file(e.path(), dir / e.path().filename());
}

TEST(PtImport, ParsesFileNames) {
  const ImportedMatrix m = parse_study_file_name("layer12-self_attn.q_proj-3-1-0.75.pt");
  EXPECT_EQ(m.layer, 12);
  EXPECT_EQ(m.component, "self_attn.q_proj");
  EXPECT_EQ(m.i, 3);
  EXPECT_EQ(m.j, 1);
  EXPECT_EQ(m.sparsity, "0.75");
  EXPECT_EQ(m.sparsity_value, 0.75);
  EXPECT_EQ(m.hf_name, "model.layers.12.self_attn.q_proj");
  for (const std::string bad : {"layerX-mlp.down_proj-0-0-0.5.pt", "layer0-mlp.down_proj-0-0.pt", "layer0--0-0-0.5.pt",
                                "layer0-mlp.down_proj-0-0-1.5.pt", "layer0-mlp.down_proj-0-0-0.5.bin", "mask.pt",
                                "layer0-mlp.down_proj-a-0-0.5.pt", "layer0-mlp/x-0-0-0.5.pt"}) {
    const std::string msg = bad_input_message([&] { parse_study_file_name(bad); });
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
  }
}

TEST(PtImport, ImportsMasksAndWeights) {
  const json ex = expected_json();
  TempDir dir;
  copy_layer_fixtures(dir.path());
  // pruned fp32 weights: zeros are the pruned entries
  write_file(dir / "layer2-mlp.gate_proj-0-0-0.5.pt",
             as_string(torch_archive(tensor_pickle(6, 0, {2, 3}, {3, 1}), floats({0, 1.5f, 0, -2, -0.0f, 3}))));
  const std::vector<ImportedMatrix> ms = import_pt_folder(dir.path());
  ASSERT_EQ(ms.size(), 4u);
  EXPECT_EQ(ms[0].hf_name, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(ms[1].hf_name, "model.layers.0.mlp.up_proj");
  EXPECT_EQ(ms[2].hf_name, "model.layers.1.self_attn.q_proj");
  EXPECT_EQ(ms[3].hf_name, "model.layers.2.mlp.gate_proj");

  EXPECT_FALSE(ms[0].from_weights);
  EXPECT_EQ(ms[0].mask.rows, 12);
  EXPECT_EQ(ms[0].mask.cols, 20);
  EXPECT_EQ(ms[0].mask.pruned, expected_values(ex, "layer0-mlp.down_proj-0-0-0.5.pt").get<std::vector<uint8_t>>());
  EXPECT_EQ(ms[2].mask.pruned, expected_values(ex, "layer1-self_attn.q_proj-0-0-0.5.pt").get<std::vector<uint8_t>>());

  EXPECT_TRUE(ms[1].from_weights);  // fp16 weights
  const auto w = expected_values(ex, "layer0-mlp.up_proj-0-0-0.5.pt").get<std::vector<double>>();
  ASSERT_EQ(ms[1].mask.pruned.size(), w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    EXPECT_EQ(ms[1].weights.data[k], static_cast<float>(w[k]));
    EXPECT_EQ(ms[1].mask.pruned[k], w[k] == 0.0 ? 1 : 0);
  }
  EXPECT_TRUE(ms[3].from_weights);
  EXPECT_EQ(ms[3].mask.pruned, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0}));
}

TEST(PtImport, BadFolders) {
  TempDir empty;
  EXPECT_NE(bad_input_message([&] { import_pt_folder(empty.path()); }).find("no .pt files"), std::string::npos);
  TempDir odd;
  write_file(odd / "weights.pt", read_file(fixture_dir() / "f32_2d.pt"));
  EXPECT_NE(bad_input_message([&] { import_pt_folder(odd.path()); }).find("weights.pt"), std::string::npos);
  TempDir vec;
  write_file(vec / "layer0-mlp.up_proj-0-0-0.5.pt", read_file(fixture_dir() / "bf16_1d.pt"));
  EXPECT_NE(bad_input_message([&] { import_pt_folder(vec.path()); }).find("expected a matrix"), std::string::npos);
  TempDir ints;
  write_file(ints / "layer0-mlp.up_proj-0-0-0.5.pt", read_file(fixture_dir() / "i64.pt"));
  EXPECT_NE(bad_input_message([&] { import_pt_folder(ints.path()); }).find("neither a mask"), std::string::npos);
  TempDir u8;
  write_file(u8 / "layer0-mlp.up_proj-0-0-0.5.pt", read_file(fixture_dir() / "u8.pt"));  // values up to 254
  EXPECT_NE(bad_input_message([&] { import_pt_folder(u8.path()); }).find("other than 0 and 1"), std::string::npos);
}

// A stride-0 view of 2^40 elements over one stored float: refused, naming the file, before a
// mask of its shape is allocated (which would be a terabyte).
TEST(PtImport, BroadcastShapeIsRefusedBeforeTheMaskIsAllocated) {
  TempDir dir;
  const fs::path file = dir / "layer0-mlp.up_proj-0-0-0.5.pt";
  const Bytes b = torch_archive(tensor_pickle(1, 0, {int64_t{1} << 20, int64_t{1} << 20}, {0, 0}), floats({1}));
  write_file(file, std::string(b.begin(), b.end()));
  const std::string m = bad_input_message([&] { import_pt_folder(dir.path()); });
  EXPECT_NE(m.find(file.string()), std::string::npos) << m;
  EXPECT_NE(m.find("broadcast"), std::string::npos) << m;
}

// ---- sparsa import ----

// Bit c of row r in a packbits row (MSB first), read without pack_mask.
int packed_bit(const uint8_t* data, int64_t row_bytes, int64_t r, int64_t c) {
  return (data[r * row_bytes + c / 8] >> (7 - c % 8)) & 1;
}

TEST(PtImportCli, WritesGoldenMaskFormat) {
  const json ex = expected_json();
  TempDir dir, out;
  copy_layer_fixtures(dir.path());
  const auto r = run_sparsa({"import", dir.path().string(), "--out", (out / "masks.safetensors").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["matrices"].size(), 3u);
  EXPECT_EQ(j["matrices"][1]["content"], "weights");
  EXPECT_EQ(j["matrices"][0]["content"], "mask");

  const auto f = SafetensorsFile::open(out / "masks.safetensors");
  EXPECT_EQ(f->tensors().size(), 4u);  // three masks + the weights of the file that held weights
  const TensorInfo* up = f->find("model.layers.0.mlp.up_proj.weight");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->dtype, DType::F32);
  EXPECT_EQ(up->shape, (std::vector<int64_t>{10, 6}));
  const auto w = expected_values(ex, "layer0-mlp.up_proj-0-0-0.5.pt").get<std::vector<double>>();
  for (size_t k = 0; k < w.size(); ++k) {
    float x;
    std::memcpy(&x, up->data + 4 * k, 4);
    EXPECT_EQ(x, static_cast<float>(w[k]));
  }
  const TensorInfo* down = f->find("model.layers.0.mlp.down_proj.mask");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dtype, DType::U8);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{12, 3}));
  const json& v = expected_values(ex, "layer0-mlp.down_proj-0-0-0.5.pt");
  for (int64_t r2 = 0; r2 < 12; ++r2)
    for (int64_t c = 0; c < 20; ++c)
      ASSERT_EQ(packed_bit(down->data, 3, r2, c), v[r2 * 20 + c].get<int>()) << r2 << "," << c;
  for (int64_t r2 = 0; r2 < 12; ++r2)
    for (int64_t c = 20; c < 24; ++c) EXPECT_EQ(packed_bit(down->data, 3, r2, c), 0);  // padding
  EXPECT_NE(f->find("model.layers.1.self_attn.q_proj.mask"), nullptr);
  EXPECT_EQ(f->metadata().at("sparsity"), "0.5");
}

TEST(PtImportCli, ExitCodes) {
  TempDir empty, out;
  const auto e = run_sparsa({"import", empty.path().string(), "--out", (out / "m.safetensors").string()});
  EXPECT_EQ(e.exit_code, 2);
  EXPECT_TRUE(test::one_line(e.err)) << e.err;

  std::error_code ec;
  fs::remove(kPwned, ec);
  TempDir evil;
  fs::copy_file(fixture_dir() / "evil_os_system.pt", evil / "layer0-mlp.down_proj-0-0-0.5.pt");
  const auto x = run_sparsa({"import", evil.path().string(), "--out", (out / "m.safetensors").string()});
  EXPECT_EQ(x.exit_code, 2);
  EXPECT_TRUE(test::one_line(x.err)) << x.err;
  EXPECT_NE(x.err.find("posix.system"), std::string::npos) << x.err;
  EXPECT_FALSE(fs::exists(kPwned));
  EXPECT_FALSE(fs::exists(out / "m.safetensors"));

  TempDir two;
  copy_layer_fixtures(two.path());
  fs::copy_file(fixture_dir() / "layer0-mlp.down_proj-0-0-0.5.pt", two / "layer0-mlp.down_proj-0-0-0.7.pt");
  const auto amb = run_sparsa({"import", two.path().string(), "--out", (out / "m.safetensors").string()});
  EXPECT_EQ(amb.exit_code, 2);
  EXPECT_NE(amb.err.find("--sparsity"), std::string::npos) << amb.err;
  const auto pick = run_sparsa({"import", two.path().string(), "--out", (out / "m.safetensors").string(),
                                "--sparsity", "0.7"});
  EXPECT_EQ(pick.exit_code, 0) << pick.err;
  EXPECT_EQ(SafetensorsFile::open(out / "m.safetensors")->tensors().size(), 1u);

  TempDir dup;
  fs::copy_file(fixture_dir() / "layer0-mlp.down_proj-0-0-0.5.pt", dup / "layer0-mlp.down_proj-0-0-0.5.pt");
  fs::copy_file(fixture_dir() / "layer0-mlp.down_proj-0-0-0.5.pt", dup / "layer0-mlp.down_proj-1-0-0.5.pt");
  const auto d = run_sparsa({"import", dup.path().string(), "--out", (out / "d.safetensors").string()});
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_NE(d.err.find("one matrix per name"), std::string::npos) << d.err;
}

}  // namespace
}  // namespace sparsa
