// sparsa tokenize: text -> token ids (or ids -> text with --decode) with a Hugging Face
// tokenizer.json or a llama2.c tokenizer.bin.
#include <cctype>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/json_file.h"
#include "sparsa/tokenizer.h"

namespace sparsa::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer;
  std::string text_file;
  std::string text;
  bool text_given = false;
  bool bos = false;
  bool eos = false;
  bool json = false;
  bool decode = false;
  bool skip_special = false;
  int32_t vocab_size = 0;
  std::string out, key = "tokens";
  int64_t seqlen = 0;
};

bool is_llama2c_file(const std::string& path) { return path.ends_with(".bin"); }

// The input text and a name for it in messages ("--text" or the file).
std::pair<std::string, std::string> read_input(const TokenizeArgs& a) {
  if (a.text_given == !a.text_file.empty())
    bad_input("tokenize: give exactly one of --text or --text-file");
  if (a.text_given) return {a.text, "--text"};
  return {read_text_file(a.text_file), a.text_file};
}

// Ids for --decode: a JSON list, or integers separated by spaces, commas or newlines.
std::vector<int32_t> parse_ids(const std::string& input, const std::string& source) {
  std::vector<int32_t> ids;
  const auto first = input.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && input[first] == '[') {
    try {
      for (const auto& v : parse_json_bounded(input, source)) ids.push_back(v.get<int32_t>());
    } catch (const nlohmann::json::exception& e) {
      bad_input("{}: expected a JSON list of token ids: {}", source, e.what());
    }
    return ids;
  }
  size_t i = 0;
  while (i < input.size()) {
    if (std::isspace(static_cast<unsigned char>(input[i])) || input[i] == ',') {
      ++i;
      continue;
    }
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(input.substr(i, 20), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || value < 0 || value > INT32_MAX) {
      bad_input("{}: expected token ids (non-negative integers), found \"{}\" at byte {}", source,
                input.substr(i, input.find_first_of(" \t\r\n,", i) - i), i);
    }
    ids.push_back(static_cast<int32_t>(value));
    i += used;
  }
  return ids;
}

