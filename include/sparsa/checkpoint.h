// sparsa/checkpoint.h — writing a (pruned) model back as a Hugging Face checkpoint folder.
//
// The written folder loads in `transformers` and in `sparsa eval`: it holds the source's
// config.json, generation config and tokenizer files, and one `model.safetensors` with every
// tensor of the source checkpoint under the source's tensor names and shapes. Tensors the
// Model holds (hf_tensors(): embeddings, learned positions, norms and their biases, linear
// weights and biases, projections, lm_head unless tied) come from the Model, under the names of
// its family's row of the architecture table; any other source tensor (e.g. a stored rotary
// inv_freq buffer) is copied unchanged.
// Only Hugging Face folders can be a source: a llama2.c .bin has no HF tensor names.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparsa/model.h"
#include "sparsa/tensor.h"

namespace sparsa {

// "keep" -> nullopt (each tensor keeps its source dtype); "float32", "bfloat16", "float16" ->
// F32, BF16, F16. Error(kBadInput) naming --dtype otherwise.
std::optional<DType> parse_weight_dtype(std::string_view s);

// The torch spelling used by config.json's "torch_dtype" / "dtype": "float32", "bfloat16",
// "float16", "float64". SPARSA_ASSERT for a non-floating dtype.
std::string_view torch_dtype_name(DType t);

struct CheckpointWriteInfo {
  int64_t tensors = 0;                   // tensors written to model.safetensors
  uint64_t bytes = 0;                    // their data bytes
  std::vector<std::string> copied_files; // side files copied from the source (config.json, tokenizer.json, ...)
};

// Writes `pruned` into `out_dir` (created when absent) as an HF checkpoint.
//  - source_folder: the HF folder `pruned` was loaded from; it supplies the tensor names,
//    shapes and dtypes (TensorStore::open, sharded or not) and the side files.
//  - weight_dtype: nullopt keeps each tensor's source dtype; otherwise every floating tensor is
//    written in that dtype (F32 keeps SparseGPT's updated weights exactly) and the copied
//    config.json's "torch_dtype"/"dtype" say so (each key that is present; "torch_dtype" when
//    neither is). fp32 -> bf16/f16 rounds to nearest even.
// Throws Error(kBadInput) when source_folder is not an HF folder or does not match the model
// (a model tensor missing from it, or a shape that differs), Error(kRuntime) on I/O failure.
CheckpointWriteInfo save_pruned_checkpoint(const Model& pruned, const std::filesystem::path& source_folder,
                                           const std::filesystem::path& out_dir,
                                           std::optional<DType> weight_dtype = std::nullopt);

}  // namespace sparsa
