#include "io/bpe_model.h"

#include <algorithm>
#include <limits>
#include <queue>

#include "io/utf8.h"

namespace sparsa {

namespace {

// Vocabulary ids may leave holes (filled by added tokens, or unused): up to twice the number of
// entries plus this many.
constexpr int64_t kMaxIdSlack = 1 << 16;

// "<0x0A>" — the byte-fallback token of byte b.
std::string byte_token(unsigned char b) { return fmt::format("<0x{:02X}>", b); }

// A merge "a b" given as ["a", "b"] or as the string "a b" (exactly one space).
std::pair<std::string, std::string> parse_merge(const JsonNode& merge) {
  if (merge.value().is_array()) {
    if (merge.size() != 2) merge.fail("expected a pair of tokens");
    return {merge[size_t{0}].string(), merge[size_t{1}].string()};
  }
  const std::string line = merge.string();
  const size_t space = line.find(' ');
  if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
    merge.fail("expected \"a b\" (two tokens separated by one space), found \"{}\"", line);
  }
  return {line.substr(0, space), line.substr(space + 1)};
}

}  // namespace

BpeModel BpeModel::from_json(const JsonNode& model) {
  BpeModel m;
  m.source_ = model.where();
  const std::string type = model.has("type") ? model["type"].string() : "BPE";
  if (type != "BPE") {
    model["type"].fail("unsupported model type \"{}\" (only BPE is supported)", type);
  }
  if (model.has("dropout")) {
    const JsonNode dropout = model["dropout"];
    if (!dropout.value().is_number() || dropout.value().get<double>() != 0.0) {
      dropout.fail("BPE dropout is random; only null or 0 is supported");
    }
  }
  m.fuse_unk_ = model.boolean_or("fuse_unk", false);
  m.byte_fallback_ = model.boolean_or("byte_fallback", false);
  m.ignore_merges_ = model.boolean_or("ignore_merges", false);
  m.continuing_subword_prefix_ = model.string_or("continuing_subword_prefix", "");
  m.end_of_word_suffix_ = model.string_or("end_of_word_suffix", "");

  const JsonNode vocab = model["vocab"];
  if (!vocab.value().is_object()) vocab.fail("expected an object mapping tokens to ids");
  if (vocab.value().empty()) vocab.fail("the vocabulary is empty");
  // The id -> token table is indexed by id: ids far beyond the number of entries would cost
  // memory out of proportion to the file, so they are refused before anything is allocated.
  const int64_t entries = static_cast<int64_t>(vocab.value().size());
  const int64_t id_limit = std::min<int64_t>(std::numeric_limits<int32_t>::max(), 2 * entries + kMaxIdSlack);
  for (const auto& entry : vocab.value().items()) {
    const std::string& token = entry.key();
    const int64_t id = vocab[token].integer();
    if (id < 0 || id >= id_limit) {
      vocab.fail("token \"{}\" has id {} outside [0, {}) (ids of a vocabulary of {} entries lie near 0..{})", token,
                 id, id_limit, entries, entries - 1);
    }
    m.vocab_.emplace(token, static_cast<int32_t>(id));
    if (static_cast<size_t>(id) >= m.tokens_.size()) {
      m.tokens_.resize(static_cast<size_t>(id) + 1);
      m.has_token_.resize(static_cast<size_t>(id) + 1, false);
    }
    m.tokens_[static_cast<size_t>(id)] = token;
    m.has_token_[static_cast<size_t>(id)] = true;
  }

  const JsonNode merges = model["merges"];
  const size_t prefix_len = m.continuing_subword_prefix_.size();
  for (size_t i = 0; i < merges.size(); ++i) {
    const JsonNode merge = merges[i];
    const auto [left, right] = parse_merge(merge);
    if (right.size() < prefix_len)
      merge.fail("token \"{}\" is shorter than the subword prefix", right);
    const std::string joined = left + right.substr(prefix_len);
    const auto left_id = m.token_to_id(left);
    const auto right_id = m.token_to_id(right);
    const auto new_id = m.token_to_id(joined);
    if (!left_id) merge.fail("token \"{}\" is not in model.vocab", left);
    if (!right_id) merge.fail("token \"{}\" is not in model.vocab", right);
    if (!new_id) merge.fail("merged token \"{}\" is not in model.vocab", joined);
    // A repeated pair keeps the rank of its last occurrence, as the library's HashMap does.
    m.merges_.insert_or_assign(pair_key(*left_id, *right_id),
                               MergeRule{static_cast<int32_t>(i), *new_id});
  }

  for (int b = 0; b < 256; ++b) {
    m.byte_ids_[b] = m.token_to_id(byte_token(static_cast<unsigned char>(b))).value_or(-1);
  }
  for (const auto& [token, id] : m.vocab_) {
    size_t i = 0;
    uint32_t previous = utf8::next_code_point(token, i);
    while (i < token.size()) {
      const uint32_t current = utf8::next_code_point(token, i);
      m.adjacent_in_vocab_.insert(
          pair_key(static_cast<int32_t>(previous), static_cast<int32_t>(current)));
      previous = current;
    }
  }
  if (model.has("unk_token")) {
    m.unk_token_ = model["unk_token"].string();
    m.unk_id_ = m.token_to_id(*m.unk_token_).value_or(-1);
  }
  return m;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !has_token_[static_cast<size_t>(id)]) {
    return nullptr;
  }
  return &tokens_[static_cast<size_t>(id)];
}

