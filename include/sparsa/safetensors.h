// sparsa/safetensors.h — reading and writing the safetensors format.
//
// A file is: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section. Reading memory-maps the file and validates the header completely
// before anything is used: header inside the file, known dtypes, dtype x shape == byte length,
// every tensor inside the data section, no two tensors overlapping. Any violation throws
// sparsa::Error(kBadInput) with one line naming the file and the tensor.
//
// Thread safety: a SafetensorsFile / TensorStore is immutable after open; concurrent reads are fine.
// Ownership: TensorInfo::data points into the mapping, valid while its owner lives.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sparsa/tensor.h"

namespace sparsa {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the file's mapping
  size_t nbytes = 0;
  size_t numel() const { return BasicTensor<float>::count(shape); }
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws Error(kBadInput) on any malformed content.
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, const TensorInfo*> by_name_;
  std::map<std::string, std::string> metadata_;
};

// The tensors of a checkpoint: one .safetensors file, or a folder holding either
// model.safetensors or model.safetensors.index.json + shards. Every shard is mapped and
// validated by open().
class TensorStore {
 public:
  // `path` is a folder (HF checkpoint) or a single .safetensors file.
  static std::unique_ptr<TensorStore> open(const std::filesystem::path& path);
  ~TensorStore();

  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  // Throws Error(kBadInput) naming the tensor and the checkpoint when absent.
  const TensorInfo& info(const std::string& name) const;
  // Converts F32/F16/BF16/F64 to fp32. Throws for other dtypes or a shape mismatch
  // when `expected_shape` is non-empty.
  Tensor load_f32(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const;
  // Reads an I32 (or I64 within int32 range) tensor.
  TensorI32 load_i32(const std::string& name) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  TensorStore() = default;
  const SafetensorsFile& shard(const std::string& file) const;
  std::string load_description(const TensorInfo& t) const;  // "loading tensor 'x' [2, 3] of <path>"
  std::filesystem::path path_;
  std::map<std::string, std::string> weight_map_;  // tensor name -> shard file name
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;  // file name -> mapping
};

// One tensor to write: the bytes are copied from `data` (numel(shape) * dtype_size(dtype)).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// Writes a safetensors file atomically (temp file in the same folder + rename), tensors in
// the given order, data 8-byte aligned. Throws Error(kRuntime) on I/O failure.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace sparsa
