// Calibration windows from a tokens file or from text (see sparsa/calibration.h).
#include "sparsa/calibration.h"

#include <algorithm>
#include <limits>
#include <random>

#include <fmt/ranges.h>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/safetensors.h"
#include "sparsa/tokenizer.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;

// A uniform integer in [0, n) by rejection, the same on every standard library
// (std::uniform_int_distribution's algorithm is implementation-defined).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = max - max % n;  // a multiple of n
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

std::string text_file_list(const CalibrationSpec& spec) {
  std::vector<std::string> names;
  for (const auto& f : spec.text_files) names.push_back(f.string());
  return fmt::format("{}", fmt::join(names, " "));
}

// The first `seqlen` tokens of the first `nsamples` rows of the tokens file.
Calibration from_tokens(const CalibrationSpec& spec, const ModelConfig& config) {
  const std::string file = spec.tokens_file.string();
  const auto store = TensorStore::open(spec.tokens_file);
  const TokenizerCheck tokenizer = check_token_file_tokenizer(spec.tokens_file, spec.tokenizer);
  if (!store->contains(spec.key))
    bad_input("{}: no tensor '{}'; it holds: {}", file, spec.key, fmt::join(store->names(), ", "));
  const TensorI32 all = store->load_i32(spec.key);
  if (all.rank() != 2 || all.dim(0) == 0 || all.dim(1) == 0)
    bad_input("{}: tensor '{}' has shape {}, expected [n_samples, seqlen]", file, spec.key, shape_string(all.shape));
  const int64_t rows = all.dim(0), cols = all.dim(1);
  const int64_t seqlen = spec.seqlen > 0 ? spec.seqlen : cols;
  if (seqlen > cols)
    bad_input("{}: tensor '{}': windows of {} tokens are longer than its rows ({} tokens)", file, spec.key, seqlen, cols);
  if (spec.nsamples_given && spec.nsamples > rows)
    bad_input("{}: tensor '{}' has only {} rows, fewer than the {} samples asked for", file, spec.key, rows, spec.nsamples);
  const int64_t n = std::min(spec.nsamples, rows);

  Calibration c;
  c.tokens = TensorI32({n, seqlen});
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < seqlen; ++j) {
      const int32_t id = all.data[static_cast<size_t>(r * cols + j)];
      if (id < 0 || id >= config.vocab_size)
        bad_input("{}: tensor '{}' row {} column {} is token id {}, outside the model's vocabulary (size {})", file,
                  spec.key, r, j, id, config.vocab_size);
      c.tokens.data[static_cast<size_t>(r * seqlen + j)] = id;
    }
  }
  c.description = {{"kind", "tokens"}, {"file", fs::absolute(spec.tokens_file).string()}, {"key", spec.key},
                   {"file_rows", rows}};  // the first nsamples rows are used
  if (tokenizer == TokenizerCheck::kUnrecorded) warn_unrecorded_tokenizer(spec.tokens_file, spec.tokenizer);
  return c;
}

// nsamples windows of seqlen tokens at uniformly drawn offsets of the concatenated, tokenized
// text files (no BOS).
Calibration from_text(const CalibrationSpec& spec, const ModelConfig& config) {
  const auto tok = HfTokenizer::load(spec.tokenizer);
  std::vector<int32_t> stream;
  std::vector<std::string> files;
  for (const auto& f : spec.text_files) {
    const std::vector<int32_t> ids = tok->encode(read_utf8_file(f), /*add_bos=*/false);
    stream.insert(stream.end(), ids.begin(), ids.end());
    files.push_back(fs::absolute(f).string());
  }
  for (size_t i = 0; i < stream.size(); ++i)
    if (stream[i] < 0 || stream[i] >= config.vocab_size)
      bad_input("{}: token {} has id {}, outside the model's vocabulary (size {}); does the tokenizer "
                "match the model?", text_file_list(spec), i, stream[i], config.vocab_size);
  const int64_t seqlen = spec.seqlen > 0 ? spec.seqlen : config.max_position;
  const auto total = static_cast<int64_t>(stream.size());
  if (total < seqlen)
    bad_input("{}: {} tokens, fewer than one window of {}", text_file_list(spec), total, seqlen);

  Calibration c;
  c.tokens = TensorI32({spec.nsamples, seqlen});
  std::mt19937_64 rng(spec.seed);
  std::vector<int64_t> offsets;
  for (int64_t r = 0; r < spec.nsamples; ++r) {
    const auto off = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(total - seqlen + 1)));
    std::copy_n(stream.begin() + off, seqlen, c.tokens.data.begin() + r * seqlen);
    offsets.push_back(off);
  }
  c.description = {{"kind", "text"}, {"files", files}, {"stream_tokens", total}, {"seed", spec.seed}, {"offsets", offsets}};
  return c;
}

}  // namespace

uint64_t fnv1a64(std::span<const int32_t> ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int b = 0; b < 4; ++b) {
      h ^= (u >> (8 * b)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

Calibration load_calibration(const CalibrationSpec& spec, const ModelConfig& config) {
  if (spec.tokens_file.empty() == spec.text_files.empty())
    bad_input("calibration windows come from exactly one of a tokens file or text files");
  if (spec.nsamples < 1) bad_input("the number of calibration samples must be at least 1, got {}", spec.nsamples);
  Calibration c = spec.tokens_file.empty() ? from_text(spec, config) : from_tokens(spec, config);
  c.description["nsamples"] = c.tokens.dim(0);
  c.description["seqlen"] = c.tokens.dim(1);
  c.description["tokens_fnv1a64"] = fmt::format("{:016x}", fnv1a64(c.tokens.data));
  return c;
}

}  // namespace sparsa
