// The sparse GEMV's tile configurations and the persisted tuning table (sparsa/sparse_gemv.h).
// Plain C++, compiled in every build: which configs a shape allows depends only on the kernel's
// limits (cuda/sparse_gemv_launch.h), not on a GPU.
#include "cuda/sparse_gemv_launch.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace sparsa {
namespace {

namespace gemv = cuda::gemv;

constexpr int kTableVersion = 1;
constexpr int kBins = 20;      // 5 % bins
constexpr int kTargetBlocks = 264;  // two per multiprocessor of an H200 (132)

bool supported(const GemvShape& s, const GemvConfig& c) {
  const auto ls = gemv::launch_shape(s);
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
  return {j.at("vecs").get<int>(), j.at("unroll").get<int>(), j.at("warps").get<int>(), j.at("split").get<int>()};
}

}  // namespace

int gemv_sparsity_bin(float sparsity) {
  return std::clamp(static_cast<int>(std::lround(sparsity * kBins)), 0, kBins);
}

std::string GemvKey::str() const {
  return std::string(type_tag(shape.weight_type)) + " b" + std::to_string(shape.batch) + " in" +
         std::to_string(shape.in) + " out" + std::to_string(shape.out) + " s" + std::to_string(sparsity_bin * 5);
}

std::vector<GemvConfig> gemv_candidates(const GemvShape& shape) {
  std::vector<GemvConfig> out;
  for (int vecs : {1, 2})
    for (int unroll : {4, 8})
      for (int warps : {4, 8})
        for (int split = 1; split <= gemv::kMaxSplit; split *= 2)
          if (GemvConfig c{vecs, unroll, warps, split}; supported(shape, c)) out.push_back(c);
  return out;
}

GemvConfig default_gemv_config(const GemvShape& shape) {
  const auto ls = gemv::launch_shape(shape);
  const int vecs = ls.epl > 1 && gemv::batch_tile(shape.batch) <= 2 ? 2 : 1;
  const int64_t tiles = (shape.out + gemv::tile_columns(ls, vecs) - 1) / gemv::tile_columns(ls, vecs);
  int split = 1;
  while (split < gemv::kMaxSplit && (tiles * split < kTargetBlocks || !supported(shape, {vecs, 4, 8, split})))
    split *= 2;
  return {vecs, 4, 8, split};
}

std::optional<GemvConfig> GemvTuneTable::find(const GemvKey& key) const {
  const auto it = entries_.find(key.str());
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

GemvConfig GemvTuneTable::lookup(const GemvKey& key) const {
  return find(key).value_or(default_gemv_config(key.shape));
}

void GemvTuneTable::set(const GemvKey& key, const GemvConfig& config) { entries_[key.str()] = config; }

GemvTuneTable GemvTuneTable::load(const std::filesystem::path& path) {
  GemvTuneTable table;
  std::ifstream in(path);
  if (!in) return table;
  try {
    const auto doc = nlohmann::json::parse(in);
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
    entries[key] = {{"vecs", c.vecs}, {"unroll", c.unroll}, {"warps", c.warps}, {"split", c.split}};
  const nlohmann::json doc = {{"version", kTableVersion}, {"entries", entries}};
  write_file_atomic(path, doc.dump(1) + "\n");
}

}  // namespace sparsa
