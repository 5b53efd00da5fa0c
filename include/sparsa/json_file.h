// sparsa/json_file.h — parsing JSON that came from a file, with its nesting bounded.
//
// nlohmann::json parses iteratively, but copying, comparing or printing a value recurses once
// per level: a file of 200 000 nested brackets (600 KB) would overflow the stack wherever such a
// value is later copied. Every JSON file sparsa reads is parsed through parse_json_bounded.
//
// Errors: Error(kBadInput) "<path>: JSON nested more than 256 levels deep"; malformed JSON
// throws nlohmann::json::parse_error as json::parse does (callers word it with their file).
// Stateless and thread-safe.
#pragma once

#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sparsa/error.h"

namespace sparsa {

inline constexpr int kMaxJsonDepth = 256;

// `text` parsed as Json (nlohmann::json or nlohmann::ordered_json); `path` names it in errors.
template <class Json = nlohmann::json>
Json parse_json_bounded(std::string_view text, const std::filesystem::path& path) {
  return Json::parse(text.begin(), text.end(), [&](int depth, typename Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) bad_input("{}: JSON nested more than {} levels deep", path.string(), kMaxJsonDepth);
    return true;
  });
}

}  // namespace sparsa
