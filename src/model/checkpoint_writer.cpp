// Writing a model back as a Hugging Face checkpoint folder: the source's side files, and one
// model.safetensors with the source's tensor names, shapes and (by default) dtypes.
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <system_error>

#include <nlohmann/json.hpp>

#include "sparsa/atomic_file.h"
#include "sparsa/checkpoint.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"
#include "sparsa/safetensors.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;

// The files of an HF folder besides the weights that loaders look for; copied when present.
constexpr std::string_view kSideFiles[] = {
    "config.json",        "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "tokenizer.model",   "added_tokens.json", "vocab.json",
    "merges.txt",
};

bool is_floating(DType t) { return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Every tensor the Model holds, under its HF name (the architecture table's names). lm_head is
// left out when the embeddings are tied (the source then has no lm_head.weight, or one equal to
// the embeddings, handled by the caller as an unmodelled tensor).
std::map<std::string, const Tensor*> model_tensors_by_name(const Model& m) {
  std::map<std::string, const Tensor*> by_name;
  for (const HfConstTensor& t : hf_tensors(m)) by_name[t.name] = t.tensor;
  return by_name;
}

// n fp32 values -> `to` (a floating dtype) as little-endian bytes.
std::vector<uint8_t> encode_floats(const float* src, size_t n, DType to) {
  std::vector<uint8_t> out(n * dtype_size(to));
  switch (to) {
    case DType::F32: std::memcpy(out.data(), src, n * sizeof(float)); break;
    case DType::F64:
      for (size_t i = 0; i < n; ++i) {
        const double d = src[i];
        std::memcpy(out.data() + 8 * i, &d, 8);
      }
      break;
    case DType::BF16:
    case DType::F16: {  // a 7B checkpoint is 6.7e9 conversions: every core takes a share
      const auto count = static_cast<int64_t>(n);
#pragma omp parallel for schedule(static) if (count > (1 << 16))
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t h = to == DType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    }
    default: SPARSA_ASSERT(false && "encode_floats: not a floating dtype");
  }
  return out;
}

// The tensors of the new model.safetensors and the buffers their bytes live in.
struct TensorPlan {
  std::vector<TensorToWrite> tensors;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> buffers;  // converted bytes, owned here
  uint64_t bytes = 0;

  void add(const TensorInfo& src, DType dtype, const void* data) {
    tensors.push_back({src.name, dtype, src.shape, data});
    bytes += src.numel() * dtype_size(dtype);
  }
  void add_encoded(const TensorInfo& src, DType dtype, const float* values) {
    buffers.push_back(std::make_unique<std::vector<uint8_t>>(encode_floats(values, src.numel(), dtype)));
    add(src, dtype, buffers.back()->data());
  }
};

// Every source tensor, in the source's (sorted) name order: from the model when it holds it,
// else the source's own values.
TensorPlan plan_tensors(const Model& m, const TensorStore& source, std::optional<DType> weight_dtype) {
  const auto from_model = model_tensors_by_name(m);
  for (const auto& [name, t] : from_model)
    if (!source.contains(name))
      bad_input("{}: has no tensor '{}' that the model holds; is it the folder the model was loaded from?",
                source.path().string(), name);
  TensorPlan plan;
  for (const std::string& name : source.names()) {
    const TensorInfo& info = source.info(name);
    const DType dtype = weight_dtype && is_floating(info.dtype) ? *weight_dtype : info.dtype;
    const auto it = from_model.find(name);
    if (it != from_model.end()) {
      const Tensor& t = *it->second;
      if (t.shape != info.shape)
        bad_input("{}: tensor '{}' has shape {} but the model's is {}", source.path().string(), name,
                  shape_string(info.shape), shape_string(t.shape));
      if (!is_floating(info.dtype))
        bad_input("{}: tensor '{}' has dtype {}, expected a floating type", source.path().string(), name,
                  dtype_name(info.dtype));
      if (dtype == DType::F32)
        plan.add(info, dtype, t.ptr());
      else
        plan.add_encoded(info, dtype, t.ptr());
    } else if (dtype == info.dtype) {
      plan.add(info, dtype, info.data);
    } else {
      const Tensor values = source.load_f32(name);
      plan.add_encoded(info, dtype, values.ptr());
    }
  }
  return plan;
}

nlohmann::ordered_json read_config(const fs::path& config_json) {
  const std::string text = InputFile(config_json).read_all(kMaxJsonFileBytes, "JSON file");
  try {
    return parse_json_bounded<nlohmann::ordered_json>(text, config_json);
  } catch (const nlohmann::json::exception& e) {
    bad_input("{}: not valid JSON: {}", config_json.string(), e.what());
  }
}

// Sets "torch_dtype"/"dtype" to `dtype` (each key that is present; "torch_dtype" when neither is).
void set_config_dtype(nlohmann::ordered_json& config, DType dtype) {
  const std::string name(torch_dtype_name(dtype));
  bool updated = false;
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (config.contains(key)) {
      config[key] = name;
      updated = true;
    }
  }
  if (!updated) config["torch_dtype"] = name;
}

// A compressed-tensors "quantization_config" that describes sparsity only (no quantization groups),
// as sparsa and llm-compressor write for a sparse model stored dense: stale once the model is
// pruned again.
bool has_sparsity_only_config(const nlohmann::ordered_json& config) {
  const auto q = config.find("quantization_config");
  return q != config.end() && q->is_object() && q->value("quant_method", "") == "compressed-tensors" &&
         q->contains("sparsity_config") && !q->contains("config_groups");
}

// config.json with the dtype and the sparsity metadata set, or a stale sparsity-only
// quantization_config removed (key order and everything else kept); nullopt when nothing changes.
std::optional<std::string> edited_config(const fs::path& config_json, const Model& m, std::optional<DType> dtype,
                                         const SparsityMetadata* sparsity) {
  nlohmann::ordered_json config = read_config(config_json);
  if (!config.is_object()) bad_input("{}: not a JSON object", config_json.string());
  const bool stale = !sparsity && has_sparsity_only_config(config);
  if (!dtype && !sparsity && !stale) return std::nullopt;
  if (dtype) set_config_dtype(config, *dtype);
  if (sparsity) config["quantization_config"] = sparsity_quantization_config(m, *sparsity);
  if (stale) config.erase("quantization_config");
  return config.dump(2) + "\n";
}

// The module name of a "<module>.weight" tensor name; empty for other names.
std::string weight_module(const std::string& tensor_name) {
  constexpr std::string_view kSuffix = ".weight";
  if (tensor_name.size() <= kSuffix.size() || !tensor_name.ends_with(kSuffix)) return {};
  return tensor_name.substr(0, tensor_name.size() - kSuffix.size());
}

void copy_file_into(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) runtime_failure("{}: cannot copy to {}: {}", from.string(), to.string(), ec.message());
}

}  // namespace

