// utf8.h — the few UTF-8 facts the tokenizers need (private to src/io).
//
// Conventions: strings are byte strings holding UTF-8; offsets are byte offsets.
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

}  // namespace sparsa::utf8
