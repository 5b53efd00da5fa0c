// Loading a mask set: a pruned folder or a mask .safetensors file, names parsed generically.
#include <algorithm>
#include <charconv>

#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/mask_compare.h"
#include "sparsa/safetensors.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMaskSuffix = ".mask";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The number at s[pos...] up to the next '.', or nullopt when it is not a plain integer.
std::optional<int64_t> integer_segment(std::string_view s, size_t pos, size_t& end) {
  end = s.find('.', pos);
  if (end == std::string_view::npos || end == pos) return std::nullopt;
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data() + pos, s.data() + end, v);
  if (ec != std::errc() || p != s.data() + end) return std::nullopt;
  return v;
}

// The column count of `name` from a weight in `store`, when it has one; checks the rows and the
// packed width against the mask's shape.
std::optional<int64_t> cols_from_weight(const TensorStore* store, const std::string& name, const TensorInfo& mask) {
  const std::string key = name + ".weight";
  if (store == nullptr || !store->contains(key)) return std::nullopt;
  const TensorInfo& w = store->info(key);
  if (w.shape.size() != 2 || w.shape[0] != mask.shape[0] || (w.shape[1] + 7) / 8 != mask.shape[1])
    bad_input("{}: tensor '{}' has shape {}, which does not fit mask '{}' of packed shape {}", store->path().string(),
              key, shape_string(w.shape), mask.name, shape_string(mask.shape));
  return w.shape[1];
}

}  // namespace

ModuleName parse_module_name(std::string_view name) {
  constexpr std::string_view kLayers = "layers.";
  for (size_t pos = name.rfind(kLayers); pos != std::string_view::npos;
       pos = pos == 0 ? std::string_view::npos : name.rfind(kLayers, pos - 1)) {
    if (pos != 0 && name[pos - 1] != '.') continue;
    size_t end = 0;
    if (const auto layer = integer_segment(name, pos + kLayers.size(), end))
      return {*layer, std::string(name.substr(end + 1))};
  }
  return {-1, std::string(name)};
}

BitMatrix bits_from_packed(const uint8_t* packed, int64_t rows, int64_t cols) {
  const int64_t bytes_per_row = (cols + 7) / 8;
  BitMatrix bits(rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = packed + r * bytes_per_row;
    uint64_t* dst = bits.row(r);
    for (int64_t byte = 0; byte < bytes_per_row; ++byte) {
      // packbits puts column 8*byte in bit 7; BitMatrix wants it in the lowest bit.
      uint64_t v = 0;
      for (int b = 0; b < 8; ++b) v |= static_cast<uint64_t>((src[byte] >> (7 - b)) & 1u) << b;
      const int64_t c0 = byte * 8;
      if (c0 + 8 > cols) v &= (uint64_t{1} << (cols - c0)) - 1;  // padding bits
      dst[c0 >> 6] |= v << (c0 & 63);
    }
  }
  return bits;
}

std::vector<uint8_t> packed_from_bits(const BitMatrix& bits) {
  const int64_t bytes_per_row = (bits.cols() + 7) / 8;
  std::vector<uint8_t> packed(static_cast<size_t>(bits.rows() * bytes_per_row), 0);
  for (int64_t r = 0; r < bits.rows(); ++r) {
    const uint64_t* src = bits.row(r);
    uint8_t* dst = packed.data() + r * bytes_per_row;
    for (int64_t byte = 0; byte < bytes_per_row; ++byte) {
      const int64_t c0 = byte * 8;
      const auto v = static_cast<uint8_t>(src[c0 >> 6] >> (c0 & 63));  // columns c0..c0+7, lowest bit first
      uint8_t out = 0;
      for (int b = 0; b < 8; ++b) out |= static_cast<uint8_t>(((v >> b) & 1u) << (7 - b));
      dst[byte] = out;
    }
  }
  return packed;
}

MaskSet::MaskSet() = default;
MaskSet::MaskSet(MaskSet&&) noexcept = default;
MaskSet& MaskSet::operator=(MaskSet&&) noexcept = default;
MaskSet::~MaskSet() = default;

MaskSet MaskSet::open(const fs::path& path, const fs::path& shapes_from) {
  if (!path_exists(path)) bad_input("{}: no such file or folder", path.string());
  MaskSet set;
  set.source_ = path.string();
  fs::path mask_file = path;
  if (is_folder(path)) {
    mask_file = path / "masks.safetensors";
    if (!path_exists(mask_file)) bad_input("{}: the folder has no masks.safetensors (is it a `sparsa prune` output?)", path.string());
    set.masks_ = TensorStore::open(mask_file);
    const bool has_checkpoint = path_exists(path / "model.safetensors") || path_exists(path / "model.safetensors.index.json");
    if (has_checkpoint) set.weights_ = TensorStore::open(path);
  } else {
    set.masks_ = TensorStore::open(mask_file);
  }
  const TensorStore* weights = set.weights_ ? set.weights_.get() : set.masks_.get();
  const std::unique_ptr<TensorStore> shapes = shapes_from.empty() ? nullptr : TensorStore::open(shapes_from);

  for (const std::string& key : set.masks_->names()) {
    if (!ends_with(key, kMaskSuffix)) continue;
    const TensorInfo& t = set.masks_->info(key);
    if (t.dtype != DType::U8 || t.shape.size() != 2)
      bad_input("{}: mask '{}' is {} {}, expected U8 [rows, ceil(cols / 8)]", mask_file.string(), key,
                dtype_name(t.dtype), shape_string(t.shape));
    MaskInfo m;
    m.name = key.substr(0, key.size() - kMaskSuffix.size());
    ModuleName parsed = parse_module_name(m.name);
    m.layer = parsed.layer;
    m.component = std::move(parsed.component);
    m.rows = t.shape[0];
    const std::optional<int64_t> own = cols_from_weight(weights, m.name, t);
    m.has_weight = own.has_value();
    const std::optional<int64_t> given = own ? own : cols_from_weight(shapes.get(), m.name, t);
    m.cols = given ? *given : 8 * t.shape[1];
    set.matrices_.push_back(std::move(m));
  }
  if (set.matrices_.empty()) bad_input("{}: holds no '<module>.mask' tensor", mask_file.string());
  std::sort(set.matrices_.begin(), set.matrices_.end(), [](const MaskInfo& x, const MaskInfo& y) {
    return x.layer != y.layer ? x.layer < y.layer : x.name < y.name;
  });
  return set;
}

const MaskInfo* MaskSet::find(const std::string& name) const {
  for (const MaskInfo& m : matrices_)
    if (m.name == name) return &m;
  return nullptr;
}

BitMatrix MaskSet::load_pruned(const MaskInfo& m) const {
  const TensorInfo& t = masks_->info(m.name + std::string(kMaskSuffix));
  return bits_from_packed(t.data, m.rows, m.cols);
}

std::optional<Tensor> MaskSet::load_weight(const MaskInfo& m) const {
  if (!m.has_weight) return std::nullopt;
  const TensorStore& store = weights_ ? *weights_ : *masks_;
  Tensor w = store.load_f32(m.name + ".weight", {m.rows, m.cols});
  const BitMatrix pruned = load_pruned(m);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      if (pruned.get(r, c)) w.data[static_cast<size_t>(r * m.cols + c)] = 0.0f;
  return w;
}

}  // namespace sparsa
