// Llama2cTokenizer: llama2.c's tokenizer.bin and its encoder/decoder, exactly as run.c does.
//
// File format (little-endian): int32 max_token_length, then for each of vocab_size tokens:
// float32 score, int32 byte length, the bytes. The vocab size is not in the file; it comes from
// the model's config.
#include <cstring>
#include <limits>
#include <queue>
#include <unordered_map>

#include "io/bpe_model.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/tokenizer.h"

namespace sparsa {

namespace {

constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;
constexpr int32_t kByteFallbackOffset = 3;  // id of byte b is b + 3 (<0x00> is id 3)
// run.c starts its search for the best merge from this score, so pairs scoring at or below it
// are never merged.
constexpr float kNoMergeScore = -1e10f;

class Llama2cBin final : public Llama2cTokenizer {
 public:
  Llama2cBin(std::string file, std::vector<std::string> pieces, std::vector<float> scores)
      : file_(std::move(file)), pieces_(std::move(pieces)), scores_(std::move(scores)) {
    for (size_t id = 0; id < pieces_.size(); ++id) {
      lookup_.emplace(pieces_[id], static_cast<int32_t>(id));  // duplicates: the lowest id wins
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const override {
    std::vector<int32_t> tokens;
    if (add_bos) tokens.push_back(kBos);
    if (!text.empty()) tokens.push_back(dummy_prefix_id());
    append_code_points(text, tokens);
    merge_by_score(tokens);
    if (add_eos) tokens.push_back(kEos);
    return tokens;
  }

  std::string decode_piece(int32_t prev_token, int32_t token) const override {
    if (token < 0 || static_cast<size_t>(token) >= pieces_.size()) {
      bad_input("{}: token id {} is outside the vocabulary (size {})", file_, token,
                pieces_.size());
    }
    std::string_view piece = pieces_[static_cast<size_t>(token)];
    if (prev_token == kBos && piece.starts_with(' ')) piece.remove_prefix(1);
    if (const int byte = raw_byte(piece); byte >= 0) {
      // run.c returns a C string: byte 0 is the empty string.
      return byte == 0 ? std::string() : std::string(1, static_cast<char>(byte));
    }
    return std::string(piece);
  }

 private:
  int32_t find(std::string_view piece) const {
    const auto it = lookup_.find(piece);
    return it == lookup_.end() ? -1 : it->second;
  }

  int32_t dummy_prefix_id() const {
    const int32_t id = find(" ");
    if (id < 0) bad_input("{}: the vocabulary has no \" \" piece for the dummy prefix", file_);
    return id;
  }

  // Each UTF-8 code point (at most 4 bytes) becomes its piece, or its bytes as ids byte + 3.
  void append_code_points(std::string_view text, std::vector<int32_t>& tokens) const {
    size_t i = 0;
    while (i < text.size()) {
      size_t end = i + 1;
      // Continuation bytes join the current code point, up to 4 bytes in all (as run.c).
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80 &&
             end - i < 4) {
        ++end;
      }
      const std::string_view cp = text.substr(i, end - i);
      if (const int32_t id = find(cp); id >= 0) {
        tokens.push_back(id);
      } else {
        for (const char c : cp) tokens.push_back(byte_fallback_id(static_cast<unsigned char>(c)));
      }
      i = end;
    }
  }

  int32_t byte_fallback_id(unsigned char b) const {
    const int32_t id = b + kByteFallbackOffset;
    if (static_cast<size_t>(id) >= pieces_.size()) {
      bad_input("{}: byte fallback id {} is outside the vocabulary (size {})", file_, id,
                pieces_.size());
    }
    return id;
  }

  // Repeatedly merges the adjacent pair whose concatenation is a piece with the highest score
  // (the leftmost among equal scores) until no pair is a piece: run.c's loop, with a heap.
  void merge_by_score(std::vector<int32_t>& tokens) const {
    struct Candidate {
      float score;
      int32_t pos;
      int32_t left_id;
      int32_t right_id;
      int32_t new_id;
      bool operator<(const Candidate& o) const {
        return score != o.score ? score < o.score : pos > o.pos;
      }
    };
    const auto n = static_cast<int32_t>(tokens.size());
    std::vector<int32_t> next(tokens.size());
    std::vector<int32_t> prev(tokens.size());
    for (int32_t i = 0; i < n; ++i) {
      next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
      prev[static_cast<size_t>(i)] = i - 1;
    }
    std::vector<bool> alive(tokens.size(), true);
    std::priority_queue<Candidate> heap;
    std::string joined;
    auto push_pair = [&](int32_t pos) {
      const int32_t right = next[static_cast<size_t>(pos)];
      if (right < 0) return;
      const int32_t left_id = tokens[static_cast<size_t>(pos)];
      const int32_t right_id = tokens[static_cast<size_t>(right)];
      joined = pieces_[static_cast<size_t>(left_id)];
      joined += pieces_[static_cast<size_t>(right_id)];
      const int32_t id = find(joined);
      if (id < 0) return;
      const float score = scores_[static_cast<size_t>(id)];
      if (score > kNoMergeScore) heap.push({score, pos, left_id, right_id, id});
    };
    for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

    while (!heap.empty()) {
      const Candidate top = heap.top();
      heap.pop();
      const auto pos = static_cast<size_t>(top.pos);
      if (!alive[pos] || tokens[pos] != top.left_id || next[pos] < 0) continue;
      const auto right = static_cast<size_t>(next[pos]);
      if (tokens[right] != top.right_id) continue;
      tokens[pos] = top.new_id;
      alive[right] = false;
      next[pos] = next[right];
      if (next[right] >= 0) prev[static_cast<size_t>(next[right])] = top.pos;
      if (prev[pos] >= 0) push_pair(prev[pos]);
      push_pair(top.pos);
    }
    std::vector<int32_t> merged;
    merged.reserve(tokens.size());
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = next[static_cast<size_t>(i)]) {
      merged.push_back(tokens[static_cast<size_t>(i)]);
    }
    tokens = std::move(merged);
  }

