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

#include <nlohmann/json.hpp>

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

// What a pruned checkpoint's config.json says of its sparsity, in the form llm-compressor writes
// (compressed-tensors' SparsityCompressionConfig, docs/checkpoints.md): config.json gets
//   "quantization_config": {"quant_method": "compressed-tensors",
//     "sparsity_config": {"format": "dense", "global_sparsity": g, "ignore": [...],
//                         "registry_requires_subclass": false, "sparsity_structure": s,
//                         "targets": ["Linear"]},
//     "transform_config": {}}
//  - format "dense": the weights are stored dense, pruned entries as zeros;
//  - global_sparsity: exact zeros over every parameter of the model (each tensor of
//    hf_tensors(), counted once; the tied lm_head is the embeddings) / their number, a fraction
//    in [0, 1] (llm-compressor's params_sparse_percent / 100), counted on the model's fp32 values;
//  - targets ["Linear"] with ignore = every nn.Linear of the HF model that was not pruned:
//    "lm_head" and any other 2-D weight outside `pruned_modules` that is not an embedding
//    (OPT's project_in / project_out);
//  - sparsity_structure: `structure`.
struct SparsityMetadata {
  std::string structure;                     // "2:4", "4:8" (N:M) or "unstructured"
  std::vector<std::string> pruned_modules;   // HF module names of the pruned linears ("model.layers.0.mlp.up_proj")
};

// The "quantization_config" object above for `m` (its parameters as they are now).
nlohmann::ordered_json sparsity_quantization_config(const Model& m, const SparsityMetadata& sparsity);

// Writes `pruned` into `out_dir` (created when absent) as an HF checkpoint.
//  - source_folder: the HF folder `pruned` was loaded from; it supplies the tensor names,
//    shapes and dtypes (TensorStore::open, sharded or not) and the side files.
//  - weight_dtype: nullopt keeps each tensor's source dtype; otherwise every floating tensor is
//    written in that dtype (F32 keeps SparseGPT's updated weights exactly) and the copied
//    config.json's "torch_dtype"/"dtype" say so (each key that is present; "torch_dtype" when
//    neither is). fp32 -> bf16/f16 rounds to nearest even.
//  - sparsity: when given, config.json also gets its "quantization_config" (SparsityMetadata),
//    replacing one the source has (a sparsa-pruned source: llm-compressor overwrites it too; a
//    quantized source does not load). Without it, a sparsity-only compressed-tensors
//    quantization_config of the source (an earlier prune's, now stale) is removed. When neither
//    changes anything and there is no weight_dtype, config.json is copied byte for byte; otherwise
//    it is rewritten with 2-space indentation, key order kept.
// Throws Error(kBadInput) when source_folder is not an HF folder or does not match the model
// (a model tensor missing from it, or a shape that differs), Error(kRuntime) on I/O failure.
CheckpointWriteInfo save_pruned_checkpoint(const Model& pruned, const std::filesystem::path& source_folder,
                                           const std::filesystem::path& out_dir,
                                           std::optional<DType> weight_dtype = std::nullopt,
                                           const SparsityMetadata* sparsity = nullptr);

}  // namespace sparsa
