#include "io/tokenizer_regex.h"

#include <pcre2.h>

#include <cctype>

#include "io/utf8.h"
#include "sparsa/error.h"

namespace sparsa {

struct Regex::Code {
  pcre2_code* code = nullptr;
  explicit Code(pcre2_code* c) : code(c) {}
  ~Code() { pcre2_code_free(code); }
  Code(const Code&) = delete;
  Code& operator=(const Code&) = delete;
};

namespace {

constexpr std::string_view kWordClass = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

}  // namespace

std::string oniguruma_to_pcre2(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 'w') {
        if (in_class) {
          out += kWordClass;
        } else {
          out += '[';
          out += kWordClass;
          out += ']';
        }
      } else if (e == 'W' && !in_class) {
        out += "[^";
        out += kWordClass;
        out += ']';
      } else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

namespace {

// Compiles a PCRE2 pattern (UTF + UCP, JIT when available); throws bad_input on failure.
pcre2_code* compile_pcre2(const std::string& pattern, std::string_view shown,
                          const std::string& where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error_code,
                                   &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    bad_input("{}: invalid regex \"{}\": {}", where, shown, reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // the interpreter is used when JIT is absent
  return code;
}

}  // namespace

Regex Regex::compile(std::string_view pattern, const std::string& where) {
  Regex re;
  re.code_ =
      std::make_shared<const Code>(compile_pcre2(oniguruma_to_pcre2(pattern), pattern, where));
  return re;
}

Regex Regex::literal(std::string_view literal, const std::string& where) {
  // A backslash before an ASCII non-alphanumeric character always means that character.
  std::string pattern;
  for (const char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) pattern += '\\';
    pattern += c;
  }
  Regex re;
  re.code_ = std::make_shared<const Code>(compile_pcre2(pattern, literal, where));
  return re;
}

void Regex::find_all(std::string_view subject, std::vector<Match>& out) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  SPARSA_ASSERT(md != nullptr);
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  while (start <= subject.size()) {
    const int rc =
        pcre2_match(code_->code, data, subject.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      runtime_failure("regex match failed: {}", reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    out.push_back({ov[0], ov[1]});
    if (ov[1] > ov[0]) {
      start = ov[1];
    } else {
      if (ov[1] >= subject.size()) break;
      start = ov[1] + utf8::sequence_length(static_cast<unsigned char>(subject[ov[1]]));
    }
  }
  pcre2_match_data_free(md);
}

bool replace_all(const Regex& pattern, std::string& text, const std::string& content) {
  std::vector<Match> matches;
  pattern.find_all(text, matches);
  if (matches.empty()) return false;
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  for (const Match& m : matches) {
    out.append(text, last, m.begin - last);
    out += content;
    last = m.end;
  }
  out.append(text, last, std::string::npos);
  text = std::move(out);
  return true;
}

}  // namespace sparsa
