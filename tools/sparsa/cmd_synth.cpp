// sparsa synth: a random-weight LLaMA checkpoint of real shapes (and random calibration tokens),
// to measure pruning and inference at scale without downloading a model.
#include <cstdio>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/progress.h"
#include "sparsa/safetensors.h"
#include "sparsa/synth.h"

namespace sparsa::cli {
namespace {

struct SynthArgs {
  std::string preset = "7b", out, dtype = "bfloat16";
  int64_t layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, vocab = 0;
  int64_t calib_samples = 128, calib_seqlen = 2048;
  uint64_t seed = 0;
  float init_std = 0.02f;
  int threads = 0;
};

// --out is written into only when it is new, empty, or an earlier synth output (its config.json
// says "sparsa_synthetic": true), so a real model's files are never overwritten.
void check_synth_out(const std::filesystem::path& out) {
  std::error_code ec;
  if (!std::filesystem::exists(out, ec)) return;
  if (!std::filesystem::is_directory(out, ec)) bad_input("--out {}: exists and is not a folder", out.string());
  if (std::filesystem::is_empty(out, ec)) return;
  const std::filesystem::path config = out / "config.json";
  const nlohmann::json j = std::filesystem::is_regular_file(config, ec)
                               ? nlohmann::json::parse(read_file_contents(config), nullptr, false)
                               : nlohmann::json();
  if (!j.is_object() || !j.contains("sparsa_synthetic") || j["sparsa_synthetic"] != true)
    bad_input("--out {}: holds files but is not a model written by sparsa synth (no \"sparsa_synthetic\": true in "
              "config.json), so nothing in it is overwritten; choose a new or empty folder", out.string());
}

void run_synth(const SynthArgs& a) {
  check_synth_out(a.out);
  set_threads(a.threads);
  ModelConfig c = synth_config(a.preset);
  auto over = [](int64_t& field, int64_t v, const char* flag) {
    if (v < 0) bad_input("{} must be at least 1, got {}", flag, v);
    if (v > 0) field = v;
  };
  over(c.num_layers, a.layers, "--layers");
  over(c.hidden_size, a.hidden, "--hidden");
  over(c.intermediate_size, a.intermediate, "--intermediate");
  over(c.num_heads, a.heads, "--heads");
  over(c.num_kv_heads, a.kv_heads, "--kv-heads");
  over(c.vocab_size, a.vocab, "--vocab");
  if (a.heads > 0 && a.kv_heads == 0) c.num_kv_heads = c.num_heads;
  if (!(a.init_std > 0.0f)) bad_input("--init-std must be positive, got {}", a.init_std);
  const DType dtype = a.dtype == "bfloat16" ? DType::BF16 : a.dtype == "float16" ? DType::F16 : DType::F32;
  const std::filesystem::path out(a.out);

  const Model m = synth_model(c, a.seed, a.init_std);
  write_hf_model(m, out, dtype);
  if (a.calib_samples > 0) {
    const int64_t seqlen = std::min(a.calib_seqlen, c.max_position);
    const TensorI32 calib = synth_tokens(a.calib_samples, seqlen, c.vocab_size, a.seed);
    write_safetensors(out / "calib-tokens.safetensors", {{"calib", DType::I32, calib.shape, calib.ptr()}});
  }
  int64_t params = 0;
  for (const HfConstTensor& t : hf_tensors(m)) params += static_cast<int64_t>(t.tensor->numel());
  std::printf("wrote %s: %lld parameters (%lld layers, d %lld, d_ff %lld, %lld/%lld heads, vocab %lld), %s%s\n",
              out.string().c_str(), static_cast<long long>(params), static_cast<long long>(c.num_layers),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.intermediate_size),
              static_cast<long long>(c.num_heads), static_cast<long long>(c.num_kv_heads),
              static_cast<long long>(c.vocab_size), a.dtype.c_str(),
              a.calib_samples > 0 ? ", calib-tokens.safetensors (key calib)" : "");
}

}  // namespace

void register_synth(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand("synth", "Write a random-weight LLaMA checkpoint of real shapes (weights ~ N(0, 0.02^2), "
                                          "norms 1) plus random calibration tokens, to measure scale without a download");
  cmd->footer("Examples:\n  sparsa synth --preset 7b --out synth-7b\n"
              "  sparsa synth --preset 70b --layers 4 --out synth-70b-4l   (a few 70B-shaped blocks)");
  cmd->add_option("--preset", args->preset, "shapes: tiny, 7b (LLaMA-2-7B), 8b (LLaMA-3-8B: GQA, vocabulary 128256), 13b, 70b")
      ->check(CLI::IsMember({"tiny", "7b", "13b", "70b"}))
      ->capture_default_str();
  cmd->add_option("--out", args->out, "output folder (config.json, model.safetensors, calib-tokens.safetensors)")->required();
  cmd->add_option("--layers", args->layers, "override the number of blocks");
  cmd->add_option("--hidden", args->hidden, "override d_model");
  cmd->add_option("--intermediate", args->intermediate, "override d_ff");
  cmd->add_option("--heads", args->heads, "override the attention heads");
  cmd->add_option("--kv-heads", args->kv_heads, "override the KV heads (default: the preset's, or --heads)");
  cmd->add_option("--vocab", args->vocab, "override the vocabulary size");
  cmd->add_option("--dtype", args->dtype, "weight dtype")
      ->check(CLI::IsMember({"bfloat16", "float16", "float32"}))
      ->capture_default_str();
  cmd->add_option("--init-std", args->init_std, "standard deviation of the weights")
      ->check(finite_number(0.0, 1e6))
      ->capture_default_str();
  cmd->add_option("--calib-samples", args->calib_samples, "random calibration samples to write (0: none)")->capture_default_str();
  cmd->add_option("--calib-seqlen", args->calib_seqlen, "tokens per calibration sample (at most the context)")->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed of weights and tokens")->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  cmd->callback([args] { run_synth(*args); });
}
SPARSA_COMMAND(95, register_synth);

}  // namespace sparsa::cli
