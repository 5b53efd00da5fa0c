#include "sparsa/safetensors.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"

namespace sparsa {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u * 1024 * 1024;  // the format's own limit

// A name from a file, safe to put in a one-line message: control characters become \xNN.
std::string printable(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    else out += c;
  }
  return out;
}

// Parses one tensor entry of the header; `data_size` is the length of the data section.
TensorInfo parse_entry(const fs::path& path, const std::string& tensor_name, const json& entry,
                       const uint8_t* data_begin, uint64_t data_size) {
  const std::string name = printable(tensor_name);  // for messages
  if (!entry.is_object()) bad_input("{}: tensor '{}': header entry is not an object", path.string(), name);
  const auto dt = entry.find("dtype");
  if (dt == entry.end() || !dt->is_string())
    bad_input("{}: tensor '{}': missing dtype", path.string(), name);
  const auto dtype = dtype_from_name(dt->get<std::string>());
  if (!dtype) bad_input("{}: tensor '{}': unknown dtype '{}'", path.string(), name, dt->get<std::string>());

  const auto sh = entry.find("shape");
  if (sh == entry.end() || !sh->is_array()) bad_input("{}: tensor '{}': missing shape", path.string(), name);
  TensorInfo info;
  info.name = tensor_name;
  info.dtype = *dtype;
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) bad_input("{}: tensor '{}': shape has a non-integer or negative dimension", path.string(), name);
    const uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / v)
      bad_input("{}: tensor '{}': shape is too large", path.string(), name);
    numel *= v;
    info.shape.push_back(static_cast<int64_t>(v));
  }

  const auto off = entry.find("data_offsets");
  if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad_input("{}: tensor '{}': data_offsets must be two non-negative integers", path.string(), name);
  const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (begin > end)
    bad_input("{}: tensor '{}': data_offsets [{}, {}] end before they begin", path.string(), name, begin, end);
  if (end > data_size)
    bad_input("{}: tensor '{}': data_offsets [{}, {}] leave the data section ({} bytes)", path.string(),
              name, begin, end, data_size);
  const uint64_t expected = numel * dtype_size(*dtype);
  if (end - begin != expected)
    bad_input("{}: tensor '{}': {} {} needs {} bytes but data_offsets span {}", path.string(), name,
              dt->get<std::string>(), shape_string(info.shape), expected, end - begin);
  info.data = data_begin + begin;
  info.nbytes = static_cast<size_t>(expected);
  return info;
}

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  const InputFile in(path);
  const uint64_t size = in.size();
  if (size < 8)
    bad_input("{}: truncated safetensors file ({} bytes, the 8-byte header length is missing)", path.string(), size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, in.fd(), 0);
  if (map == MAP_FAILED) runtime_failure("{}: mmap failed: {}", path.string(), std::strerror(errno));
  f->map_ = map;
  f->map_size_ = size;

  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[i];
  if (header_len > size - 8)
    bad_input("{}: header length {} runs past the end of the file ({} bytes)", path.string(), header_len, size);
  if (header_len > kMaxHeaderBytes) bad_input("{}: header length {} is over the 100 MB limit", path.string(), header_len);

  json header;
  std::vector<std::string> key_order;  // the top-level keys as they appear (json objects sort them)
  try {
    header = json::parse(bytes + 8, bytes + 8 + header_len, [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth > kMaxJsonDepth) bad_input("{}: header nested more than {} levels deep", path.string(), kMaxJsonDepth);
      if (depth == 1 && event == json::parse_event_t::key) key_order.push_back(parsed.get<std::string>());
      return true;
    });
  } catch (const json::exception& e) {
    bad_input("{}: header is not valid JSON: {}", path.string(), e.what());
  }
  if (!header.is_object()) bad_input("{}: header is not a JSON object", path.string());

  const uint8_t* data_begin = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::set<std::string> seen;
  for (const std::string& key : key_order) {
    if (!seen.insert(key).second) continue;  // a repeated key: the last value counts, at its first place
    const auto it = header.find(key);
    if (it.key() == "__metadata__") {
      if (!it->is_object()) bad_input("{}: __metadata__ is not an object", path.string());
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) bad_input("{}: __metadata__ value '{}' is not a string", path.string(), printable(m.key()));
        f->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    f->tensors_.push_back(parse_entry(path, it.key(), *it, data_begin, data_size));
  }

  // No two tensors may share bytes (empty tensors occupy nothing).
  std::vector<const TensorInfo*> order;
  for (const auto& t : f->tensors_)
    if (t.nbytes > 0) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i - 1]->data + order[i - 1]->nbytes > order[i]->data)
      bad_input("{}: tensor '{}' overlaps tensor '{}'", path.string(), printable(order[i]->name),
                printable(order[i - 1]->name));

  for (const auto& t : f->tensors_) f->by_name_[t.name] = &t;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

// ---- TensorStore ----

