// The sparse GEMV's tile configurations and the persisted tuning table (sparsa/sparse_gemv.h).
// Plain C++, compiled in every build: which configs a shape allows depends only on the kernel's
// limits (cuda/sparse_gemv.cuh), not on a GPU.
#include "cuda/sparse_gemv.cuh"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"
#include "sparsa/sparse_gemv.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace sparsa {
namespace {

namespace gemv = cuda::gemv;

constexpr int kTableVersion = 1;
constexpr int kBins = 20;      // 5 % bins
constexpr int kTargetBlocks = 264;  // two per multiprocessor of an H200 (132)

bool supported(const gemv::LaunchShape& ls, const GemvConfig& c) {
  if (ls.epl == 1 && (c.vecs != 1 || c.unroll != 4)) return false;  // the scalar kernel's one tile
  return gemv::chunk_rows(ls, c.split) <= gemv::kMaxChunk &&
         gemv::shared_bytes(ls, c.vecs, c.warps, c.split) <= gemv::kMaxSharedBytes &&
         gemv::register_words(ls, c.vecs, c.unroll) <= gemv::kMaxRegisterWords;
}

const char* type_tag(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    default: return "?";
  }
}

GemvConfig config_from_json(const nlohmann::json& j) {
  return {j.at("vecs").get<int>(), j.at("unroll").get<int>(), j.at("warps").get<int>(), j.at("split").get<int>(),
          j.value("pdl", false)};
}

}  // namespace

int gemv_sparsity_bin(float sparsity) {
  return std::clamp(static_cast<int>(std::lround(sparsity * kBins)), 0, kBins);
}

std::string GemvFusedKey::str() const {
  std::string outs;
  for (int64_t out : shape.outs) outs += (outs.empty() ? "" : "+") + std::to_string(out);
  return std::string(type_tag(shape.weight_type)) + " b" + std::to_string(shape.batch) + " in" +
         std::to_string(shape.in) + " out" + outs + " s" + std::to_string(sparsity_bin * 5);
}

std::string GemvKey::str() const { return GemvFusedKey{GemvFusedShape::single(shape), sparsity_bin}.str(); }

std::vector<GemvConfig> gemv_candidates(const GemvFusedShape& shape) {
  std::vector<GemvConfig> out;
  if (shape.outs.empty() || shape.outs.size() > kGemvMaxParts) return out;
  const auto ls = gemv::launch_shape(shape);
  for (int vecs : {1, 2})
    for (int unroll : {4, 8})
      for (int warps : {4, 8})
        for (int split = 1; split <= gemv::kMaxSplit; split *= 2)
          for (bool pdl : {false, true})
            if (GemvConfig c{vecs, unroll, warps, split, pdl}; supported(ls, c)) out.push_back(c);
  return out;
}

std::vector<GemvConfig> gemv_candidates(const GemvShape& shape) {
  return gemv_candidates(GemvFusedShape::single(shape));
}

GemvConfig default_gemv_config(const GemvFusedShape& shape) {
  const auto ls = gemv::launch_shape(shape);
  const int vecs = ls.epl > 1 && gemv::batch_tile(shape.batch) <= 2 ? 2 : 1;
  const int64_t tiles = gemv::total_tiles(ls, vecs);
  int split = 1;
  while (split < gemv::kMaxSplit && (tiles * split < kTargetBlocks || !supported(ls, {vecs, 4, 8, split})))
    split *= 2;
  return {vecs, 4, 8, split};
}

int64_t gemv_grid_blocks(const GemvShape& shape, const GemvConfig& config) {
  return gemv::total_tiles(gemv::launch_shape(shape), config.vecs) * config.split;
}

GemvConfig default_gemv_config(const GemvShape& shape) { return default_gemv_config(GemvFusedShape::single(shape)); }

std::optional<GemvConfig> GemvTuneTable::find(const GemvFusedKey& key) const {
  const auto it = entries_.find(key.str());
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

std::optional<GemvConfig> GemvTuneTable::find(const GemvKey& key) const {
  return find(GemvFusedKey{GemvFusedShape::single(key.shape), key.sparsity_bin});
}

GemvConfig GemvTuneTable::lookup(const GemvFusedKey& key) const {
  return find(key).value_or(default_gemv_config(key.shape));
}

GemvConfig GemvTuneTable::lookup(const GemvKey& key) const {
  return lookup(GemvFusedKey{GemvFusedShape::single(key.shape), key.sparsity_bin});
}

void GemvTuneTable::set(const GemvFusedKey& key, const GemvConfig& config) { entries_[key.str()] = config; }

void GemvTuneTable::set(const GemvKey& key, const GemvConfig& config) {
  set(GemvFusedKey{GemvFusedShape::single(key.shape), key.sparsity_bin}, config);
}

GemvTuneTable GemvTuneTable::load(const std::filesystem::path& path) {
  GemvTuneTable table;
  if (!path_exists(path)) return table;
  const std::string text = InputFile(path).read_all(kMaxJsonFileBytes, "JSON file");
  try {
    const auto doc = parse_json_bounded(text, path);
    if (doc.at("version").get<int>() != kTableVersion)
      bad_input("{}: tuning table version {} is not {}", path.string(), doc.at("version").dump(), kTableVersion);
    for (const auto& [key, value] : doc.at("entries").items()) table.entries_[key] = config_from_json(value);
  } catch (const nlohmann::json::exception& e) {
    bad_input("{}: not a sparse GEMV tuning table: {}", path.string(), e.what());
  }
  return table;
}

void GemvTuneTable::save(const std::filesystem::path& path) const {
  nlohmann::json entries = nlohmann::json::object();
  for (const auto& [key, c] : entries_)
    entries[key] = {{"vecs", c.vecs}, {"unroll", c.unroll}, {"warps", c.warps}, {"split", c.split}, {"pdl", c.pdl}};
  const nlohmann::json doc = {{"version", kTableVersion}, {"entries", entries}};
  write_file_atomic(path, doc.dump(1) + "\n");
}

}  // namespace sparsa