  // run.c's sscanf(piece, "<0x%02hhX>"): "<0x" and one or two hex digits give a byte.
  static int raw_byte(std::string_view piece) {
    if (!piece.starts_with("<0x")) return -1;
    int value = 0;
    size_t digits = 0;
    for (size_t i = 3; i < piece.size() && digits < 2; ++i, ++digits) {
      const char c = piece[i];
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) break;
      value = value * 16 + d;
    }
    return digits == 0 ? -1 : value;
  }

  std::string file_;
  std::vector<std::string> pieces_;  // id -> bytes
  std::vector<float> scores_;        // id -> merge score
  std::unordered_map<std::string, int32_t, StringViewHash, std::equal_to<>> lookup_;
};

// Reads little-endian values from the file's bytes, naming the file and place on failure.
class BinReader {
 public:
  BinReader(const std::string& file, const std::string& bytes) : file_(file), bytes_(bytes) {}
  template <typename T>
  T read(std::string_view what) {
    if (bytes_.size() - pos_ < sizeof(T)) {
      bad_input("{}: truncated llama2.c tokenizer: file ends inside {}", file_, what);
    }
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string read_bytes(int32_t length, std::string_view what) {
    if (length < 0) bad_input("{}: {} has a negative length {}", file_, what, length);
    if (bytes_.size() - pos_ < static_cast<size_t>(length)) {
      bad_input("{}: {} has length {}, past the end of the file", file_, what, length);
    }
    std::string out = bytes_.substr(pos_, static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return out;
  }

 private:
  const std::string& file_;
  const std::string& bytes_;
  size_t pos_ = 0;
};

}  // namespace

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::load(const std::filesystem::path& path,
                                                         int32_t vocab_size) {
  const std::string file = path.string();
  if (vocab_size <= 0) bad_input("{}: vocab size must be positive, got {}", file, vocab_size);
  const std::string bytes = InputFile(path).read_all();

  BinReader reader(file, bytes);
  const auto max_token_length = reader.read<int32_t>("the header (max_token_length)");
  if (max_token_length < 0) bad_input("{}: negative max_token_length {}", file, max_token_length);
  // Each token takes at least 8 bytes (score and length): check the count before allocating for it.
  constexpr uint64_t kMinTokenBytes = sizeof(float) + sizeof(int32_t);
  if (static_cast<uint64_t>(vocab_size) > (bytes.size() - sizeof(int32_t)) / kMinTokenBytes)
    bad_input("{}: truncated llama2.c tokenizer: the model's vocabulary of {} tokens needs at least {} bytes, the file has {}", file,
              vocab_size, sizeof(int32_t) + kMinTokenBytes * static_cast<uint64_t>(vocab_size), bytes.size());
  std::vector<std::string> pieces(static_cast<size_t>(vocab_size));
  std::vector<float> scores(static_cast<size_t>(vocab_size));
  for (int32_t id = 0; id < vocab_size; ++id) {
    const std::string what = fmt::format("token {} of {}", id, vocab_size);
    scores[static_cast<size_t>(id)] = reader.read<float>(what);
    const auto length = reader.read<int32_t>(what);
    pieces[static_cast<size_t>(id)] = reader.read_bytes(length, what);
  }
  return std::make_unique<Llama2cBin>(file, std::move(pieces), std::move(scores));
}

}  // namespace sparsa