std::unique_ptr<TensorStore> TensorStore::open(const fs::path& path) {
  std::unique_ptr<TensorStore> s(new TensorStore());
  s->path_ = path;
  if (!is_folder(path)) {
    auto file = SafetensorsFile::open(path);
    for (const auto& t : file->tensors()) s->weight_map_[t.name] = path.filename().string();
    s->shards_[path.filename().string()] = std::move(file);
    return s;
  }
  const fs::path index = path / "model.safetensors.index.json";
  if (path_exists(index)) {
    json j;
    const std::string text = InputFile(index).read_all(kMaxJsonFileBytes, "JSON file");
    try {
      j = parse_json_bounded(text, index);
    } catch (const json::exception& e) {
      bad_input("{}: not valid JSON: {}", index.string(), e.what());
    }
    const auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) bad_input("{}: missing 'weight_map'", index.string());
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) bad_input("{}: weight_map['{}'] is not a file name", index.string(), printable(it.key()));
      const std::string file = it->get<std::string>();
      // A plain file name: no separator, no "." / "..", no NUL (which would cut the path short).
      if (file.find_first_of(std::string("/\0", 2)) != std::string::npos || file == "." || file == ".." || file.empty())
        bad_input("{}: weight_map['{}'] names '{}', which is not a file in the folder", index.string(),
                  printable(it.key()), printable(file));
      if (!path_exists(path / file))
        bad_input("{}: shard '{}' (holding '{}') does not exist", index.string(), printable(file), printable(it.key()));
      s->weight_map_[it.key()] = file;
      if (!s->shards_.count(file)) s->shards_[file] = SafetensorsFile::open(path / file);
    }
    return s;
  }
  const fs::path single = path / "model.safetensors";
  if (!path_exists(single))
    bad_input("{}: no model.safetensors or model.safetensors.index.json in the folder", path.string());
  auto file = SafetensorsFile::open(single);
  for (const auto& t : file->tensors()) s->weight_map_[t.name] = "model.safetensors";
  s->shards_["model.safetensors"] = std::move(file);
  return s;
}

TensorStore::~TensorStore() = default;

const SafetensorsFile& TensorStore::shard(const std::string& file) const {
  return *shards_.at(file);
}

bool TensorStore::contains(const std::string& name) const { return weight_map_.count(name) != 0; }

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : weight_map_) out.push_back(name);
  return out;
}

std::string TensorStore::load_description(const TensorInfo& t) const {
  return fmt::format("loading tensor '{}' {} of {}", printable(t.name), shape_string(t.shape), path_.string());
}

namespace {

// Up to five of `names`, those sharing the longest prefix with `wanted` first (a misspelt layer or
// role shares its start with the right name), for an error that helps the user pick.
std::string nearest_names(const std::map<std::string, std::string>& names, const std::string& wanted) {
  std::vector<std::pair<size_t, const std::string*>> ranked;  // (-shared prefix, name)
  for (const auto& [name, file] : names) {
    const size_t shared = static_cast<size_t>(std::mismatch(name.begin(), name.end(), wanted.begin(), wanted.end()).first -
                                              name.begin());
    ranked.emplace_back(wanted.size() - std::min(shared, wanted.size()), &name);
  }
  const size_t shown = std::min<size_t>(5, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(shown), ranked.end(),
                    [](const auto& a, const auto& b) { return a.first != b.first ? a.first < b.first : *a.second < *b.second; });
  std::string out;
  for (size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + printable(*ranked[i].second);
  return shown < ranked.size() ? fmt::format("{}, ... ({} in all)", out, ranked.size()) : out;
}

}  // namespace

const TensorInfo& TensorStore::info(const std::string& name) const {
  const auto it = weight_map_.find(name);
  if (it == weight_map_.end()) {
    if (weight_map_.empty()) bad_input("{}: no tensor '{}'; it holds none", path_.string(), printable(name));
    bad_input("{}: no tensor '{}'; it holds {}", path_.string(), printable(name), nearest_names(weight_map_, name));
  }
  const auto& file = shard(it->second);
  const TensorInfo* t = file.find(name);
  if (!t) bad_input("{}: the index places '{}' in this shard but it is not there", file.path().string(), name);
  return *t;
}

Tensor TensorStore::load_f32(const std::string& name, const std::vector<int64_t>& expected_shape) const {
  const TensorInfo& t = info(name);
  if (!expected_shape.empty() && t.shape != expected_shape)
    bad_input("{}: tensor '{}' has shape {}, expected {}", path_.string(), name, shape_string(t.shape),
              shape_string(expected_shape));
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F64)
    bad_input("{}: tensor '{}' has dtype {}, expected a floating type", path_.string(), name, dtype_name(t.dtype));
  Tensor out = naming_out_of_memory([&] { return load_description(t); }, [&] { return Tensor(t.shape); });
  convert_to_f32(t.dtype, t.data, out.ptr(), out.numel());
  return out;
}

TensorI32 TensorStore::load_i32(const std::string& name) const {
  const TensorInfo& t = info(name);
  TensorI32 out = naming_out_of_memory([&] { return load_description(t); }, [&] { return TensorI32(t.shape); });
  if (t.dtype == DType::I32) {
    if (t.nbytes > 0) std::memcpy(out.ptr(), t.data, t.nbytes);  // an empty tensor has no data pointer
  } else if (t.dtype == DType::I64) {
    for (size_t i = 0; i < out.numel(); ++i) {
      int64_t v;
      std::memcpy(&v, t.data + i * 8, 8);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        bad_input("{}: tensor '{}' element {} ({}) does not fit in int32", path_.string(), name, i, v);
      out.data[i] = static_cast<int32_t>(v);
    }
  } else {
    bad_input("{}: tensor '{}' has dtype {}, expected I32 or I64", path_.string(), name, dtype_name(t.dtype));
  }
  return out;
}

// ---- writing ----

void write_safetensors(const fs::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // tensors in the given order
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    const uint64_t n = BasicTensor<float>::count(t.shape) * dtype_size(t.dtype);
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + n}}};
    sizes.push_back(n);
    offset += n;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // the data section starts 8-byte aligned

  AtomicFile out(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));
  out.write(len, 8);
  out.write(h.data(), h.size());
  for (size_t i = 0; i < tensors.size(); ++i) out.write(tensors[i].data, sizes[i]);
  out.commit();
}

}  // namespace sparsa
