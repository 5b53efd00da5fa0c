// HfTokenizer: a Hugging Face tokenizer.json with a BPE model, run as the `tokenizers` library
// runs it: added-token split -> normalizer -> pre-tokenizer -> BPE -> (BOS from the
// post-processor); and decoding through the decoder chain.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "io/bpe_model.h"
#include "io/tokenizer_added.h"
#include "io/tokenizer_json.h"
#include "io/tokenizer_pipeline.h"
#include "io/utf8.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"
#include "sparsa/tokenizer.h"

namespace sparsa {

namespace {

// Words longer than this are tokenized without caching (the library's cache uses the same cut).
constexpr size_t kMaxCachedWordBytes = 256;

// The special-token ids a post-processor puts around a single sequence.
struct SpecialIds {
  std::vector<int32_t> before;  // e.g. BOS
  std::vector<int32_t> after;   // e.g. EOS
};

std::vector<int32_t> template_token_ids(const JsonNode& special_tokens, const std::string& name,
                                        const JsonNode& where) {
  if (!special_tokens.has(name)) where.fail("special token \"{}\" is not in special_tokens", name);
  const JsonNode ids = special_tokens[name]["ids"];
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back(static_cast<int32_t>(ids[i].integer()));
  return out;
}

SpecialIds parse_post_processor(const JsonNode& node) {
  SpecialIds ids;
  if (node.is_null()) return ids;
  const std::string type = node["type"].string();
  if (type == "TemplateProcessing") {
    const JsonNode single = node["single"];
    const JsonNode special_tokens = node["special_tokens"];
    bool after_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const JsonNode item = single[i];
      if (item.has("Sequence")) {
        after_sequence = true;
      } else if (item.has("SpecialToken")) {
        const auto found =
            template_token_ids(special_tokens, item["SpecialToken"]["id"].string(), item);
        auto& dst = after_sequence ? ids.after : ids.before;
        dst.insert(dst.end(), found.begin(), found.end());
      } else {
        item.fail("expected {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}");
      }
    }
    return ids;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    ids.before.push_back(static_cast<int32_t>(node["cls"][1].integer()));
    ids.after.push_back(static_cast<int32_t>(node["sep"][1].integer()));
    return ids;
  }
  if (type == "ByteLevel") return ids;  // only adjusts offsets
  if (type == "Sequence") {
    const JsonNode list = node["processors"];
    for (size_t i = 0; i < list.size(); ++i) {
      const SpecialIds part = parse_post_processor(list[i]);
      ids.before.insert(ids.before.end(), part.before.begin(), part.before.end());
      ids.after.insert(ids.after.end(), part.after.begin(), part.after.end());
    }
    return ids;
  }
  node["type"].fail(
      "unsupported post-processor \"{}\" (supported: TemplateProcessing, ByteLevel, Sequence, "
      "RobertaProcessing, BertProcessing)",
      type);
}

nlohmann::json parse_json_file(const std::string& file) {
  const std::string text = InputFile(file).read_all(kMaxJsonFileBytes, "tokenizer file");
  try {
    return parse_json_bounded(text, file);  // sections (a Sequence of Sequences) are built recursively
  } catch (const nlohmann::json::parse_error& e) {
    bad_input("{}: malformed JSON: {}", file, e.what());
  }
}

using WordCache =
    std::unordered_map<std::string, std::vector<int32_t>, StringViewHash, std::equal_to<>>;

// The parts of a loaded tokenizer.json.
struct Pipeline {
  BpeModel model;
  std::unique_ptr<Normalizer> normalizer;  // null when the file has none
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  AddedVocabulary added;
  SpecialIds special;
};

Pipeline build_pipeline(const JsonNode& root) {
  BpeModel model = BpeModel::from_json(root["model"]);
  auto normalizer = make_normalizer(root.member_or_null("normalizer"));
  auto pre_tokenizer = make_pre_tokenizer(root.member_or_null("pre_tokenizer"));
  auto decoder = make_decoder(root.member_or_null("decoder"));
  AddedVocabulary added = AddedVocabulary::from_json(root, normalizer.get());
  SpecialIds special = parse_post_processor(root.member_or_null("post_processor"));
  return Pipeline{std::move(model),   std::move(normalizer), std::move(pre_tokenizer),
                  std::move(decoder), std::move(added),      std::move(special)};
}

class HfBpeTokenizer final : public HfTokenizer {
 public:
  explicit HfBpeTokenizer(Pipeline p)
      : model_(std::move(p.model)),
        normalizer_(std::move(p.normalizer)),
        pre_tokenizer_(std::move(p.pre_tokenizer)),
        decoder_(std::move(p.decoder)),
        added_(std::move(p.added)),
        special_(std::move(p.special)) {}

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
    if (const size_t bad = utf8::first_invalid(text); bad != std::string_view::npos) {
      bad_input("text is not valid UTF-8 (byte offset {})", bad);
    }
    std::vector<int32_t> ids;
    if (add_bos) ids = special_.before;
    WordCache cache;
    std::vector<Piece> words;
    for (const Chunk& chunk : split_added_tokens(text)) {
      if (chunk.added_id >= 0) {
        ids.push_back(chunk.added_id);
        continue;
      }
      words.clear();
      if (pre_tokenizer_) {
        pre_tokenizer_->split(chunk.piece, words);
      } else {
        words.push_back(chunk.piece);
      }
      for (const Piece& word : words) tokenize_word(word.text, cache, ids);
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const int32_t id : ids) {
      if (const AddedToken* added = added_.by_id(id)) {
        if (!(skip_special && added->special)) tokens.push_back(added->content);
      } else if (const std::string* token = model_.id_to_token(id)) {
        tokens.push_back(*token);
      }  // ids outside the vocabulary are skipped, as the library does
    }
    if (decoder_) decoder_->decode_chain(tokens);
    std::string text;
    for (const std::string& t : tokens) text += t;
    return text;
  }

