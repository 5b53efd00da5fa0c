// tokenizer_added.h — the added tokens of a tokenizer.json (special tokens such as <s>).
//
// Before the model runs, the text is cut at added tokens as the `tokenizers` library's
// AddedVocabulary does: first the tokens with "normalized": false are found in the raw text;
// then each remaining piece is normalized and the "normalized": true tokens (whose patterns
// are normalized too) are found in it. Matching is leftmost-longest and non-overlapping;
// single_word, lstrip and rstrip behave as in the library.
//
// Thread safety: immutable after from_json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/tokenizer_json.h"
#include "io/tokenizer_pipeline.h"

namespace sparsa {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
};

// A piece of text after the added-token split: an added token (id >= 0) or text for the model.
struct Chunk {
  Piece piece;
  int32_t added_id = -1;
};

class AddedVocabulary {
 public:
  // Reads root["added_tokens"] (absent or null: none). `normalizer` (may be null) is applied
  // to the content of normalized tokens to form their patterns.
  static AddedVocabulary from_json(const JsonNode& root, const Normalizer* normalizer);

  // Cuts `piece` at the raw-text tokens (`normalized_pass` false) or at the normalized ones
  // (`normalized_pass` true), appending the non-empty chunks to `out` in order.
  void split(const Piece& piece, bool normalized_pass, std::vector<Chunk>& out) const;

  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Patterns of one pass, indexed by first byte, longest first within a byte.
  struct PatternSet {
    std::vector<std::string> patterns;
    std::vector<size_t> token_index;  // into tokens_
    std::vector<std::vector<size_t>> by_first_byte = std::vector<std::vector<size_t>>(256);
    void add(std::string pattern, size_t token);
  };
  struct Found {
    size_t begin;
    size_t end;
    size_t token;
  };
  // Leftmost-longest non-overlapping matches of `set` in `text`.
  static std::vector<Found> find(const PatternSet& set, std::string_view text);

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> index_of_id_;  // id -> index into tokens_
  PatternSet raw_;
  PatternSet normalized_;
  Regex word_char_;  // one "word" char for single_word: Alphabetic, M, Nd, Pc, Join_Control
};

}  // namespace sparsa
