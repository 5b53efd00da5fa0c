// The golden mask file format (see sparsa/prune.h write_mask_file).
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"

namespace sparsa {

void write_mask_file(const std::filesystem::path& file, const PruneResult& r, PruneMethod method,
                     const SparsityTarget& t) {
  std::vector<std::vector<uint8_t>> packed;
  packed.reserve(r.linears.size());  // no reallocation: tensors point into it
  std::vector<TensorToWrite> tensors;
  for (const auto& l : r.linears) {
    check_mask_target(l.mask, t, l.name);
    packed.push_back(pack_mask(l.mask));
    tensors.push_back({l.name + ".mask", DType::U8, {l.mask.rows, (l.mask.cols + 7) / 8}, packed.back().data()});
  }
  write_safetensors(file, tensors,
                    {{"format", "pt"}, {"method", std::string(prune_method_name(method))}, {"target", t.label()},
                     {"tool", "sparsa " SPARSA_VERSION}});
}

}  // namespace sparsa
