// sparsa/calibration.h — the calibration set of a pruning run or a study: token windows
// [n_samples, seqlen] read from a tokens .safetensors file, or drawn from tokenized text files.
//
// Messages of the errors name the file (and tensor) at fault and speak of samples and windows,
// not of command-line flags.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/model.h"
#include "sparsa/tensor.h"

namespace sparsa {

struct CalibrationSpec {
  std::filesystem::path tokens_file;              // int32 safetensors [n_samples, seqlen] ...
  std::string key = "calib";                      // ... and the tensor in it
  std::vector<std::filesystem::path> text_files;  // or: text files, tokenized and concatenated
  std::filesystem::path tokenizer;                // the model's tokenizer file: tokenizes text_files, and a
                                                  // tokens_file is checked against it (sparsa/tokenizer.h
                                                  // check_token_file_tokenizer); empty = no check
  int64_t nsamples = 128;  // rows taken (the first ones) or windows drawn
  bool nsamples_given = false;  // an explicit count larger than the file's rows is an error
  int64_t seqlen = 0;      // 0: the file's row length / the model's context length
  uint64_t seed = 0;       // window offsets drawn from text
};

struct Calibration {
  TensorI32 tokens;                  // [nsamples, seqlen]
  nlohmann::ordered_json description;  // where the windows came from (for summaries and the store)
};

// Reads or draws the windows. Exactly one of spec.tokens_file / spec.text_files must be given.
// Throws Error(kBadInput) naming the file for a token file made with another tokenizer, a missing tensor, a bad shape, too few
// rows or tokens, or a token id outside the model's vocabulary.
Calibration load_calibration(const CalibrationSpec& spec, const ModelConfig& config);

// FNV-1a 64 over the little-endian bytes of the int32 ids: identifies a token set.
uint64_t fnv1a64(std::span<const int32_t> ids);

}  // namespace sparsa
