// sparsa/tokenizer.h — tokenizers: Hugging Face tokenizer.json (BPE) and llama2.c tokenizer.bin.
//
// HfTokenizer reproduces the `tokenizers` library for BPE models of both kinds in use:
//  - byte-level (GPT-2 / Llama-3 / Qwen): ByteLevel pre-tokenizer with the GPT-2 split regex,
//    bytes mapped to printable code points, merges by rank;
//  - SentencePiece-style (Llama-2 / Mistral / TinyLlama): normalizer Prepend("▁") + Replace(" ", "▁"),
//    no pre-tokenizer, merges by rank, byte fallback to <0xXX> tokens, unk fusing.
// Added/special tokens in the text are matched before the model runs.
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
  // Throws Error(kBadInput) naming the file when it is not a BPE tokenizer.json we understand.
  static std::unique_ptr<HfTokenizer> load(const std::filesystem::path& tokenizer_json);
  virtual ~HfTokenizer() = default;

  // `add_bos`: prepend the BOS id (as the post-processor's template would).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int32_t eos_id() const = 0;  // -1 when the tokenizer has none
};

// llama2.c's tokenizer.bin and its encoder (score-driven pair merging, exactly as run.c does).
class Llama2cTokenizer {
 public:
  // Throws Error(kBadInput) on a malformed file.
  static std::unique_ptr<Llama2cTokenizer> load(const std::filesystem::path& path, int32_t vocab_size);
  virtual ~Llama2cTokenizer() = default;
  // As run.c's encode(): optional BOS (1), dummy-prefix " ", UTF-8 byte fallback (+3), merges.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const = 0;
  // As run.c's decode(prev, token): strips the leading space after BOS, maps <0xXX> to bytes.
  virtual std::string decode_piece(int32_t prev_token, int32_t token) const = 0;
};

}  // namespace sparsa
