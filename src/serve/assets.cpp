// Lookup of the embedded dashboard files.
#include "serve/assets.h"

#include <array>
#include <utility>

namespace sparsa::serve {

const Asset* find_asset(std::string_view url_path) {
  if (url_path == "/") url_path = "/index.html";
  for (const Asset& a : embedded_assets())
    if (a.path == url_path) return &a;
  return nullptr;
}

std::string_view content_type(std::string_view path) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kTypes{{
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".md", "text/markdown; charset=utf-8"},
  }};
  for (const auto& [ext, type] : kTypes)
    if (path.ends_with(ext)) return type;
  if (path.find("/LICENSE") != std::string_view::npos) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace sparsa::serve
