// sparsa/eval_set.h — the evaluation windows of a perplexity measurement (`sparsa eval`,
// `sparsa acts`, `sparsa study`): token windows [n_windows, seqlen] read from a tensor of a tokens
// .safetensors file, or a text file tokenized without BOS and cut into consecutive,
// non-overlapping windows (no sliding, the tail shorter than a window dropped).
//
// One loader, one set of checks. Errors are Error(kBadInput) naming the file (and tensor) at
// fault: a token file made with another tokenizer than spec.tokenizer, a missing tensor (the message lists the ones the file holds), a tensor that is not
// token windows or a token stream, a token id outside the model's vocabulary, fewer tokens than
// one window, a window length below 2 or above the model's context, a negative limit. The
// messages speak of windows and files, not of command-line flags.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "sparsa/model.h"
#include "sparsa/tensor.h"

namespace sparsa {

// How the rows of a [n_rows, row_length] tensor become windows when seqlen differs from
// row_length (with seqlen == row_length, or 0, both give the rows unchanged).
enum class RowCut {
  kConcatenate,  // the rows' tokens in order, cut anew into windows of seqlen (seqlen may exceed
                 // row_length); a rank-1 tensor [n_tokens] is accepted as such a stream
  kPrefix,       // the first seqlen tokens of every row (seqlen <= row_length)
};

struct EvalSetSpec {
  std::filesystem::path tokens_file;  // I32/I64 safetensors ...
  std::string key = "eval";           // ... and the tensor in it: windows [n, row_length]
  std::filesystem::path text_file;    // or: a text file (exactly one of tokens_file / text_file)
  std::filesystem::path tokenizer;    // the model's tokenizer file: tokenizes text_file, and a
                                      // tokens_file is checked against it (check_token_file_tokenizer:
                                      // another tokenizer's file is refused); empty = no check
  int64_t seqlen = 0;    // window length; 0 = the tensor's row length, or for a rank-1 tensor
                         // and for text the model's context length
  int64_t limit = 0;     // keep only the first `limit` windows; 0 = all
  RowCut row_cut = RowCut::kConcatenate;
};

// The windows [n_windows, seqlen] of `spec` for a model of `config` (its vocabulary bounds the
// token ids, its context the window length). Error(kBadInput) as listed above.
TensorI32 load_eval_windows(const EvalSetSpec& spec, const ModelConfig& config);

}  // namespace sparsa
