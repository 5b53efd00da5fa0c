// sparsa/torch_pt.h — reading torch.save (.pt) files safely, and importing the Python study's
// per-matrix result folders.
//
// Format read: the zip archive torch.save writes since PyTorch 1.6: "<archive>/data.pkl" (a
// pickle, protocol 2), "<archive>/data/<key>" (raw little-endian storages), "<archive>/byteorder"
// ("little"; absent means little; "big" is refused) and "<archive>/version". The legacy non-zip
// format is refused with an error that says how to re-save.
//
// Safety contract (the file may come from the internet): the pickle is interpreted by a
// restricted unpickler that knows only the opcodes torch.save emits for tensors, dicts,
// OrderedDicts, lists, tuples, str, int, float, bool and None, and only an allow-list of globals
// (torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter, the typed storage
// classes torch.{Float,Half,BFloat16,Bool,Byte,Char,Short,Int,Long,Double}Storage and
// collections.OrderedDict). No global is ever imported or executed; any other global, any other
// opcode, a malformed pickle, a storage shorter than its tensor (checked overflow-safe), a
// storage record whose size differs from what data.pkl declares for it, or a zip entry that
// claims more bytes than it can hold throws sparsa::Error(kBadInput) with one line naming the
// file and the problem. A storage is inflated only when a tensor is built on it, after its
// declared size has been checked against the zip directory. Stack, memo, object count and
// nesting depth are bounded, so memory stays proportional to the file and nothing recurses
// without limit.
//
// Ownership / threads: a PtValue owns its tree; tensors that are views of one storage share its
// bytes (shared_ptr, immutable). Loading is re-entrant; distinct calls may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "sparsa/prune.h"
#include "sparsa/tensor.h"

namespace sparsa {

// A tensor as torch stores it: a view (shape, strides, offset, all in elements) into a storage.
// Invariants (checked by make_pt_tensor): shape and strides have the same rank, every dimension,
// stride and the offset are >= 0, and every element the view addresses lies inside the storage.
struct PtTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int64_t storage_offset = 0;
  std::shared_ptr<const std::vector<uint8_t>> storage;  // little-endian elements of `dtype`

  int64_t numel() const;
  // The elements in row-major order as raw little-endian bytes of `dtype` (numel * dtype_size).
  std::vector<uint8_t> contiguous_bytes() const;
  // Row-major fp32 copy: floating dtypes converted, integers and bool cast (bool -> 0 / 1).
  Tensor to_f32() const;
  // Row-major copy of a BOOL (any non-zero byte -> 1) or U8 tensor; other dtypes: Error(kBadInput).
  BasicTensor<uint8_t> to_u8() const;
};

// Validates a view of `storage` (which holds `storage_numel` elements of `dtype`) and returns it.
// Error(kBadInput) naming `where` for negative sizes / strides / offset, an element count that
// overflows int64, or a view reaching past the storage ("storage is shorter than the tensor").
PtTensor make_pt_tensor(DType dtype, std::shared_ptr<const std::vector<uint8_t>> storage, int64_t storage_numel,
                        int64_t storage_offset, std::vector<int64_t> shape, std::vector<int64_t> strides,
                        const std::string& where);

struct PtValue;
using PtKey = std::variant<int64_t, std::string>;  // Python dict keys sparsa accepts

// A Python dict / OrderedDict: items in insertion order; setting an existing key replaces its value.
class PtDict {
 public:
  // Defined where PtValue is complete (torch_pt.cpp), so that instantiating these does not need
  // PtValue while PtValue itself is being defined (clang rejects that).
  PtDict();
  PtDict(const PtDict&);
  PtDict(PtDict&&) noexcept;
  PtDict& operator=(const PtDict&);
  PtDict& operator=(PtDict&&) noexcept;
  ~PtDict();

  bool ordered = false;  // collections.OrderedDict rather than dict
  void set(PtKey key, PtValue value);
  const PtValue* find(const PtKey& key) const;  // nullptr when absent
  const std::vector<std::pair<PtKey, PtValue>>& items() const { return items_; }
  size_t size() const;

 private:
  std::vector<std::pair<PtKey, PtValue>> items_;
  std::map<PtKey, size_t> index_;
};

struct PtList {
  std::vector<PtValue> items;
};
struct PtTuple {
  std::vector<PtValue> items;
};

// One unpickled Python object. std::monostate is None.
struct PtValue {
  std::variant<std::monostate, bool, int64_t, double, std::string, PtList, PtTuple, PtDict, PtTensor> v;

  bool is_none() const { return std::holds_alternative<std::monostate>(v); }
  template <typename T>
  bool is() const { return std::holds_alternative<T>(v); }
  template <typename T>
  const T& as() const { return std::get<T>(v); }
  // "None", "bool", "int", "float", "str", "list", "tuple", "dict", "OrderedDict", "Tensor".
  std::string_view type_name() const;
};

// Reads a torch.save file. Error(kBadInput) naming `path` for anything malformed or unsafe;
// Error(kRuntime) when the file cannot be read.
PtValue load_torch_file(const std::filesystem::path& path);

// The same for an archive in memory (the fuzzing entry point): never crashes on any input; it
// returns a value or throws sparsa::Error. `name` labels the bytes in messages.
PtValue load_torch_bytes(const uint8_t* data, size_t size, const std::string& name = "<memory>");

// ---- the Python study's per-matrix files ----

// One file "layer{N}-{component}-{i}-{j}-{sparsity}.pt" of a study folder, e.g.
// "layer0-mlp.down_proj-0-0-0.5.pt". Its content is either a mask tensor (bool, or uint8 holding
// only 0 / 1) [out, in] with 1 = pruned, or a floating tensor of pruned weights [out, in], whose
// zeros are the pruned positions (pruned = (w == 0); -0 counts as zero, NaN does not).
struct ImportedMatrix {
  std::filesystem::path file;
  int64_t layer = 0;
  std::string component;  // "mlp.down_proj", "self_attn.q_proj", ...
  int64_t i = 0, j = 0;   // the two indices of the file name, kept as they are
  std::string sparsity;   // as written in the file name ("0.5")
  double sparsity_value = 0;
  std::string hf_name;    // "model.layers.{layer}.{component}"
  bool from_weights = false;  // true: the file held weights and `mask` is (weights == 0)
  Mask mask;                  // [out, in], 1 = pruned
  Tensor weights;             // [out, in] fp32 when from_weights, else empty
};

// The parts of a study file name; Error(kBadInput) naming `file_name` when it does not parse.
ImportedMatrix parse_study_file_name(const std::string& file_name);

// Every "*.pt" file of `dir` (not recursive), sorted by (sparsity, layer, component, i, j).
// Error(kBadInput) when `dir` is not a folder, holds no .pt file, a name does not parse, or a
// file's content is neither a 2-D mask nor 2-D floating weights.
std::vector<ImportedMatrix> import_pt_folder(const std::filesystem::path& dir);

}  // namespace sparsa