void BpeModel::split_independent(std::string_view word, std::vector<std::string_view>& out) const {
  if (ignore_merges_ || !continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty()) {
    out.push_back(word);
    return;
  }
  size_t segment_start = 0;
  size_t i = 0;
  bool previous_known = false;  // the previous character has its own vocab entry
  uint32_t previous = 0;
  while (i < word.size()) {
    const size_t begin = i;
    const uint32_t current = utf8::next_code_point(word, i);
    const bool known = token_to_id(word.substr(begin, i - begin)).has_value();
    if (begin > 0 && previous_known && known &&
        !adjacent_in_vocab_.contains(
            pair_key(static_cast<int32_t>(previous), static_cast<int32_t>(current)))) {
      out.push_back(word.substr(segment_start, begin - segment_start));
      segment_start = begin;
    }
    previous = current;
    previous_known = known;
  }
  out.push_back(word.substr(segment_start));
}

const BpeModel::MergeRule* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<BpeModel::Symbol> BpeModel::initial_symbols(std::string_view word) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, -1});
    if (index > 0) symbols[static_cast<size_t>(index) - 1].next = index;
  };
  bool unk_pending = false;  // an unk symbol not yet emitted (it may still absorb more chars)
  std::string key;
  size_t i = 0;
  while (i < word.size()) {
    const size_t begin = i;
    i += utf8::sequence_length(static_cast<unsigned char>(word[i]));
    const std::string_view ch = word.substr(begin, i - begin);
    std::optional<int32_t> id;
    if (continuing_subword_prefix_.empty() && end_of_word_suffix_.empty()) {
      id = token_to_id(ch);
    } else {
      key.clear();
      if (begin > 0) key += continuing_subword_prefix_;
      key += ch;
      if (i >= word.size()) key += end_of_word_suffix_;
      id = token_to_id(key);
    }
    if (id) {
      if (unk_pending) add(unk_id_);
      unk_pending = false;
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      // As the library does, byte tokens go out before a pending unk (which stays pending).
      const std::string_view bytes =
          (continuing_subword_prefix_.empty() && end_of_word_suffix_.empty())
              ? ch
              : std::string_view(key);
      bool all_bytes = true;
      for (const char c : bytes)
        all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes) {
        for (const char c : bytes) add(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (!unk_token_) continue;  // no unk token: the library drops the character
    if (unk_id_ < 0) {
      bad_input("{}: unk_token \"{}\" is not in model.vocab (needed for text \"{}\")", source_,
                *unk_token_, ch);
    }
    if (unk_pending && !fuse_unk_) add(unk_id_);
    unk_pending = true;
  }
  if (unk_pending) add(unk_id_);
  return symbols;
}

void BpeModel::merge_all(std::vector<Symbol>& symbols) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;  // index of the left symbol
    int32_t left_id;
    int32_t right_id;
    int32_t new_id;
    // Lowest rank first, then leftmost: a min-heap through std::priority_queue's max-heap.
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Candidate> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Candidate> heap(std::less<Candidate>{}, std::move(storage));
  auto push_pair = [&](int32_t pos) {
    const Symbol& left = symbols[static_cast<size_t>(pos)];
    if (left.next < 0) return;
    const int32_t right_id = symbols[static_cast<size_t>(left.next)].id;
    if (const MergeRule* rule = find_merge(left.id, right_id)) {
      heap.push({rule->rank, pos, left.id, right_id, rule->new_id});
    }
  };
  for (size_t pos = 0; pos + 1 < symbols.size(); ++pos) push_pair(static_cast<int32_t>(pos));

  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    // Stale when either side has merged since this candidate was pushed.
    if (left.id != top.left_id || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    if (right.id != top.right_id) continue;

    left.id = top.new_id;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  std::vector<Symbol> symbols = initial_symbols(word);
  merge_all(symbols);
  for (int32_t pos = symbols.empty() ? -1 : 0; pos >= 0;
       pos = symbols[static_cast<size_t>(pos)].next) {
    out.push_back(symbols[static_cast<size_t>(pos)].id);
  }
}

}  // namespace sparsa
