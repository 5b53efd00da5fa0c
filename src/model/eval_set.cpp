// Evaluation windows from a tokens file or a text file (see sparsa/eval_set.h).
#include "sparsa/eval_set.h"

#include <algorithm>
#include <span>
#include <vector>

#include <fmt/ranges.h>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/safetensors.h"
#include "sparsa/tokenizer.h"

namespace sparsa {
namespace {

// The tensor `spec.key` of the tokens file: windows [n, row_length], or (kConcatenate only) a
// token stream [n_tokens].
TensorI32 load_token_tensor(const EvalSetSpec& spec) {
  const std::string file = spec.tokens_file.string();
  const auto store = TensorStore::open(spec.tokens_file);
  if (!store->contains(spec.key))
    bad_input("{}: no tensor '{}'; it holds: {}", file, spec.key, fmt::join(store->names(), ", "));
  TensorI32 t = store->load_i32(spec.key);
  const bool concatenate = spec.row_cut == RowCut::kConcatenate;
  if (t.rank() != 2 && !(concatenate && t.rank() == 1))
    bad_input("{}: tensor '{}' has shape {}, expected token windows [n_windows, seqlen]{}", file, spec.key,
              shape_string(t.shape), concatenate ? " or a token stream [n_tokens]" : "");
  return t;
}

// The text file's token ids (no BOS).
TensorI32 tokenize_text(const EvalSetSpec& spec) {
  if (spec.tokenizer.empty()) bad_input("{}: no tokenizer to tokenize the text with", spec.text_file.string());
  const std::string text = read_utf8_file(spec.text_file);
  std::vector<int32_t> ids = HfTokenizer::load(spec.tokenizer)->encode(text, /*add_bos=*/false);
  TensorI32 t({static_cast<int64_t>(ids.size())});
  t.data = std::move(ids);
  return t;
}

void check_token_ids(std::span<const int32_t> ids, const ModelConfig& config, const std::string& source) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= config.vocab_size)
      bad_input("{}: token {} has id {}, outside the model's vocabulary (size {})", source, i, ids[i], config.vocab_size);
}

// spec.seqlen, or its default: the row length of windows [n, row_length], else the context.
int64_t window_length(const EvalSetSpec& spec, const TensorI32& tokens, const ModelConfig& config,
                      const std::string& source) {
  const int64_t seqlen = spec.seqlen != 0 ? spec.seqlen : tokens.rank() == 2 ? tokens.dim(1) : config.max_position;
  if (seqlen < 2) bad_input("{}: windows of {} tokens are too short (at least 2)", source, seqlen);
  if (seqlen > config.max_position)
    bad_input("{}: windows of {} tokens are above the model's context length {}", source, seqlen, config.max_position);
  return seqlen;
}

// The first `seqlen` tokens of every row of `rows` [n, row_length].
TensorI32 row_prefixes(const TensorI32& rows, int64_t seqlen, const std::string& source) {
  const int64_t n = rows.dim(0), row_length = rows.dim(1);
  if (seqlen > row_length)
    bad_input("{}: windows of {} tokens are longer than its rows ({} tokens)", source, seqlen, row_length);
  TensorI32 w({n, seqlen});
  for (int64_t r = 0; r < n; ++r) std::copy_n(rows.ptr() + r * row_length, seqlen, w.ptr() + r * seqlen);
  return w;
}

}  // namespace

TensorI32 load_eval_windows(const EvalSetSpec& spec, const ModelConfig& config) {
  if (spec.tokens_file.empty() == spec.text_file.empty())
    bad_input("evaluation windows come from exactly one of a tokens file or a text file");
  if (spec.limit < 0) bad_input("the number of evaluation windows must be >= 0 (0 = all), got {}", spec.limit);
  const bool from_text = spec.tokens_file.empty();
  const std::string source =
      from_text ? spec.text_file.string() : fmt::format("{}: tensor '{}'", spec.tokens_file.string(), spec.key);
  const TokenizerCheck tokenizer =
      from_text ? TokenizerCheck::kUnchecked : check_token_file_tokenizer(spec.tokens_file, spec.tokenizer);
  const TensorI32 tokens = from_text ? tokenize_text(spec) : load_token_tensor(spec);
  check_token_ids(tokens.data, config, source);
  const int64_t seqlen = window_length(spec, tokens, config, source);
  TensorI32 windows = spec.row_cut == RowCut::kPrefix && tokens.rank() == 2 ? row_prefixes(tokens, seqlen, source)
                                                                             : make_windows(tokens.data, seqlen);
  if (windows.dim(0) == 0)
    bad_input("{}: {} tokens, fewer than one window of {}", source, tokens.data.size(), seqlen);
  if (spec.limit > 0 && spec.limit < windows.dim(0)) {
    windows.shape[0] = spec.limit;
    windows.data.resize(static_cast<size_t>(spec.limit * seqlen));
  }
  if (tokenizer == TokenizerCheck::kUnrecorded) warn_unrecorded_tokenizer(spec.tokens_file, spec.tokenizer);
  return windows;
}

}  // namespace sparsa
