// "<out>.partial/": checkpoints of the finished blocks of a pruning run (see sparsa/prune_resume.h).
#include "sparsa/input_file.h"
#include "sparsa/prune_resume.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <system_error>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/safetensors.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// w as BF16 or F16 bits when every value survives the round trip exactly (Wanda and magnitude
// only zero weights of a half-precision model), else nullopt: the checkpoint stays F32. Restoring
// widens back to the very same fp32 values, so a resumed run is still bit-identical, at half the
// disk space and write time.
struct HalfBits {
  DType type;
  std::vector<uint16_t> bits;
};
std::optional<HalfBits> lossless_half(const Tensor& w) {
  const auto try_type = [&](DType type, uint16_t (*narrow)(float), float (*widen)(uint16_t)) -> std::optional<HalfBits> {
    HalfBits h{type, std::vector<uint16_t>(static_cast<size_t>(w.numel()))};
    for (size_t i = 0; i < h.bits.size(); ++i) {
      const float v = w.data[i];
      h.bits[i] = narrow(v);
      const float back = widen(h.bits[i]);
      if (std::memcmp(&v, &back, sizeof v) != 0) return std::nullopt;
    }
    return h;
  };
  if (auto h = try_type(DType::BF16, f32_to_bf16, bf16_to_f32)) return h;
  return try_type(DType::F16, f32_to_f16, f16_to_f32);
}

fs::path partial_dir(const fs::path& out) {
  fs::path p = out;
  p += ".partial";
  return p;
}

// The first key whose value differs between two run identities ("" when they are equal).
std::string first_difference(const json& saved, const json& now) {
  for (const auto& [key, value] : now.items())
    if (!saved.contains(key) || saved[key] != value) return key;
  for (const auto& [key, value] : saved.items())
    if (!now.contains(key)) return key;
  return "";
}

std::string seconds_key(const std::string& linear) { return "seconds." + linear; }

// The identity's key of each file of the model folder: "file config.json".
const std::string kFileKey = "file ";

// The saved tensor `name` of block file `file`, checked to be one of `dtypes` with `shape`;
// Error(kBadInput) naming the file and the tensor when it is missing or does not fit.
const TensorInfo& saved_tensor(const SafetensorsFile& saved, const std::string& name, std::initializer_list<DType> dtypes,
                               const std::vector<int64_t>& shape) {
  const TensorInfo* t = saved.find(name);
  if (!t) bad_input("{}: tensor '{}' is missing", saved.path().string(), name);
  if (std::find(dtypes.begin(), dtypes.end(), t->dtype) == dtypes.end())
    bad_input("{}: tensor '{}' has dtype {}, which a block checkpoint does not hold", saved.path().string(), name,
              dtype_name(t->dtype));
  if (t->shape != shape)
    bad_input("{}: tensor '{}' has shape {} but the model needs {}", saved.path().string(), name, shape_string(t->shape),
              shape_string(shape));
  return *t;
}

// Block `layer`'s linears as saved in `saved`: every "<linear>.weight" (finite) and "<linear>.mask"
// of the block present with the model's shapes, and nothing else.
std::vector<LinearPruneResult> restore_block(const SafetensorsFile& saved, Model& m, int64_t layer) {
  const std::vector<LinearRole>& roles = arch_info(m.config.arch).roles;
  for (const TensorInfo& t : saved.tensors()) {
    const bool known = std::any_of(roles.begin(), roles.end(), [&](LinearRole role) {
      const std::string linear = hf_linear_name(m.config.arch, layer, role);
      return t.name == linear + ".weight" || t.name == linear + ".mask";
    });
    if (!known) bad_input("{}: tensor '{}' does not belong to block {}", saved.path().string(), t.name, layer);
  }
  std::vector<LinearPruneResult> restored;
  for (const LinearRole role : roles) {
    LinearPruneResult lr;
    lr.layer = layer;
    lr.role = role;
    lr.name = hf_linear_name(m.config.arch, layer, role);
    Tensor& w = m.blocks[static_cast<size_t>(layer)].linear(role).weight;
    const int64_t rows = w.dim(0), cols = w.dim(1);
    const TensorInfo& wi = saved_tensor(saved, lr.name + ".weight", {DType::F32, DType::BF16, DType::F16}, w.shape);
    const TensorInfo& mi = saved_tensor(saved, lr.name + ".mask", {DType::U8}, {rows, (cols + 7) / 8});
    convert_to_f32(wi.dtype, wi.data, w.ptr(), static_cast<size_t>(w.numel()));
    if (const std::string where = non_finite_where(wi.name, w); !where.empty())
      bad_input("{}: tensor {}; a block checkpoint holds finite weights", saved.path().string(), where);
    lr.mask = unpack_mask(mi.data, rows, cols);
    const auto seconds = saved.metadata().find(seconds_key(lr.name));
    if (seconds != saved.metadata().end()) lr.seconds = std::strtod(seconds->second.c_str(), nullptr);
    restored.push_back(std::move(lr));
  }
  return restored;
}

