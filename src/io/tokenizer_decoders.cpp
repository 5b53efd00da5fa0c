// Decoders of tokenizer.json: ByteLevel, Sequence, Replace, ByteFallback, Fuse, Strip,
// Metaspace; and GPT-2's byte <-> char table that ByteLevel encoding and decoding share.
#include <array>
#include <utility>

#include "io/tokenizer_pipeline.h"
#include "io/utf8.h"

namespace sparsa {

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes keep their code point, the other 68 bytes
// take U+0100 onwards in byte order.
struct ByteLevelTable {
  std::array<std::string, 256> char_of_byte;
  std::array<int, 324> byte_of_char;  // indexed by code point; -1 when unmapped

  ByteLevelTable() {
    byte_of_char.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : next_extra++;
      utf8::append(char_of_byte[b], cp);
      byte_of_char[cp] = static_cast<int>(b);
    }
  }
};

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;
  return table;
}

// Each token becomes its bytes (or stays as is when a char is outside the table); the
// concatenation is read as UTF-8 with invalid sequences replaced by U+FFFD.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) append_token_bytes(token, bytes);
    tokens.assign(1, utf8::lossy(bytes));
  }

 private:
  static void append_token_bytes(const std::string& token, std::string& bytes) {
    std::string decoded;
    size_t i = 0;
    while (i < token.size()) {
      const int b = byte_level_byte(utf8::next_code_point(token, i));
      if (b < 0) {
        bytes += token;
        return;
      }
      decoded.push_back(static_cast<char>(b));
    }
    bytes += decoded;
  }
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> stages)
      : stages_(std::move(stages)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& stage : stages_) stage->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> stages_;
};

// Replaces every match in each token with `content`.
class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) replace_all(pattern_, token, content_);
  }

 private:
  Regex pattern_;
  std::string content_;
};

// Runs of "<0xXX>" tokens become the text of their bytes, or one U+FFFD per byte when the
// run is not valid UTF-8.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    for (std::string& token : tokens) {
      const int byte = byte_token_value(token);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
        continue;
      }
      flush(run, out);
      out.push_back(std::move(token));
    }
    flush(run, out);
    tokens = std::move(out);
  }

 private:
  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // The byte of a "<0xXX>" token, or -1.
  static int byte_token_value(const std::string& token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
    const int hi = hex_digit(token[3]);
    const int lo = hex_digit(token[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
  }
  static void flush(std::string& run, std::vector<std::string>& out) {
    if (run.empty()) return;
    if (utf8::first_invalid(run) == std::string::npos) {
      out.push_back(run);
    } else {
      for (size_t i = 0; i < run.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    run.clear();
  }
};

// Joins all tokens into one.
class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing occurrences of `content` from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      size_t begin = 0;
      for (size_t k = 0; k < start_ && token.compare(begin, content_.size(), content_) == 0; ++k) {
        begin += content_.size();
      }
      size_t end = token.size();
      for (size_t k = 0; k < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++k) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_;
  size_t stop_;
};

// The replacement char becomes a space; in the first token it is dropped unless the
// prepend scheme is "never".
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, PrependScheme scheme)
      : replacement_(std::move(replacement)), scheme_(scheme) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const bool drop = i == 0 && scheme_ != PrependScheme::kNever;
      std::string out;
      const std::string& token = tokens[i];
      for (size_t pos = 0; pos < token.size();) {
        if (token.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!drop) out += ' ';
          pos += replacement_.size();
        } else {
          out += token[pos++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
};

size_t count(const JsonNode& node) {
  const int64_t n = node.integer();
  if (n < 0) node.fail("expected a count >= 0, found {}", n);
  return static_cast<size_t>(n);
}

}  // namespace

const std::string& byte_level_char(unsigned char b) { return byte_level_table().char_of_byte[b]; }

int byte_level_byte(uint32_t cp) {
  return cp < byte_level_table().byte_of_char.size() ? byte_level_table().byte_of_char[cp] : -1;
}

std::unique_ptr<Decoder> make_decoder(const JsonNode& node) {
  if (node.is_null()) return nullptr;
  const std::string type = node["type"].string();
  if (type == "Sequence") {
    const JsonNode list = node["decoders"];
    std::vector<std::unique_ptr<Decoder>> stages;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto stage = make_decoder(list[i])) stages.push_back(std::move(stage));
    }
    return std::make_unique<SequenceDecoder>(std::move(stages));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(make_pattern(node["pattern"]),
                                            node["content"].string());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(single_char(node["content"]), count(node["start"]),
                                          count(node["stop"]));
  }
  if (type == "Metaspace") {
    const std::string replacement =
        node.has("replacement") ? single_char(node["replacement"]) : std::string("\u2581");
    return std::make_unique<MetaspaceDecoder>(replacement, parse_prepend_scheme(node));
  }
  node["type"].fail(
      "unsupported decoder \"{}\" (supported: ByteLevel, Sequence, Replace, ByteFallback, Fuse, "
      "Strip, Metaspace)",
      type);
}

}  // namespace sparsa
