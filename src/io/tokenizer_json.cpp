#include "io/tokenizer_json.h"

namespace sparsa {

namespace {

std::string_view type_name(const nlohmann::json& v) { return v.type_name(); }

}  // namespace

bool JsonNode::has(std::string_view key) const {
  if (!value_->is_object()) return false;
  const auto it = value_->find(key);
  return it != value_->end() && !it->is_null();
}

JsonNode JsonNode::operator[](std::string_view key) const {
  if (!value_->is_object()) fail("expected an object, found {}", type_name(*value_));
  const auto it = value_->find(key);
  const std::string child = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  if (it == value_->end()) bad_input("{}: missing field \"{}\"", *file_, child);
  return JsonNode(*file_, *it, child);
}

JsonNode JsonNode::member_or_null(std::string_view key) const {
  static const nlohmann::json null_value;
  if (value_->is_object() && value_->contains(key)) return (*this)[key];
  const std::string child = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  return JsonNode(*file_, null_value, child);
}

JsonNode JsonNode::operator[](size_t i) const {
  if (!value_->is_array()) fail("expected an array, found {}", type_name(*value_));
  if (i >= value_->size()) fail("index {} out of range", i);
  return JsonNode(*file_, (*value_)[i], path_ + "[" + std::to_string(i) + "]");
}

size_t JsonNode::size() const {
  if (!value_->is_array()) fail("expected an array, found {}", type_name(*value_));
  return value_->size();
}

std::string JsonNode::string() const {
  if (!value_->is_string()) fail("expected a string, found {}", type_name(*value_));
  return value_->get<std::string>();
}

bool JsonNode::boolean() const {
  if (!value_->is_boolean()) fail("expected true or false, found {}", type_name(*value_));
  return value_->get<bool>();
}

int64_t JsonNode::integer() const {
  if (!value_->is_number_integer()) fail("expected an integer, found {}", type_name(*value_));
  return value_->get<int64_t>();
}

std::string JsonNode::string_or(std::string_view key, const std::string& fallback) const {
  return has(key) ? (*this)[key].string() : fallback;
}

bool JsonNode::boolean_or(std::string_view key, bool fallback) const {
  return has(key) ? (*this)[key].boolean() : fallback;
}

}  // namespace sparsa
