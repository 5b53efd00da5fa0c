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

// ---- Which tokenizer made a token file ----
//
// Token files sparsa writes (`sparsa tokenize --out`) record the tokenizer that made their ids in
// the safetensors header's "__metadata__": key kTokenizerHashKey, value tokenizer_sha256() of
// the tokenizer file. A token file used with a model is checked against the model's tokenizer
// file (docs/token-files.md).

inline constexpr std::string_view kTokenizerHashKey = "tokenizer_sha256";

// The SHA-256 of the tokenizer file's bytes, exactly as stored (tokenizer.json, or a llama2.c
// tokenizer.bin), as 64 lowercase hex digits; in Python:
//   hashlib.sha256(open(path, "rb").read()).hexdigest()
// Throws Error(kBadInput) naming the file when it cannot be read.
std::string tokenizer_sha256(const std::filesystem::path& tokenizer_file);

// Writes token ids `ids` (I32, [n_tokens] or windows [n, seqlen]) as the tensor `key` of the
// safetensors file `path` (atomically), its metadata {kTokenizerHashKey: tokenizer_sha256(
// tokenizer_file)}. Error(kBadInput) when the tokenizer file cannot be read, Error(kRuntime) on
// I/O failure.
void write_token_file(const std::filesystem::path& path, const std::string& key, const std::vector<int64_t>& shape,
                      const std::vector<int32_t>& ids, const std::filesystem::path& tokenizer_file);

enum class TokenizerCheck : uint8_t {
  kMatch,       // the file records the model tokenizer's hash
  kUnrecorded,  // the file records no tokenizer
  kUnchecked,   // no model tokenizer to check against (model_tokenizer empty), or not a single file
};

// Checks that the token file `tokens_file` (a .safetensors file) was made with the tokenizer in
// `model_tokenizer` (the model's tokenizer file; empty = none known: nothing is checked).
//  - the hashes differ: Error(kBadInput) naming both files and both hashes;
//  - the file records none (older or foreign files): kUnrecorded; the reader uses the ids as they
//    are and, once it has read them without error, calls warn_unrecorded_tokenizer (so a bad file
//    still gets one line on stderr: the error).
TokenizerCheck check_token_file_tokenizer(const std::filesystem::path& tokens_file,
                                          const std::filesystem::path& model_tokenizer);
// One line "warning: <tokens_file> records no tokenizer (...); its ids are used as ids of
// <model_tokenizer>" on stderr, once per file and process. Thread-safe.
void warn_unrecorded_tokenizer(const std::filesystem::path& tokens_file, const std::filesystem::path& model_tokenizer);

}  // namespace sparsa
