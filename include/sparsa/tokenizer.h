// sparsa/tokenizer.h — tokenizers: Hugging Face tokenizer.json (BPE) and llama2.c tokenizer.bin.
//
// HfTokenizer reproduces the `tokenizers` library for BPE models of both kinds in use:
//  - byte-level (GPT-2 / OPT / Llama-3 / Qwen2-3): ByteLevel pre-tokenizer with the GPT-2 split
//    regex or a Split on the model's own regex first, bytes mapped to printable code points,
//    merges by rank (Qwen: NFC normalizer first);
//  - SentencePiece-style (Llama-2 / Mistral / TinyLlama): normalizer Prepend("▁") +
//    Replace(" ", "▁"), no pre-tokenizer, merges by rank, byte fallback to <0xXX> tokens,
//    unk fusing.
// Added/special tokens in the text are matched before the model runs.
// Supported stages (anything else is refused at load, naming the file and field):
//   normalizer: Sequence, Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, Lowercase, StripAccents
//     (Unicode data from utf8proc; the library's Unicode version may differ for characters
//     assigned in recent versions);
//   pre_tokenizer: ByteLevel, Split, Sequence, Metaspace, Digits, Whitespace, WhitespaceSplit;
//   decoder: ByteLevel, Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace;
//   post_processor: TemplateProcessing, ByteLevel, Sequence, RobertaProcessing, BertProcessing.
// The file's truncation and padding settings are ignored (a whole text is always encoded).
// Thread safety: encode/decode are const and safe to call concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sparsa {

class HfTokenizer {
 public:
  // `tokenizer_json` is the file or a folder holding tokenizer.json. Throws Error(kBadInput)
  // naming the file (and field) when it is unreadable, not JSON, or not a BPE tokenizer.json
  // whose every stage we reproduce exactly.
  static std::unique_ptr<HfTokenizer> load(const std::filesystem::path& tokenizer_json);
  virtual ~HfTokenizer() = default;

  // `add_bos`: prepend the BOS id (the special tokens before $A in the post-processor's
  // "single" template; nothing when there are none). Only those: tokens the template puts
  // after $A (an EOS) are not added. Throws Error(kBadInput) when `text` is not valid UTF-8.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // Ids with no token are skipped, as the library does; `skip_special` leaves out special
  // added tokens (<s>, </s>, ...).
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
  // The special token after $A in the template, else a special added token named </s>,
  // <|endoftext|>, <|end_of_text|> or <eos>; -1 when the tokenizer has none.
  virtual int32_t eos_id() const = 0;
};

// llama2.c's tokenizer.bin and its encoder (score-driven pair merging, exactly as run.c does).
class Llama2cTokenizer {
 public:
  // Reads the first `vocab_size` tokens (the model's vocab size; trailing bytes are ignored, as
  // run.c does). Throws Error(kBadInput) naming the file on a truncated or malformed file.
  // When two tokens have the same bytes, lookups find the lower id.
  static std::unique_ptr<Llama2cTokenizer> load(const std::filesystem::path& path,
                                                int32_t vocab_size);
  virtual ~Llama2cTokenizer() = default;
  // As run.c's encode(): optional BOS (1), dummy-prefix " ", UTF-8 byte fallback (+3), merges.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const = 0;
  // As run.c's decode(prev, token): strips the leading space after BOS, maps <0xXX> to bytes
  // (byte 0 gives "", like run.c's C string). Throws Error(kBadInput) for an id outside the vocab.
  virtual std::string decode_piece(int32_t prev_token, int32_t token) const = 0;
};

}  // namespace sparsa