std::optional<DType> parse_weight_dtype(std::string_view s) {
  if (s == "keep") return std::nullopt;
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    if (torch_dtype_name(t) == s) return t;
  bad_input("weight dtype '{}' is not one of keep, float32, bfloat16, float16", s);
}

std::string_view torch_dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "float64";
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: SPARSA_ASSERT(false && "torch_dtype_name: not a floating dtype");
  }
  return {};
}

nlohmann::ordered_json sparsity_quantization_config(const Model& m, const SparsityMetadata& sparsity) {
  const std::set<std::string> pruned(sparsity.pruned_modules.begin(), sparsity.pruned_modules.end());
  std::vector<std::string> ignore = {"lm_head"};
  int64_t zeros = 0, parameters = 0;
  for (const HfConstTensor& t : hf_tensors(m)) {
    for (const float v : t.tensor->data) zeros += v == 0.0f;
    parameters += static_cast<int64_t>(t.tensor->numel());
    const std::string module = weight_module(t.name);
    const bool embedding = t.tensor == &m.embed || t.tensor == &m.pos_embed;
    if (t.shape.size() == 2 && !embedding && !module.empty() && !pruned.contains(module) && module != "lm_head")
      ignore.push_back(module);
  }
  nlohmann::ordered_json config;
  config["quant_method"] = "compressed-tensors";
  config["sparsity_config"] = {
      {"format", "dense"},
      {"global_sparsity", parameters > 0 ? static_cast<double>(zeros) / static_cast<double>(parameters) : 0.0},
      {"ignore", ignore},
      {"registry_requires_subclass", false},
      {"sparsity_structure", sparsity.structure},
      {"targets", {"Linear"}}};
  config["transform_config"] = nlohmann::ordered_json::object();
  return config;
}

CheckpointWriteInfo save_pruned_checkpoint(const Model& pruned, const fs::path& source_folder, const fs::path& out_dir,
                                           std::optional<DType> weight_dtype, const SparsityMetadata* sparsity) {
  if (!is_folder(source_folder))
    bad_input("{}: not a Hugging Face checkpoint folder (llama2.c .bin models cannot be written back as one)",
              source_folder.string());
  if (!path_exists(source_folder / "config.json")) bad_input("{}: no config.json in the model folder", source_folder.string());
  if (weight_dtype && !is_floating(*weight_dtype))
    bad_input("weight dtype {} is not a floating type", dtype_name(*weight_dtype));

  const auto source = TensorStore::open(source_folder);
  const TensorPlan plan = plan_tensors(pruned, *source, weight_dtype);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) runtime_failure("{}: cannot create the folder: {}", out_dir.string(), ec.message());

  CheckpointWriteInfo info;
  for (std::string_view file : kSideFiles) {
    const fs::path from = source_folder / file;
    if (!path_exists(from)) continue;
    std::optional<std::string> edited;
    if (file == "config.json") edited = edited_config(from, pruned, weight_dtype, sparsity);
    if (edited)
      write_file_atomic(out_dir / file, *edited);
    else
      copy_file_into(from, out_dir / file);
    info.copied_files.emplace_back(file);
  }
  write_safetensors(out_dir / "model.safetensors", plan.tensors, {{"format", "pt"}});
  info.tensors = static_cast<int64_t>(plan.tensors.size());
  info.bytes = plan.bytes;
  return info;
}

}  // namespace sparsa
