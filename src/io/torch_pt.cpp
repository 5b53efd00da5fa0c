// torch .pt files: tensor views (validation, materialisation), the value model, and loading an
// archive (the zip layer is torch_zip.cpp, the restricted unpickler pickle.cpp).
#include "sparsa/torch_pt.h"

#include <bit>
#include <cctype>
#include <cstring>
#include <limits>

#include <fmt/ranges.h>

#include "io/pickle.h"
#include "io/torch_zip.h"
#include "sparsa/error.h"

namespace sparsa {

static_assert(std::endian::native == std::endian::little, "storages are little-endian; sparsa assumes the same");

namespace {

constexpr uint64_t kMaxPickleBytes = uint64_t{1} << 30;
// A view with more elements than its storage (a stride-0 broadcast) is materialised only up to this.
constexpr int64_t kMaxBroadcastElements = int64_t{1} << 26;

int64_t storage_elements(const PtTensor& t) {
  return static_cast<int64_t>(t.storage->size() / dtype_size(t.dtype));
}

// Calls f(storage element index) for every element of `t` in row-major order.
template <typename F>
void for_each_element(const PtTensor& t, int64_t numel, F&& f) {
  const size_t rank = t.shape.size();
  std::vector<int64_t> idx(rank, 0);
  int64_t at = t.storage_offset;
  for (int64_t n = 0; n < numel; ++n) {
    f(at);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < t.shape[d]) {
        at += t.strides[d];
        break;
      }
      at -= (t.shape[d] - 1) * t.strides[d];
      idx[d] = 0;
    }
  }
}

bool is_row_major(const PtTensor& t) {
  int64_t expected = 1;
  for (size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] != 1 && t.strides[d] != expected) return false;
    expected *= t.shape[d];
  }
  return true;
}

template <typename T>
void cast_to_f32(const uint8_t* src, float* dst, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    T v;
    std::memcpy(&v, src + k * sizeof(T), sizeof(T));
    dst[k] = static_cast<float>(v);
  }
}

bool valid_storage_key(const std::string& key) {
  if (key.empty() || key.size() > 64) return false;
  for (const char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

PtValue load_archive(const detail::TorchZip& z) {
  if (const auto order = z.read("byteorder", 16)) {
    const std::string s(order->begin(), order->end());
    if (s == "big") bad_input("{}: big-endian torch archives are not supported", z.name());
    if (s != "little") bad_input("{}: unknown byteorder record {:?}", z.name(), s);
  }
  const auto pickle = z.read("data.pkl", kMaxPickleBytes);
  if (!pickle) bad_input("{}: data.pkl is missing", z.name());
  std::map<std::string, std::shared_ptr<const std::vector<uint8_t>>> storages;  // key -> bytes, shared by views
  const detail::StorageFetcher fetch = [&](const std::string& key, uint64_t declared_bytes) {
    if (!valid_storage_key(key)) bad_input("{}: data.pkl names storage {:?}, not a valid record name", z.name(), key);
    auto& slot = storages[key];
    if (!slot) {
      const std::string record = "data/" + key;
      const std::optional<uint64_t> size = z.record_size(record);
      if (!size) bad_input("{}: storage record {} is missing", z.name(), record);
      if (*size != declared_bytes)
        bad_input("{}: storage record {} holds {} bytes but data.pkl declares {} bytes for it", z.name(), record, *size,
                  declared_bytes);
      slot = std::make_shared<const std::vector<uint8_t>>(std::move(*z.read(record, declared_bytes)));
    }
    if (slot->size() != declared_bytes)
      bad_input("{}: storage data/{} is declared with {} bytes and with {} bytes", z.name(), key, slot->size(),
                declared_bytes);
    return slot;
  };
  return detail::unpickle_torch(*pickle, z.name(), fetch);
}

}  // namespace

// ---- tensors ----

PtTensor make_pt_tensor(DType dtype, std::shared_ptr<const std::vector<uint8_t>> storage, int64_t storage_numel,
                        int64_t storage_offset, std::vector<int64_t> shape, std::vector<int64_t> strides,
                        const std::string& where) {
  SPARSA_ASSERT(storage != nullptr);
  if (shape.size() != strides.size())
    bad_input("{}: size {} and stride {} differ in rank", where, shape_string(shape), shape_string(strides));
  if (storage_numel < 0 || static_cast<uint64_t>(storage_numel) > storage->size() / dtype_size(dtype))
    bad_input("{}: storage of {} bytes is shorter than its {} elements of {}", where, storage->size(), storage_numel,
              dtype_name(dtype));
  if (storage_offset < 0) bad_input("{}: negative storage offset {}", where, storage_offset);
  int64_t numel = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) bad_input("{}: negative size in {}", where, shape_string(shape));
    if (strides[d] < 0) bad_input("{}: negative stride in {}", where, shape_string(strides));
    if (__builtin_mul_overflow(numel, shape[d], &numel))
      bad_input("{}: size {} has more elements than int64 can count", where, shape_string(shape));
  }
  if (numel > 0) {
    int64_t last = storage_offset;  // the highest storage element the view reads
    for (size_t d = 0; d < shape.size(); ++d) {
      int64_t reach = 0;
      if (__builtin_mul_overflow(shape[d] - 1, strides[d], &reach) || __builtin_add_overflow(last, reach, &last))
        bad_input("{}: size {} with stride {} reaches past int64", where, shape_string(shape), shape_string(strides));
    }
    if (last >= storage_numel)
      bad_input("{}: size {} with stride {} at offset {} reads element {} of a storage of {} elements: the storage "
                "is shorter than the tensor", where, shape_string(shape), shape_string(strides), storage_offset, last,
                storage_numel);
  }
  return PtTensor{dtype, std::move(shape), std::move(strides), storage_offset, std::move(storage)};
}

