// tokenizer_pipeline.h — the stages of a Hugging Face tokenizer.json around the model:
// normalizer, pre-tokenizer and decoder, each built from its JSON description.
//
// Every stage reproduces the `tokenizers` library (v0.15+) for the inputs it accepts; a stage
// type or option it cannot reproduce exactly is refused at load time with Error(kBadInput)
// naming the file and the field, never approximated.
//
// Input texts are valid UTF-8 (the caller checks once per text).
// Thread safety: stages are immutable after construction; all methods are const.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer_json.h"
#include "io/tokenizer_regex.h"

namespace sparsa {

// A stretch of text on its way to the model.
struct Piece {
  std::string text;
  bool at_origin = false;  // begins at byte 0 of the text given to encode()
};

// The pattern of a Replace / Split stage: {"String": literal} or {"Regex": oniguruma pattern}.
Regex make_pattern(const JsonNode& pattern);

// ---- normalizers -------------------------------------------------------------------------
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// Supported: Sequence, Prepend, Replace (String or Regex pattern), Strip, and NFC, NFD, NFKC,
// NFKD, Lowercase (each character's own full lowercase mapping, as char::to_lowercase) and
// StripAccents (drops marks: Mn, Mc, Me), as the library's NormalizedString methods do.
// Returns nullptr for a JSON null.
std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node);

// ---- pre-tokenizers ----------------------------------------------------------------------
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends the non-empty pieces `piece` splits into to `out`, in order.
  virtual void split(const Piece& piece, std::vector<Piece>& out) const = 0;
};

// Supported: ByteLevel, Split, Sequence, Metaspace, Digits, Whitespace, WhitespaceSplit.
// Returns nullptr for a JSON null.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node);

// What happens to the delimiters when a piece is split at a pattern's matches
// (the library's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `piece` at the matches of `pattern` (or at everything but them when `invert`), as
// NormalizedString::split does; empty results are dropped.
void split_at_matches(const Piece& piece, const Regex& pattern, SplitBehavior behavior, bool invert,
                      std::vector<Piece>& out);

// ---- decoders ----------------------------------------------------------------------------
class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (the library's decode_chain); the text is their
  // concatenation once every decoder has run.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Supported: ByteLevel, Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace.
// Returns nullptr for a JSON null.
std::unique_ptr<Decoder> make_decoder(const JsonNode& node);

// ---- shared by pre-tokenizers and decoders -----------------------------------------------
// GPT-2's reversible map from bytes to printable code points: the UTF-8 string of byte b's char.
const std::string& byte_level_char(unsigned char b);
// The byte whose char is code point `cp`, or -1 when `cp` is not one of the 256 chars.
int byte_level_byte(uint32_t cp);

// A JSON string holding exactly one character (Metaspace's replacement, Strip's content).
std::string single_char(const JsonNode& node);

// The Metaspace pre-tokenizer's prepend_scheme.
enum class PrependScheme { kAlways, kFirst, kNever };
PrependScheme parse_prepend_scheme(const JsonNode& metaspace);

}  // namespace sparsa
