// tokenizer_json.h — reading tokenizer.json fields with errors that name the file and field.
//
// A JsonNode is a (file, field path, value) triple: node["pre_tokenizer"]["pretokenizers"][1]
// reports itself as "tokenizer.json: pre_tokenizer.pretokenizers[1]". Every accessor throws
// Error(kBadInput) with one line naming the file and the field when the JSON has the wrong shape.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "sparsa/error.h"

namespace sparsa {

class JsonNode {
 public:
  JsonNode(const std::string& file, const nlohmann::json& value, std::string path = "")
      : file_(&file), value_(&value), path_(std::move(path)) {}

  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  // "file: path" (or "file" at the root), the prefix of every message about this node.
  std::string where() const { return path_.empty() ? *file_ : *file_ + ": " + path_; }

  bool is_null() const { return value_->is_null(); }
  // True when `key` is present and not null.
  bool has(std::string_view key) const;
  // The member `key`; throws when this is not an object or the member is missing.
  JsonNode operator[](std::string_view key) const;
  // The member `key`, or a null node when this object lacks it.
  JsonNode member_or_null(std::string_view key) const;
  // Element i of an array.
  JsonNode operator[](size_t i) const;
  size_t size() const;  // array length; throws when not an array

  std::string string() const;
  bool boolean() const;
  int64_t integer() const;
  // Member accessors with a default for absent / null members.
  std::string string_or(std::string_view key, const std::string& fallback) const;
  bool boolean_or(std::string_view key, bool fallback) const;

  // Throws Error(kBadInput): "<file>: <path>: <message>".
  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) const {
    bad_input("{}: {}", where(), fmt::format(f, std::forward<Args>(args)...));
  }

 private:
  const std::string* file_;
  const nlohmann::json* value_;
  std::string path_;
};

}  // namespace sparsa
