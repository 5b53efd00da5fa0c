// sparsa/synth.h — random-weight LLaMA-family models of real shapes, to measure scale without
// downloading a model.
//
// Weights: every linear and the embeddings ~ N(0, init_std^2) (LLaMA's initializer_range,
// 0.02, the scale of trained LLaMA-2 weights), norms 1. Deterministic: the same config and seed
// give the same weights for any thread count (each row has its own random stream).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "sparsa/model.h"
#include "sparsa/tensor.h"

namespace sparsa {

// Shapes of a preset: "7b" (LLaMA-2-7B: d 4096, d_ff 11008, 32 layers, 32 heads, vocab 32000,
// context 4096), "8b" (LLaMA-3-8B: 4096, 14336, 32 layers, 32 heads, 8 KV heads, vocab 128256,
// context 8192, RoPE theta 500000), "13b" (5120, 13824, 40, 40), "70b" (8192, 28672, 80 layers,
// 64 heads, 8 KV heads), "tiny" (d 256, d_ff 688, 2 layers, 4 heads, vocab 1024, context 512: for tests).
// Error(kBadInput) for another name.
ModelConfig synth_config(std::string_view preset);

// Fills a Model of config `c` (LLaMA family) with random weights as above. Error(kBadInput)
// when the config is inconsistent (sizes < 1, heads not dividing d_model, ...).
Model synth_model(const ModelConfig& c, uint64_t seed, float init_std = 0.02f);

// Writes `m` as a Hugging Face folder: config.json (model_type "llama") and model.safetensors
// with every tensor in `dtype` (BF16, F16 or F32), atomically per file. Error(kRuntime) on I/O.
void write_hf_model(const Model& m, const std::filesystem::path& dir, DType dtype);

// [n_samples, seqlen] uniformly random token ids in [0, vocab): random calibration data.
TensorI32 synth_tokens(int64_t n_samples, int64_t seqlen, int64_t vocab, uint64_t seed);

}  // namespace sparsa
