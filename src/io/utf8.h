// utf8.h — the few UTF-8 and Unicode facts the tokenizers need (private to src/io).
//
// Conventions: strings are byte strings holding UTF-8; offsets are byte offsets.
// The Unicode data (normalization, case mappings, general categories) is utf8proc's, that is the
// Unicode version of the installed libutf8proc (15.0 on Debian 12).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sparsa::utf8 {

// Byte length of the code point whose lead byte is `lead`: 1..4, or 1 for a byte that cannot
// start a sequence (so that byte-wise walks always advance).
size_t sequence_length(unsigned char lead);

// Decodes the code point starting at s[i] and advances i past it. `s` must be valid UTF-8.
uint32_t next_code_point(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of code point `cp` (<= 0x10FFFF) to `out`.
void append(std::string& out, uint32_t cp);

// Byte offset of the first invalid sequence in `s`, or npos when `s` is valid UTF-8
// (no overlongs, no surrogates, nothing above U+10FFFF, no truncated sequence).
size_t first_invalid(std::string_view s);

// `s` with every maximal invalid subsequence replaced by U+FFFD, as Rust's
// String::from_utf8_lossy does (Unicode "substitution of maximal subparts").
std::string lossy(std::string_view s);

// Unicode White_Space property (Rust's char::is_whitespace).
bool is_whitespace(uint32_t cp);

// The Unicode normalization forms (UAX #15).
enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// `s` in normalization form `form`. `s` must be valid UTF-8. Throws Error(kRuntime) only
// when memory runs out.
std::string normalize(std::string_view s, NormalForm form);

// Every code point replaced by its full lowercase mapping without context, as Rust's
// char::to_lowercase does: the simple mapping, except U+0130 (capital I with dot), whose
// unconditional special casing is "i" + U+0307. `s` must be valid UTF-8.
std::string to_lowercase(std::string_view s);

// `s` without its combining marks (General_Category Mn, Mc, Me). `s` must be valid UTF-8.
std::string strip_marks(std::string_view s);

}  // namespace sparsa::utf8