// "<size> bytes, modified <seconds.nanoseconds since the epoch>" of a model file.
std::string file_stamp(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) bad_input("{}: cannot read the file's size and time", file.string());
  return fmt::format("{} bytes, modified {}.{:09d}", static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                     static_cast<long>(st.st_mtim.tv_nsec));
}

}  // namespace

json prune_resume_identity(const fs::path& model_dir, const PruneOptions& opt, const json& calibration) {
  json identity = {{"model", fs::absolute(model_dir).lexically_normal().string()},
                   {"method", prune_method_name(opt.method)},
                   {"target", opt.target.label()},
                   {"calibration", calibration},
                   {"blocksize", opt.blocksize},
                   {"percdamp", opt.percdamp}};
  std::vector<fs::path> files;  // sorted: the identity does not depend on the folder's listing order
  for (const fs::directory_entry& e : fs::directory_iterator(model_dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) identity[kFileKey + f.filename().string()] = file_stamp(f);
  return identity;
}

PruneResume::PruneResume(const fs::path& out, const json& identity, bool discard) : dir_(partial_dir(out)) {
  const fs::path run_file = dir_ / "run.json";
  std::error_code ec;
  if (path_exists(run_file)) {
    json saved;
    try {
      saved = json::parse(read_file_contents(run_file));
    } catch (const nlohmann::json::exception&) {
      saved = nullptr;  // unreadable: refused below unless discarded
    }
    if (!saved.is_object() && !discard) bad_input("{}: not a JSON object", run_file.string());
    const std::string differs = saved.is_object() ? first_difference(saved, identity) : "run.json";
    if (!differs.empty() && !discard) refuse_other_run(differs, saved, identity);
    if (!differs.empty() || discard) fs::remove_all(dir_, ec);
  } else {
    fs::remove_all(dir_, ec);  // a folder killed before run.json was written holds nothing of use
  }
  fs::create_directories(dir_, ec);
  if (ec) runtime_failure("{}: cannot create the progress folder: {}", dir_.string(), ec.message());
  if (!path_exists(run_file)) write_file_atomic(run_file, identity.dump(2) + "\n");
  while (path_exists(block_file(finished_))) ++finished_;
}

void PruneResume::refuse_other_run(const std::string& key, const json& saved, const json& now) const {
  const std::string was = saved.value(key, json()).dump(), is = now.value(key, json()).dump();
  if (key.starts_with(kFileKey))
    bad_input("{}: holds an interrupted run of the model as it was then, and its {} changed since (was {}, now {}); "
              "the interrupted run cannot be resumed", dir_.string(), key, was, is);
  bad_input("{}: holds an interrupted run with different arguments ({} was {}, now {}); the same arguments resume it",
            dir_.string(), key, was, is);
}

fs::path PruneResume::block_file(int64_t layer) const { return dir_ / fmt::format("block-{:04d}.safetensors", layer); }

std::vector<LinearPruneResult> PruneResume::restore(Model& m) const {
  if (finished_ > m.config.num_layers)
    bad_input("{}: holds {} blocks but the model has {}", dir_.string(), finished_, m.config.num_layers);
  std::vector<LinearPruneResult> restored;
  for (int64_t l = 0; l < finished_; ++l) {
    const auto saved = SafetensorsFile::open(block_file(l));
    for (LinearPruneResult& lr : restore_block(*saved, m, l)) restored.push_back(std::move(lr));
  }
  return restored;
}

void PruneResume::save_block(const Model& m, int64_t layer, std::span<const LinearPruneResult> linears) {
  std::vector<std::vector<uint8_t>> packed;
  std::vector<std::vector<uint16_t>> narrowed;
  packed.reserve(linears.size());
  narrowed.reserve(linears.size());
  std::vector<TensorToWrite> tensors;
  std::map<std::string, std::string> metadata{{"layer", std::to_string(layer)}};
  for (const LinearPruneResult& lr : linears) {
    const Tensor& w = m.blocks[static_cast<size_t>(layer)].linear(lr.role).weight;
    packed.push_back(pack_mask(lr.mask));
    if (auto half = lossless_half(w)) {
      narrowed.push_back(std::move(half->bits));
      tensors.push_back({lr.name + ".weight", half->type, w.shape, narrowed.back().data()});
    } else {
      tensors.push_back({lr.name + ".weight", DType::F32, w.shape, w.ptr()});
    }
    tensors.push_back({lr.name + ".mask", DType::U8, {lr.mask.rows, (lr.mask.cols + 7) / 8}, packed.back().data()});
    metadata[seconds_key(lr.name)] = fmt::format("{}", lr.seconds);
  }
  write_safetensors(block_file(layer), tensors, metadata);
  finished_ = layer + 1;
}

void PruneResume::remove() const {
  // Renamed first, so that a kill while deleting leaves no half-deleted progress folder behind
  // (a rerun would find it corrupt), only a folder under another name.
  fs::path doomed = dir_;
  doomed += fmt::format(".removing-{}", ::getpid());
  std::error_code ec;
  fs::rename(dir_, doomed, ec);
  fs::remove_all(ec ? dir_ : doomed, ec);
}

}  // namespace sparsa