int64_t PtTensor::numel() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;  // cannot overflow: make_pt_tensor checked it
  return n;
}

std::vector<uint8_t> PtTensor::contiguous_bytes() const {
  const int64_t n = numel();
  if (n > storage_elements(*this) && n > kMaxBroadcastElements)
    bad_input("a broadcast view of {} elements {} is too large to materialise", n, shape_string(shape));
  const size_t elem = dtype_size(dtype);
  std::vector<uint8_t> out(static_cast<size_t>(n) * elem);
  const uint8_t* src = storage->data();
  if (n > 0 && is_row_major(*this)) {
    std::memcpy(out.data(), src + static_cast<size_t>(storage_offset) * elem, out.size());
    return out;
  }
  uint8_t* dst = out.data();
  for_each_element(*this, n, [&](int64_t at) {
    std::memcpy(dst, src + static_cast<size_t>(at) * elem, elem);
    dst += elem;
  });
  return out;
}

Tensor PtTensor::to_f32() const {
  const std::vector<uint8_t> bytes = contiguous_bytes();
  Tensor t(shape);
  const size_t n = t.numel();
  if (n == 0) return t;  // the empty buffers' data() may be null, which memcpy may not see
  switch (dtype) {
    case DType::F64: case DType::F32: case DType::F16: case DType::BF16:
      convert_to_f32(dtype, bytes.data(), t.ptr(), n);
      break;
    case DType::I64: cast_to_f32<int64_t>(bytes.data(), t.ptr(), n); break;
    case DType::I32: cast_to_f32<int32_t>(bytes.data(), t.ptr(), n); break;
    case DType::I16: cast_to_f32<int16_t>(bytes.data(), t.ptr(), n); break;
    case DType::I8: cast_to_f32<int8_t>(bytes.data(), t.ptr(), n); break;
    case DType::U8: cast_to_f32<uint8_t>(bytes.data(), t.ptr(), n); break;
    case DType::BOOL:
      for (size_t k = 0; k < n; ++k) t.data[k] = bytes[k] != 0 ? 1.0f : 0.0f;
      break;
  }
  return t;
}

BasicTensor<uint8_t> PtTensor::to_u8() const {
  if (dtype != DType::BOOL && dtype != DType::U8)
    bad_input("a {} tensor cannot be read as bool / uint8", dtype_name(dtype));
  BasicTensor<uint8_t> t;
  t.shape = shape;
  t.data = contiguous_bytes();
  if (dtype == DType::BOOL)
    for (uint8_t& b : t.data) b = b != 0 ? 1 : 0;
  return t;
}

// ---- the value model ----

PtDict::PtDict() = default;
PtDict::PtDict(const PtDict&) = default;
PtDict::PtDict(PtDict&&) noexcept = default;
PtDict& PtDict::operator=(const PtDict&) = default;
PtDict& PtDict::operator=(PtDict&&) noexcept = default;
PtDict::~PtDict() = default;

void PtDict::set(PtKey key, PtValue value) {
  const auto [it, inserted] = index_.emplace(key, items_.size());
  if (inserted) items_.emplace_back(std::move(key), std::move(value));
  else items_[it->second].second = std::move(value);
}

const PtValue* PtDict::find(const PtKey& key) const {
  const auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

size_t PtDict::size() const { return items_.size(); }

std::string_view PtValue::type_name() const {
  static constexpr std::string_view kNames[] = {"None", "bool", "int",  "float", "str",
                                                "list", "tuple", "dict", "Tensor"};  // in variant order
  if (const auto* d = std::get_if<PtDict>(&v); d != nullptr && d->ordered) return "OrderedDict";
  return kNames[v.index()];
}

// ---- loading ----

PtValue load_torch_file(const std::filesystem::path& path) {
  return load_archive(*detail::TorchZip::open_file(path));
}

PtValue load_torch_bytes(const uint8_t* data, size_t size, const std::string& name) {
  return load_archive(*detail::TorchZip::open_bytes(data, size, name));
}

}  // namespace sparsa
