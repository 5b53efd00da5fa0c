// tokenizer_regex.h — PCRE2 patterns behaving like the Oniguruma regexes of `tokenizers`.
//
// The `tokenizers` library compiles its patterns with Oniguruma (Unicode mode). PCRE2 with
// PCRE2_UTF | PCRE2_UCP agrees on \p{..}, \s, \d and look-arounds; it differs on \w (Oniguruma:
// letters, marks, decimal digits, connector punctuation), so \w and \W are rewritten before
// compiling. Subjects must be valid UTF-8 (checked once per text by the caller).
//
// Thread safety: a compiled Regex is immutable; find_all allocates its own match data.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparsa {

struct Match {
  size_t begin = 0;  // byte offsets into the subject
  size_t end = 0;
};

class Regex {
 public:
  // Compiles an Oniguruma-style `pattern` (JIT when available). On a pattern PCRE2 rejects,
  // throws Error(kBadInput) "`where`: invalid regex ...".
  static Regex compile(std::string_view pattern, const std::string& where);
  // A pattern matching `literal` verbatim.
  static Regex literal(std::string_view literal, const std::string& where);

  // Every leftmost non-overlapping match in `subject`, in order. After an empty match the
  // search resumes one code point further on.
  void find_all(std::string_view subject, std::vector<Match>& out) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

// Replaces every match of `pattern` in `text` with `content` (verbatim, no group references).
// Returns false and leaves `text` alone when nothing matches.
bool replace_all(const Regex& pattern, std::string& text, const std::string& content);

// Rewrites Oniguruma-only spellings (\w, \W) into PCRE2 equivalents.
std::string oniguruma_to_pcre2(std::string_view pattern);

}  // namespace sparsa
