// sparsa generate: text from a prompt (greedy by default), HF or llama2.c models.
#include <cctype>
#include <cstdio>
#include <limits>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/error.h"
#include "sparsa/generate.h"
#include "sparsa/model.h"
#include "sparsa/tokenizer.h"

namespace sparsa::cli {
namespace {

struct GenerateArgs {
  std::string model, tokenizer, prompt;
  GenerateOptions opt;
  int threads = 0;
};

// llama2.c: pieces are printed as they are decided, exactly as run.c prints them.
void generate_llama2c(const GenerateArgs& a, const Model& m) {
  if (a.tokenizer.empty()) bad_input("{}: a llama2.c model needs --tokenizer (its tokenizer.bin)", a.model);
  const auto tok = Llama2cTokenizer::load(a.tokenizer, static_cast<int32_t>(m.config.vocab_size));
  GenerateOptions opt = a.opt;
  opt.stop_token = 1;  // run.c stops when the model emits BOS
  generate(m, tok->encode(a.prompt, /*add_bos=*/true, /*add_eos=*/false), opt, [&](int32_t prev, int32_t next) {
    const std::string piece = tok->decode_piece(prev, next);
    // Like run.c, skip pieces that are single unprintable bytes.
    if (piece.size() == 1 && !(std::isprint(static_cast<unsigned char>(piece[0])) || std::isspace(static_cast<unsigned char>(piece[0]))))
      return;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  std::fputc('\n', stdout);
}

// HF: BOS + prompt, stop at EOS, then decode the whole sequence (byte-level pieces only make
// valid UTF-8 together).
void generate_hf(const GenerateArgs& a, const Model& m) {
  const auto tok = HfTokenizer::load(tokenizer_path_for(a.model, a.tokenizer));
  GenerateOptions opt = a.opt;
  opt.stop_token = tok->eos_id() >= 0 ? tok->eos_id() : m.config.eos_token_id;
  const std::vector<int32_t> prompt =
      rephrase_bad_input("--prompt: ", "", [&] { return tok->encode(a.prompt, /*add_bos=*/true); });
  const auto ids = generate(m, prompt, opt, [](int32_t, int32_t) {});
  const std::string text = tok->decode(ids, /*skip_special=*/true);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  args->model = default_model_path().string();
  args->opt.steps = 128;
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt (greedy with --temperature 0, the default)");
  cmd->add_option("--model", args->model, "HF checkpoint folder or llama2.c .bin")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json, or tokenizer.bin for llama2.c models (required there)");
  cmd->add_option("--prompt", args->prompt, "the prompt")->required();
  cmd->add_option("--steps", args->opt.steps, "positions to run, prompt and BOS included (llama2.c's -n)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--temperature", args->opt.temperature, "0 = greedy")
      ->check(finite_number(0.0, std::numeric_limits<float>::max()))
      ->capture_default_str();
  cmd->add_option("--top-p", args->opt.top_p, "nucleus sampling threshold")->check(finite_number(0.0, 1.0))->capture_default_str();
  cmd->add_option("--seed", args->opt.seed, "random seed for sampling")->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  cmd->callback([args] {
    set_threads(args->threads);
    const Model m = load_model(args->model);
    if (m.config.model_type == "llama2c") generate_llama2c(*args, m);
    else generate_hf(*args, m);
  });
}
SPARSA_COMMAND(30, register_generate);

}  // namespace sparsa::cli
