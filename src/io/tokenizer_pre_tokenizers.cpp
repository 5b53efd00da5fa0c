// Pre-tokenizers of tokenizer.json: ByteLevel, Split, Sequence, Metaspace, Digits, Whitespace,
// WhitespaceSplit, and the splitting primitive they share.
#include <utility>

#include "io/tokenizer_pipeline.h"
#include "io/utf8.h"

namespace sparsa {

namespace {

// GPT-2's pre-tokenization pattern, as the ByteLevel pre-tokenizer uses it.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// One code point with the Unicode White_Space property (Rust's char::is_whitespace).
constexpr std::string_view kWhitespaceChar =
    R"([\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}])";

struct Segment {
  size_t begin;
  size_t end;
  bool is_match;
};

// The matches of `pattern` in `text` and the gaps between them, covering all of it
// (the library's Pattern::find_matches).
std::vector<Segment> segments(const std::string& text, const Regex& pattern) {
  if (text.empty()) return {{0, 0, false}};
  std::vector<Match> matches;
  pattern.find_all(text, matches);
  std::vector<Segment> out;
  out.reserve(matches.size() * 2 + 1);
  size_t last = 0;
  for (const Match& m : matches) {
    if (m.begin != last) out.push_back({last, m.begin, false});
    out.push_back({m.begin, m.end, true});
    last = m.end;
  }
  if (last != text.size()) out.push_back({last, text.size(), false});
  return out;
}

// Applies a SplitBehavior to segments: returns (begin, end, remove) spans.
std::vector<Segment> apply_behavior(const std::vector<Segment>& segs, SplitBehavior behavior) {
  std::vector<Segment> out;  // is_match now means "remove"
  out.reserve(segs.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      return segs;
    case SplitBehavior::kIsolated:
      for (const Segment& s : segs) out.push_back({s.begin, s.end, false});
      return out;
    case SplitBehavior::kContiguous:
      for (const Segment& s : segs) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segs) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
  }
  return out;
}

SplitBehavior parse_behavior(const JsonNode& node) {
  const std::string name = node.string();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  node.fail("unknown split behavior \"{}\"", name);
}

// Splits at a pattern with a behavior: Split, Digits, Whitespace, WhitespaceSplit.
class PatternPreTokenizer final : public PreTokenizer {
 public:
  PatternPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void split(const Piece& piece, std::vector<Piece>& out) const override {
    split_at_matches(piece, pattern_, behavior_, invert_, out);
  }

 private:
  Regex pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Optional prefix space, GPT-2 split, then every byte mapped to its printable char.
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space),
        use_regex_(use_regex),
        pattern_(Regex::compile(kGpt2Pattern, where)) {}

  void split(const Piece& piece, std::vector<Piece>& out) const override {
    Piece prefixed = piece;
    if (add_prefix_space_ && (prefixed.text.empty() || prefixed.text[0] != ' ')) {
      prefixed.text = " " + prefixed.text;
    }
    const size_t first = out.size();
    if (use_regex_) {
      split_at_matches(prefixed, pattern_, SplitBehavior::kIsolated, false, out);
    } else if (!prefixed.text.empty()) {
      out.push_back(std::move(prefixed));
    }
    for (size_t i = first; i < out.size(); ++i) out[i].text = to_byte_chars(out[i].text);
  }

 private:
  static std::string to_byte_chars(const std::string& text) {
    std::string mapped;
    mapped.reserve(text.size() * 2);
    for (const char c : text) mapped += byte_level_char(static_cast<unsigned char>(c));
    return mapped;
  }

  bool add_prefix_space_;
  bool use_regex_;
  Regex pattern_;
};

// Spaces become the replacement char, which is prepended per the scheme and split before.
class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split,
                        const std::string& where)
      : replacement_(std::move(replacement)),
        scheme_(scheme),
        split_(split),
        pattern_(Regex::literal(replacement_, where)) {}

  void split(const Piece& piece, std::vector<Piece>& out) const override {
    Piece replaced{replace_spaces(piece.text), piece.at_origin};
    const bool starts_with_replacement = replaced.text.starts_with(replacement_);
    const bool prepend =
        !starts_with_replacement && (scheme_ == PrependScheme::kAlways ||
                                     (scheme_ == PrependScheme::kFirst && piece.at_origin));
    if (prepend) replaced.text = replacement_ + replaced.text;
    if (split_) {
      split_at_matches(replaced, pattern_, SplitBehavior::kMergedWithNext, false, out);
    } else if (!replaced.text.empty()) {
      out.push_back(std::move(replaced));
    }
  }

 private:
  std::string replace_spaces(const std::string& text) const {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
      if (c == ' ') {
        out += replacement_;
      } else {
        out += c;
      }
    }
    return out;
  }

  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  Regex pattern_;
};