void print_ids(const std::vector<int32_t>& ids, bool json) {
  if (json) {
    print_json(nlohmann::json(ids));
    return;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
}

void print_text(const std::string& text, bool json) {
  if (json) {
    print_json(nlohmann::json(text));
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
}

// The tokenizer file itself: --tokenizer, or the tokenizer.json of a folder.
std::filesystem::path tokenizer_file(const TokenizeArgs& a) {
  return is_folder(a.tokenizer) ? std::filesystem::path(a.tokenizer) / "tokenizer.json" : std::filesystem::path(a.tokenizer);
}

// --out: the ids as a token file recording the tokenizer (sparsa/tokenizer.h), a stream
// [n_tokens] or with --seqlen windows [n, seqlen] (the tail shorter than a window dropped).
void write_ids(const TokenizeArgs& a, std::vector<int32_t> ids) {
  if (a.seqlen < 0 || a.seqlen == 1) bad_input("--seqlen must be at least 2 (0 = one stream), got {}", a.seqlen);
  const auto n = static_cast<int64_t>(ids.size());
  if (a.seqlen > n) bad_input("--seqlen {}: the text has only {} tokens, fewer than one window", a.seqlen, n);
  std::vector<int64_t> shape = {n};
  if (a.seqlen > 0) {
    shape = {n / a.seqlen, a.seqlen};
    ids.resize(static_cast<size_t>(shape[0] * a.seqlen));
  }
  write_token_file(a.out, a.key, shape, ids, tokenizer_file(a));
  if (a.json)
    print_json({{"out", a.out}, {"key", a.key}, {"shape", shape},
                {std::string(kTokenizerHashKey), tokenizer_sha256(tokenizer_file(a))}});
}

// The encoded ids: printed, or written with --out.
void emit_ids(const TokenizeArgs& a, std::vector<int32_t> ids) {
  if (a.out.empty()) return print_ids(ids, a.json);
  write_ids(a, std::move(ids));
}

// Rethrows a tokenizer error about the text with the text's source in front.
template <typename F>
auto naming_source(const std::string& source, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(e.kind(), source + ": " + e.what());
  }
}

void run_hf(const TokenizeArgs& a) {
  const auto tok = HfTokenizer::load(a.tokenizer);
  const auto [input, source] = read_input(a);
  if (a.decode) {
    print_text(tok->decode(parse_ids(input, source), a.skip_special), a.json);
    return;
  }
  if (a.bos && tok->bos_id() < 0) {
    bad_input(
        "{}: --bos: this tokenizer defines no BOS token (no special token before $A in its "
        "post_processor)",
        a.tokenizer);
  }
  std::vector<int32_t> ids = naming_source(source, [&] { return tok->encode(input, a.bos); });
  if (a.eos) {
    if (tok->eos_id() < 0) bad_input("{}: --eos: this tokenizer defines no EOS token", a.tokenizer);
    ids.push_back(tok->eos_id());
  }
  emit_ids(a, std::move(ids));
}

void run_llama2c(const TokenizeArgs& a) {
  if (a.vocab_size <= 0) {
    bad_input("{}: a llama2.c tokenizer.bin needs --vocab-size (the model's vocab_size)",
              a.tokenizer);
  }
  const auto tok = Llama2cTokenizer::load(a.tokenizer, a.vocab_size);
  const auto [input, source] = read_input(a);
  if (a.decode) {
    std::string text;
    int32_t prev = -1;
    for (const int32_t id : parse_ids(input, source)) {
      const bool special = id == 1 || id == 2;
      if (!(a.skip_special && special)) text += tok->decode_piece(prev, id);
      prev = id;
    }
    print_text(text, a.json);
    return;
  }
  emit_ids(a, tok->encode(input, a.bos, a.eos));
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand(
      "tokenize",
      "Turn text into token ids (or ids into text with --decode).\n"
      "Ids go to stdout space-separated on one line, or as a JSON list with --json.\n"
      "Example: sparsa tokenize --tokenizer models/tiny-llama-15m/tokenizer.json "
      "--text-file data/persuasion.txt --json");
  cmd->add_option("--tokenizer", args->tokenizer,
                  "Hugging Face tokenizer.json (BPE; or a folder holding one), or a llama2.c "
                  "tokenizer.bin (then give --vocab-size)")
      ->required();
  auto* file_opt =
      cmd->add_option("--text-file", args->text_file, "read the text (or the ids) from this file");
  auto* text_opt = cmd->add_option_function<std::string>(
      "--text",
      [args](const std::string& s) {
        args->text = s;
        args->text_given = true;
      },
      "the text (or the ids) itself");
  file_opt->excludes(text_opt);
  cmd->add_flag("--bos", args->bos,
                "prepend the BOS token, as the tokenizer's post-processor would");
  cmd->add_flag("--eos", args->eos, "append the EOS token");
  cmd->add_flag("--json", args->json, "print a JSON list of ids (a JSON string with --decode)");
  cmd->add_flag("--decode", args->decode,
                "decode: the input is token ids (a JSON list, or integers separated by spaces or "
                "commas); the text is written as is, without an added newline");
  cmd->add_flag("--skip-special", args->skip_special,
                "with --decode: leave out special tokens such as <s>");
  cmd->add_option("--vocab-size", args->vocab_size, "number of tokens in a llama2.c tokenizer.bin")
      ->check(CLI::PositiveNumber);
  auto* out = cmd->add_option("--out", args->out,
                               "write the ids to this .safetensors file (I32 tensor --key) instead of printing them; "
                               "its metadata records the tokenizer's SHA-256 (\"tokenizer_sha256\"), which eval, prune, "
                               "acts and study check against the model's tokenizer (docs/token-files.md)");
  cmd->add_option("--key", args->key, "with --out: the tensor's name (e.g. calib or eval)")->needs(out)->capture_default_str();
  cmd->add_option("--seqlen", args->seqlen,
                  "with --out: cut the ids into windows [n, seqlen] (the tail shorter than a window dropped); "
                  "default: one stream [n_tokens]")
      ->needs(out);
  cmd->callback([args] {
    if (!args->out.empty() && args->decode) bad_input("--out writes token ids: it does not go with --decode");
    if (!args->out.empty()) {
      const NamedPath inputs[] = {{"--tokenizer", args->tokenizer}, {"--text-file", args->text_file}};
      refuse_output_over_inputs({"--out", args->out}, inputs);
    }
    if (is_llama2c_file(args->tokenizer)) {
      run_llama2c(*args);
    } else {
      run_hf(*args);
    }
  });
}
SPARSA_COMMAND(40, register_tokenize);

}  // namespace sparsa::cli
