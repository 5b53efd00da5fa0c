// Normalizers of tokenizer.json: Sequence, Prepend, Replace, Strip, and the Unicode ones
// (NFC, NFD, NFKC, NFKD, Lowercase, StripAccents) over utf8proc.
#include <string_view>
#include <utility>

#include "io/tokenizer_pipeline.h"
#include "io/utf8.h"

namespace sparsa {

namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> stages)
      : stages_(std::move(stages)) {}
  void normalize(std::string& text) const override {
    for (const auto& stage : stages_) stage->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> stages_;
};

// Prepends `prefix` to non-empty text.
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// Replaces every match of the pattern with `content` (verbatim, no group references).
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { replace_all(pattern_, text, content_); }

 private:
  Regex pattern_;
  std::string content_;
};

// Removes leading and/or trailing Unicode whitespace.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0;
    size_t end = text.size();
    if (left_) {
      size_t i = 0;
      while (i < text.size()) {
        size_t next = i;
        if (!utf8::is_whitespace(utf8::next_code_point(text, next))) break;
        i = next;
      }
      begin = i;
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t next = start;
        if (!utf8::is_whitespace(utf8::next_code_point(text, next))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_;
  bool right_;
};

// One whole-text Unicode transformation of utf8.h (normalization form, lowercase, mark removal).
class UnicodeNormalizer final : public Normalizer {
 public:
  using Transform = std::string (*)(std::string_view);
  explicit UnicodeNormalizer(Transform transform) : transform_(transform) {}
  void normalize(std::string& text) const override { text = transform_(text); }

 private:
  Transform transform_;
};

template <utf8::NormalForm form>
std::string to_normal_form(std::string_view text) {
  return utf8::normalize(text, form);
}

// The transformation of a Unicode normalizer type, or nullptr for another type.
UnicodeNormalizer::Transform unicode_transform(const std::string& type) {
  if (type == "NFC") return &to_normal_form<utf8::NormalForm::kNfc>;
  if (type == "NFD") return &to_normal_form<utf8::NormalForm::kNfd>;
  if (type == "NFKC") return &to_normal_form<utf8::NormalForm::kNfkc>;
  if (type == "NFKD") return &to_normal_form<utf8::NormalForm::kNfkd>;
  if (type == "Lowercase") return &utf8::to_lowercase;
  if (type == "StripAccents") return &utf8::strip_marks;
  return nullptr;
}

}  // namespace

// The pattern of a Replace/Split stage: {"String": s} (literal) or {"Regex": r}.
Regex make_pattern(const JsonNode& pattern) {
  if (pattern.has("String")) return Regex::literal(pattern["String"].string(), pattern.where());
  if (pattern.has("Regex")) return Regex::compile(pattern["Regex"].string(), pattern.where());
  pattern.fail("expected {{\"String\": ...}} or {{\"Regex\": ...}}");
}

std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node) {
  if (node.is_null()) return nullptr;
  const std::string type = node["type"].string();
  if (type == "Sequence") {
    const JsonNode list = node["normalizers"];
    std::vector<std::unique_ptr<Normalizer>> stages;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto stage = make_normalizer(list[i])) stages.push_back(std::move(stage));
    }
    return std::make_unique<SequenceNormalizer>(std::move(stages));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(node["prepend"].string());
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(make_pattern(node["pattern"]),
                                               node["content"].string());
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(node.boolean_or("strip_left", true),
                                             node.boolean_or("strip_right", true));
  }
  if (const auto transform = unicode_transform(type)) {
    return std::make_unique<UnicodeNormalizer>(transform);
  }
  node["type"].fail(
      "unsupported normalizer \"{}\" (supported: Sequence, Prepend, Replace, Strip, NFC, NFD, "
      "NFKC, NFKD, Lowercase, StripAccents)",
      type);
}

}  // namespace sparsa