// Runs each stage over all the pieces the previous stage produced.
class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> stages)
      : stages_(std::move(stages)) {}
  void split(const Piece& piece, std::vector<Piece>& out) const override {
    std::vector<Piece> current{piece};
    std::vector<Piece> next;
    for (const auto& stage : stages_) {
      next.clear();
      for (const Piece& p : current) stage->split(p, next);
      std::swap(current, next);
    }
    for (Piece& p : current) {
      if (!p.text.empty()) out.push_back(std::move(p));
    }
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

}  // namespace

void split_at_matches(const Piece& piece, const Regex& pattern, SplitBehavior behavior, bool invert,
                      std::vector<Piece>& out) {
  std::vector<Segment> segs = segments(piece.text, pattern);
  if (invert) {
    for (Segment& s : segs) s.is_match = !s.is_match;
  }
  for (const Segment& s : apply_behavior(segs, behavior)) {
    if (s.is_match || s.end == s.begin) continue;
    out.push_back({piece.text.substr(s.begin, s.end - s.begin), piece.at_origin && s.begin == 0});
  }
}

std::string single_char(const JsonNode& node) {
  const std::string s = node.string();
  size_t i = 0;
  if (s.empty() || utf8::first_invalid(s) != std::string::npos ||
      (utf8::next_code_point(s, i), i != s.size())) {
    node.fail("expected a single character, found \"{}\"", s);
  }
  return s;
}

PrependScheme parse_prepend_scheme(const JsonNode& metaspace) {
  if (metaspace.has("prepend_scheme")) {
    const JsonNode node = metaspace["prepend_scheme"];
    const std::string name = node.string();
    if (name == "always") return PrependScheme::kAlways;
    if (name == "first") return PrependScheme::kFirst;
    if (name == "never") return PrependScheme::kNever;
    node.fail("unknown prepend_scheme \"{}\" (expected always, first or never)", name);
  }
  return metaspace.boolean_or("add_prefix_space", true) ? PrependScheme::kAlways
                                                        : PrependScheme::kNever;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node) {
  if (node.is_null()) return nullptr;
  const std::string type = node["type"].string();
  if (type == "Sequence") {
    const JsonNode list = node["pretokenizers"];
    std::vector<std::unique_ptr<PreTokenizer>> stages;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto stage = make_pre_tokenizer(list[i])) stages.push_back(std::move(stage));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(stages));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(node.boolean_or("add_prefix_space", true),
                                                   node.boolean_or("use_regex", true),
                                                   node.where());
  }
  if (type == "Split") {
    return std::make_unique<PatternPreTokenizer>(make_pattern(node["pattern"]),
                                                 parse_behavior(node["behavior"]),
                                                 node.boolean_or("invert", false));
  }
  if (type == "Metaspace") {
    const std::string replacement =
        node.has("replacement") ? single_char(node["replacement"]) : std::string("\u2581");
    return std::make_unique<MetaspacePreTokenizer>(replacement, parse_prepend_scheme(node),
                                                   node.boolean_or("split", true), node.where());
  }
  if (type == "Digits") {
    const SplitBehavior behavior = node.boolean_or("individual_digits", false)
                                       ? SplitBehavior::kIsolated
                                       : SplitBehavior::kContiguous;
    return std::make_unique<PatternPreTokenizer>(Regex::compile(R"(\p{N})", node.where()), behavior,
                                                 false);
  }
  if (type == "Whitespace") {
    return std::make_unique<PatternPreTokenizer>(Regex::compile(R"(\w+|[^\w\s]+)", node.where()),
                                                 SplitBehavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<PatternPreTokenizer>(Regex::compile(kWhitespaceChar, node.where()),
                                                 SplitBehavior::kRemoved, false);
  }
  node["type"].fail(
      "unsupported pre-tokenizer \"{}\" (supported: ByteLevel, Split, Sequence, Metaspace, "
      "Digits, Whitespace, WhitespaceSplit)",
      type);
}

}  // namespace sparsa
