// bpe_model.h — the BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}).
//
// tokenize() reproduces the `tokenizers` library's BPE::tokenize for one pre-tokenized word:
// each character becomes its vocab id (or its <0xXX> byte tokens with byte_fallback, or the
// unk token, fused when fuse_unk), then adjacent pairs are merged lowest merge rank first,
// leftmost first among equal ranks, until no listed merge applies. O(n log n) in the word
// length (a heap of candidate merges over a linked list of symbols).
//
// Vocabulary ids must lie below twice the number of model.vocab entries plus 65536 (so memory
// stays proportional to the file); a larger id is an Error(kBadInput) naming it.
//
// Thread safety: immutable after from_json; tokenize is const and allocation-local.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "io/tokenizer_json.h"

namespace sparsa {

// Hash for unordered_map<std::string, ...> lookups by std::string_view without a copy.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeModel {
 public:
  // Reads root["model"]. Throws Error(kBadInput) naming the file and field when the model is
  // not BPE, the vocab or merges are malformed, a merge names a token missing from the vocab,
  // or an option this implementation cannot reproduce (dropout) is set.
  static BpeModel from_json(const JsonNode& model);

  // Appends the ids of `word` to `out`. A character with no id (and no byte tokens) becomes the
  // unk token, or is dropped when the model has no unk_token, as in the library. Throws
  // Error(kBadInput) when unk_token is needed but names a token missing from the vocab.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  // Cuts `word` into segments that no merge can join: between two characters that both have
  // their own vocab entry and never stand side by side inside any vocab token. Then
  // tokenize(word) is the concatenation of tokenize(segment) over the segments, which keeps
  // long words (a whole text, for models without a pre-tokenizer) fast and cacheable.
  // Appends views into `word`; appends `word` whole when the model does not allow cutting
  // (ignore_merges, subword prefix or suffix).
  void split_independent(std::string_view word, std::vector<std::string_view>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr when no token has this id.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocab.
  int32_t id_limit() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  struct MergeRule {
    int32_t rank;
    int32_t new_id;
  };
  struct Symbol {
    int32_t id;    // -1 once merged into its left neighbour
    int32_t prev;  // index of the previous live symbol, -1 at the start
    int32_t next;  // index of the next live symbol, -1 at the end
  };

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  const MergeRule* find_merge(int32_t left, int32_t right) const;
  // The word's characters as ids before merging (byte fallback and unk applied).
  std::vector<Symbol> initial_symbols(std::string_view word) const;
  void merge_all(std::vector<Symbol>& symbols) const;

  std::string source_;  // "file: model", for messages at encode time
  std::unordered_map<std::string, int32_t, StringViewHash, std::equal_to<>> vocab_;
  std::vector<std::string> tokens_;  // id -> token ("" for holes)
  std::vector<bool> has_token_;      // id -> whether any token has this id
  std::unordered_map<uint64_t, MergeRule> merges_;
  std::array<int32_t, 256> byte_ids_{};  // "<0xXX>" ids, -1 when absent
  std::optional<std::string> unk_token_;
  int32_t unk_id_ = -1;  // -1 when unk_token is unset or missing from the vocab
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  // (a << 32 | b) for code points a, b adjacent inside some vocab token.
  std::unordered_set<uint64_t> adjacent_in_vocab_;
};

}  // namespace sparsa