  int32_t vocab_size() const override {
    int32_t n = model_.id_limit();
    for (const AddedToken& t : added_.tokens()) n = std::max(n, t.id + 1);
    return n;
  }

  int32_t bos_id() const override { return special_.before.empty() ? -1 : special_.before.front(); }

  int32_t eos_id() const override {
    if (!special_.after.empty()) return special_.after.back();
    for (const char* name : {"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"}) {
      if (const AddedToken* t = added_.by_content(name); t != nullptr && t->special) return t->id;
    }
    return -1;
  }

 private:
  // Raw-text added tokens first; then each other piece is normalized and cut at the
  // normalized added tokens.
  std::vector<Chunk> split_added_tokens(std::string_view text) const {
    std::vector<Chunk> raw;
    added_.split(Piece{std::string(text), true}, false, raw);
    std::vector<Chunk> chunks;
    chunks.reserve(raw.size());
    for (Chunk& chunk : raw) {
      if (chunk.added_id >= 0) {
        chunks.push_back(std::move(chunk));
        continue;
      }
      if (normalizer_) normalizer_->normalize(chunk.piece.text);
      added_.split(chunk.piece, true, chunks);
    }
    return chunks;
  }

  // Appends the ids of one pre-tokenized word, through the per-call cache. Long words (a whole
  // text when there is no pre-tokenizer) are cut into independent segments first.
  void tokenize_word(std::string_view word, WordCache& cache, std::vector<int32_t>& ids) const {
    if (word.size() <= kMaxCachedWordBytes) {
      tokenize_cached(word, cache, ids);
      return;
    }
    // Segments exist only when ignore_merges is off, so tokenizing a segment is plain merging.
    std::vector<std::string_view> segments;
    model_.split_independent(word, segments);
    for (const std::string_view segment : segments) {
      if (segment.size() <= kMaxCachedWordBytes) {
        tokenize_cached(segment, cache, ids);
      } else {
        model_.tokenize(segment, ids);
      }
    }
  }

  void tokenize_cached(std::string_view word, WordCache& cache, std::vector<int32_t>& ids) const {
    if (const auto it = cache.find(word); it != cache.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
    const size_t start = ids.size();
    model_.tokenize(word, ids);
    cache.emplace(
        word, std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.end()));
  }

  BpeModel model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  SpecialIds special_;
};

}  // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::filesystem::path& tokenizer_json) {
  std::filesystem::path path = tokenizer_json;
  if (is_folder(path)) path /= "tokenizer.json";
  const std::string file = path.string();
  const nlohmann::json json = parse_json_file(file);
  if (!json.is_object()) bad_input("{}: expected a JSON object at the top level", file);
  return std::make_unique<HfBpeTokenizer>(build_pipeline(JsonNode(file, json)));
}

}  // namespace sparsa
