// Loading a Hugging Face checkpoint folder (any family of the architecture table) into fp32 weights.
#include <filesystem>

#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"

namespace sparsa {
namespace {

// A learned position table must have max_position_embeddings + offset rows; a mismatch is the
// config's fault (or the checkpoint's), so say which numbers disagree.
void check_position_rows(const std::filesystem::path& folder, const TensorStore& store, const ModelConfig& c) {
  const ArchInfo& a = arch_info(c.arch);
  if (a.positions != PositionKind::kLearned) return;
  const std::string name = std::string(a.decoder) + "." + std::string(a.embed_positions) + ".weight";
  if (!store.contains(name)) return;  // load_f32 names the missing tensor
  const TensorInfo& info = store.info(name);
  if (info.shape.size() == 2 && info.shape[0] != c.max_position + a.position_offset)
    bad_input("{}: {} has {} rows but max_position_embeddings + {} = {}; config.json does not match the weights",
              folder.string(), name, info.shape[0], a.position_offset, c.max_position + a.position_offset);
}

// Sizes from config.json drive allocations (one block per layer), so they are checked against
// the tensors the checkpoint really holds first: the last layer's first linear must be there.
// Every tensor's shape is then checked against the file before it is read (load_f32).
void check_layers_exist(const std::filesystem::path& folder, const TensorStore& store, const ModelConfig& c) {
  if (c.num_layers < 1) return;  // the config's range check refuses it
  const std::string last = hf_linear_name(c.arch, c.num_layers - 1, arch_info(c.arch).roles.front()) + ".weight";
  if (!store.contains(last))
    bad_input("{}: config.json's num_hidden_layers is {} but the checkpoint has no {}", folder.string(),
              c.num_layers, last);
}

}  // namespace

Model load_hf_model(const std::filesystem::path& folder) {
  const auto config_path = folder / "config.json";
  if (!path_exists(config_path)) bad_input("{}: no config.json in the model folder", folder.string());
  Model m;
  m.source = folder;
  m.config = load_hf_config(config_path);
  const ModelConfig& c = m.config;
  const auto store = TensorStore::open(folder);
  check_position_rows(folder, *store, c);
  check_layers_exist(folder, *store, c);

  const bool has_lm_head = store->contains("lm_head.weight");
  if (!c.tie_word_embeddings && !has_lm_head)
    bad_input("{}: no lm_head.weight and tie_word_embeddings is false", folder.string());
  m.blocks.resize(static_cast<size_t>(c.num_layers));
  for (const HfTensor& t : hf_tensors(m)) *t.tensor = store->load_f32(t.name, t.shape);
  if (c.tie_word_embeddings) m.lm_head = m.embed;
  check_finite_weights(m);
  return m;
}

Model load_model(const std::filesystem::path& path) {
  if (is_folder(path)) return load_hf_model(path);
  if (!path_exists(path)) bad_input("{}: no such model file or folder", path.string());
  if (path.extension() == ".safetensors")
    bad_input("{}: pass the checkpoint folder (with config.json), not one of its .safetensors files", path.string());
  return load_llama2c_model(path);
}

}  // namespace sparsa
