#include "cli_common.h"

#include <omp.h>

#include <cstdio>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"

namespace sparsa::cli {

std::filesystem::path default_model_path() {
  return std::filesystem::path(SPARSA_SOURCE_DIR) / "models" / "tiny-llama-15m";
}

std::filesystem::path tokenizer_path_for(const std::filesystem::path& model, const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (!std::filesystem::is_directory(model))
    bad_input("{}: a llama2.c model needs --tokenizer (its tokenizer.bin)", model.string());
  const auto p = model / "tokenizer.json";
  if (!std::filesystem::exists(p)) bad_input("{}: no tokenizer.json in the model folder; pass --tokenizer", model.string());
  return p;
}

std::string read_text_file(const std::filesystem::path& p) { return read_file_contents(p); }

void print_json(const nlohmann::json& j) {
  const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

void set_threads(int threads) {
  if (threads < 0) bad_input("--threads must be >= 0");
  if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace sparsa::cli
