// Which tokenizer made a token file: the tokenizer file's SHA-256 in the safetensors metadata
// (sparsa/tokenizer.h).
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "sha256.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/safetensors.h"
#include "sparsa/tokenizer.h"

namespace sparsa {
void warn_unrecorded_tokenizer(const std::filesystem::path& tokens_file, const std::filesystem::path& model_tokenizer) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  const std::lock_guard<std::mutex> lock(mutex);
  if (!warned.insert(std::filesystem::absolute(tokens_file).lexically_normal().string()).second) return;
  std::fprintf(stderr,
               "warning: %s records no tokenizer (no \"%s\" in its metadata); its ids are used as ids of %s\n",
               tokens_file.string().c_str(), std::string(kTokenizerHashKey).c_str(), model_tokenizer.string().c_str());
}

std::string tokenizer_sha256(const std::filesystem::path& tokenizer_file) {
  const std::string bytes = InputFile(tokenizer_file).read_all(std::numeric_limits<uint64_t>::max(), "tokenizer file");
  return sha256_hex({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

void write_token_file(const std::filesystem::path& path, const std::string& key, const std::vector<int64_t>& shape,
                      const std::vector<int32_t>& ids, const std::filesystem::path& tokenizer_file) {
  const std::map<std::string, std::string> metadata = {{std::string(kTokenizerHashKey), tokenizer_sha256(tokenizer_file)}};
  write_safetensors(path, {{key, DType::I32, shape, ids.data()}}, metadata);
}

TokenizerCheck check_token_file_tokenizer(const std::filesystem::path& tokens_file,
                                          const std::filesystem::path& model_tokenizer) {
  if (model_tokenizer.empty() || !is_regular_file_path(tokens_file)) return TokenizerCheck::kUnchecked;
  const auto file = SafetensorsFile::open(tokens_file);
  const auto recorded = file->metadata().find(std::string(kTokenizerHashKey));
  if (recorded == file->metadata().end()) return TokenizerCheck::kUnrecorded;
  const std::string expected = tokenizer_sha256(model_tokenizer);
  if (recorded->second != expected)
    bad_input("{}: tokenized with another tokenizer than the model's: its {} is {}, but the model's {} has {}",
              tokens_file.string(), kTokenizerHashKey, recorded->second, model_tokenizer.string(), expected);
  return TokenizerCheck::kMatch;
}

}  // namespace sparsa
