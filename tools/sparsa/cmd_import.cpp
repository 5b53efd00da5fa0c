// sparsa import: turns a folder of the Python study's per-matrix .pt files into one mask file in
// the golden mask format, so `sparsa compare` can set it beside sparsa's own masks.
//
// One output file holds one sparsity: a folder with several sparsities needs --sparsity to pick
// one (run the command once per sparsity for the others). A matrix may appear once per sparsity.
// Files that held pruned weights also give "<hf name>.weight" (F32 [out, in]), as the golden
// SparseGPT mask files do, so compare can take the cosine of the pruned weights and the exact
// column count; for masks alone compare reads the column count from --shapes-from.
#include <charconv>
#include <cstdio>
#include <map>
#include <set>

#include <fmt/ranges.h>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/error.h"
#include "sparsa/safetensors.h"
#include "sparsa/torch_pt.h"

namespace sparsa::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

struct ImportArgs {
  std::string dir, out, sparsity;
  bool json = false;
};

double parse_sparsity_flag(const std::string& s) {
  refuse_nm_for_fraction("--sparsity", s, "the Python study's file names hold unstructured sparsities such as 0.5");
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !(v >= 0.0 && v <= 1.0))
    bad_input("--sparsity {}: expected a number in [0, 1] as in the file names, e.g. 0.5", s);
  return v;
}

// The matrices of the one sparsity to write.
std::vector<ImportedMatrix> select_sparsity(std::vector<ImportedMatrix> all, const ImportArgs& a) {
  std::set<double> present;
  for (const auto& m : all) present.insert(m.sparsity_value);
  double wanted = *present.begin();
  if (!a.sparsity.empty()) {
    wanted = parse_sparsity_flag(a.sparsity);
  } else if (present.size() > 1) {
    bad_input("{}: files for {} sparsities ({}); pick one with --sparsity", a.dir, present.size(),
              fmt::join(present, ", "));
  }
  std::vector<ImportedMatrix> picked;
  for (auto& m : all)
    if (m.sparsity_value == wanted) picked.push_back(std::move(m));
  if (picked.empty())
    bad_input("--sparsity {}: no file of {} has that sparsity (present: {})", a.sparsity, a.dir,
              fmt::join(present, ", "));
  std::map<std::string, const ImportedMatrix*> by_name;
  for (const auto& m : picked) {
    const auto [it, inserted] = by_name.emplace(m.hf_name, &m);
    if (!inserted)
      bad_input("{} and {} are both {} at sparsity {}; a mask file holds one matrix per name",
                it->second->file.filename().string(), m.file.filename().string(), m.hf_name, m.sparsity);
  }
  return picked;
}

// "<hf name>.mask": U8 [rows, ceil(cols / 8)], 1 = pruned, packbits MSB first; and
// "<hf name>.weight": F32 [rows, cols] for the files that held weights.
void write_mask_file(const fs::path& file, const std::vector<ImportedMatrix>& ms, const ImportArgs& a) {
  std::vector<std::vector<uint8_t>> packed;
  packed.reserve(ms.size());
  std::vector<TensorToWrite> tensors;
  for (const auto& m : ms) {
    packed.push_back(pack_mask(m.mask));
    tensors.push_back({m.hf_name + ".mask", DType::U8, {m.mask.rows, (m.mask.cols + 7) / 8}, packed.back().data()});
    if (m.from_weights) tensors.push_back({m.hf_name + ".weight", DType::F32, m.weights.shape, m.weights.ptr()});
  }
  write_safetensors(file, tensors,
                    {{"format", "pt"},
                     {"source", "sparsa import"},
                     {"folder", a.dir},
                     {"sparsity", ms.front().sparsity},
                     {"tool", "sparsa " SPARSA_VERSION}});
}

void run_import(const ImportArgs& a) {
  if (!a.sparsity.empty()) parse_sparsity_flag(a.sparsity);  // before the folder is read
  const std::vector<ImportedMatrix> ms = select_sparsity(import_pt_folder(a.dir), a);
  write_mask_file(a.out, ms, a);
  if (!a.json) {
    std::printf("wrote %zu masks (sparsity %s) from %s to %s\n", ms.size(), ms.front().sparsity.c_str(), a.dir.c_str(),
                a.out.c_str());
    return;
  }
  json rows = json::array();
  for (const auto& m : ms) {
    rows.push_back({{"name", m.hf_name},
                    {"file", m.file.filename().string()},
                    {"layer", m.layer},
                    {"component", m.component},
                    {"i", m.i},
                    {"j", m.j},
                    {"content", m.from_weights ? "weights" : "mask"},
                    {"shape", {m.mask.rows, m.mask.cols}},
                    {"pruned_fraction", m.mask.pruned.empty() ? 0.0
                                                              : static_cast<double>(m.mask.count()) /
                                                                    static_cast<double>(m.mask.pruned.size())}});
  }
  print_json(json{{"out", a.out}, {"sparsity", ms.front().sparsity_value}, {"matrices", rows}});
}

}  // namespace

void register_import(CLI::App& app) {
  auto args = std::make_shared<ImportArgs>();
  auto* cmd = app.add_subcommand(
      "import", "Import the Python study's per-matrix torch.save files (layer{N}-{component}-{i}-{j}-{sparsity}.pt, "
                "each a bool / 0-1 uint8 mask [out, in] with 1 = pruned, or pruned float weights whose zeros are "
                "the pruned entries) into one masks.safetensors in the golden mask format. The .pt files are read "
                "by a restricted unpickler: nothing in them is executed.");
  cmd->add_option("dir", args->dir, "folder of layer*.pt files")->required();
  cmd->add_option("--out", args->out, "mask file to write (U8 [rows, ceil(cols/8)] per '<hf name>.mask', numpy "
                                      "packbits, 1 = pruned; plus F32 '<hf name>.weight' for files that held "
                                      "weights; written atomically)")->required();
  cmd->add_option("--sparsity", args->sparsity, "the sparsity to import when the folder holds several (as in the "
                                                "file names, e.g. 0.5); run once per sparsity for the others");
  cmd->add_flag("--json", args->json, "print {\"out\", \"sparsity\", \"matrices\": [{\"name\", \"file\", \"content\", "
                                      "\"shape\", \"pruned_fraction\", ...}]} on stdout");
  cmd->callback([args] { run_import(*args); });
}
SPARSA_COMMAND(70, register_import);

}  // namespace sparsa::cli
