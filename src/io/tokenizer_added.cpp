#include "io/tokenizer_added.h"

#include <algorithm>
#include <limits>

#include "io/utf8.h"

namespace sparsa {

namespace {

// Byte offset where the run of whitespace ending at `end` begins.
size_t whitespace_run_start(std::string_view text, size_t end) {
  size_t begin = end;
  while (begin > 0) {
    size_t start = begin - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t next = start;
    if (!utf8::is_whitespace(utf8::next_code_point(text, next))) break;
    begin = start;
  }
  return begin;
}

// Byte offset where the run of whitespace starting at `begin` ends.
size_t whitespace_run_end(std::string_view text, size_t begin) {
  size_t end = begin;
  while (end < text.size()) {
    size_t next = end;
    if (!utf8::is_whitespace(utf8::next_code_point(text, next))) break;
    end = next;
  }
  return end;
}

// The character ending at byte `end` (end > 0).
std::string_view char_before(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return text.substr(start, end - start);
}

std::string_view char_at(std::string_view text, size_t begin) {
  return text.substr(begin, utf8::sequence_length(static_cast<unsigned char>(text[begin])));
}

}  // namespace

void AddedVocabulary::PatternSet::add(std::string pattern, size_t token) {
  if (pattern.empty()) return;
  const size_t index = patterns.size();
  auto& bucket = by_first_byte[static_cast<unsigned char>(pattern[0])];
  patterns.push_back(std::move(pattern));
  token_index.push_back(token);
  bucket.push_back(index);
  std::stable_sort(bucket.begin(), bucket.end(),
                   [this](size_t a, size_t b) { return patterns[a].size() > patterns[b].size(); });
}

AddedVocabulary AddedVocabulary::from_json(const JsonNode& root, const Normalizer* normalizer) {
  AddedVocabulary v;
  v.word_char_ =
      Regex::compile(R"(\A[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])", root.where());
  if (!root.has("added_tokens")) return v;
  const JsonNode list = root["added_tokens"];
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonNode entry = list[i];
    AddedToken t;
    t.content = entry["content"].string();
    const int64_t id = entry["id"].integer();
    if (id < 0 || id >= std::numeric_limits<int32_t>::max()) {
      entry["id"].fail("id {} outside [0, 2^31)", id);
    }
    t.id = static_cast<int32_t>(id);
    t.special = entry.boolean_or("special", false);
    t.single_word = entry.boolean_or("single_word", false);
    t.lstrip = entry.boolean_or("lstrip", false);
    t.rstrip = entry.boolean_or("rstrip", false);
    t.normalized = entry.boolean_or("normalized", !t.special);
    v.index_of_id_.emplace(t.id, v.tokens_.size());
    v.tokens_.push_back(t);
  }
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    const AddedToken& t = v.tokens_[i];
    if (!t.normalized) {
      v.raw_.add(t.content, i);
      continue;
    }
    std::string pattern = t.content;
    if (normalizer != nullptr) normalizer->normalize(pattern);
    v.normalized_.add(std::move(pattern), i);
  }
  return v;
}

std::vector<AddedVocabulary::Found> AddedVocabulary::find(const PatternSet& set,
                                                          std::string_view text) {
  std::vector<Found> found;
  if (set.patterns.empty()) return found;
  size_t i = 0;
  while (i < text.size()) {
    const auto& bucket = set.by_first_byte[static_cast<unsigned char>(text[i])];
    bool matched = false;
    for (const size_t p : bucket) {
      const std::string& pattern = set.patterns[p];
      if (text.compare(i, pattern.size(), pattern) == 0) {
        found.push_back({i, i + pattern.size(), set.token_index[p]});
        i += pattern.size();
        matched = true;
        break;
      }
    }
    if (!matched) ++i;
  }
  return found;
}

void AddedVocabulary::split(const Piece& piece, bool normalized_pass,
                            std::vector<Chunk>& out) const {
  const std::string& text = piece.text;
  auto emit_text = [&](size_t begin, size_t end) {
    if (end > begin) {
      out.push_back({Piece{text.substr(begin, end - begin), piece.at_origin && begin == 0}, -1});
    }
  };
  auto is_word_char = [this](std::string_view ch) {
    std::vector<Match> m;
    word_char_.find_all(ch, m);
    return !m.empty();
  };

  size_t done = 0;  // end of the last emitted chunk
  for (Found f : find(normalized_pass ? normalized_ : raw_, text)) {
    const AddedToken& token = tokens_[f.token];
    if (token.single_word) {
      const bool word_before = f.begin > 0 && is_word_char(char_before(text, f.begin));
      const bool word_after = f.end < text.size() && is_word_char(char_at(text, f.end));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) f.begin = std::max(whitespace_run_start(text, f.begin), done);
    if (token.rstrip) f.end = whitespace_run_end(text, f.end);
    // A match inside whitespace that the previous token's rstrip already took is skipped.
    if (f.begin < done) continue;
    emit_text(done, f.begin);
    out.push_back(
        {Piece{text.substr(f.begin, f.end - f.begin), piece.at_origin && f.begin == 0}, token.id});
    done = f.end;
  }
  emit_text(done, text.size());
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  const auto it = index_of_id_.find(id);
  return it == index_of_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::by_content(std::string_view content) const {
  for (const AddedToken& t : tokens_) {
    if (t.content == content) return &t;
  }
  return nullptr;
}

}  // namespace sparsa
