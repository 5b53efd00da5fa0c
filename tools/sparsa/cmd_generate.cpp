// sparsa generate: text from a prompt (greedy by default), HF or llama2.c models; with
// --act-sparsity, decoded through activation-sparse linears (TEAL thresholds) on the CPU
// reference path or the GPU decoder, with the measured sparsity and bytes per token.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/activations.h"
#include "sparsa/bytes_model.h"
#include "sparsa/calibration.h"
#include "sparsa/decode.h"
#include "sparsa/error.h"
#include "sparsa/generate.h"
#include "sparsa/model.h"
#include "sparsa/progress.h"
#include "sparsa/tokenizer.h"

namespace sparsa::cli {
namespace {

namespace fs = std::filesystem;

struct GenerateArgs {
  std::string model, tokenizer, prompt;
  GenerateOptions opt;
  int threads = 0;
  // Activation-sparse decoding.
  std::string act_sparsity, thresholds, calib, calib_key = "calib";
  int64_t nsamples = 16;
  bool stats = false, json = false;
  DeviceArgs device;
  bool sparse() const { return !act_sparsity.empty(); }
};

// The thresholds of --act-sparsity: from --thresholds FILE, else calibrated from --calib on the
// CPU (every position of --nsamples windows, as `sparsa acts` does).
struct ChosenThresholds {
  ActivationThresholds t;
  nlohmann::json source;  // what they came from, for --json / --stats
};

ChosenThresholds choose_thresholds(const GenerateArgs& a, const Model& m, const PointTargets& targets) {
  if (!a.thresholds.empty()) {
    const ThresholdsFile f = rephrase_bad_input("--thresholds ", "", [&] { return read_thresholds_file(a.thresholds); });
    check_thresholds_fit(f, m.config, a.thresholds);
    return {select_thresholds(f, targets, a.thresholds),
            {{"file", a.thresholds},
             {"model", f.model.name},
             {"calibration", {{"source", f.calibration.source}, {"windows", f.calibration.windows},
                              {"seqlen", f.calibration.seqlen}, {"tokens_hash", f.calibration.tokens_hash}}}}};
  }
  if (a.nsamples < 1) bad_input("--nsamples must be at least 1, got {}", a.nsamples);
  CalibrationSpec spec;
  spec.tokens_file = a.calib;
  spec.key = a.calib_key;
  spec.tokenizer = known_tokenizer_for(a.model, a.tokenizer);
  spec.nsamples = a.nsamples;
  spec.nsamples_given = true;
  const Calibration calib = load_calibration(spec, m.config);
  constexpr int kPasses = 1;
  Progress bar("generate calibration", (kPasses + 1) * calib.tokens.dim(0));
  const int64_t windows = calib.tokens.dim(0);
  const ActivationProfile dense = capture_activation_profile(m, calib.tokens, [&](int64_t done, int64_t) { bar.update(done); });
  ActivationThresholds t = decode_thresholds(m, calib.tokens, dense, targets, kPasses,
                                             [&](int64_t done, int64_t) { bar.update(windows + done); });
  bar.finish();
  return {std::move(t),
          {{"calibration", {{"source", fmt::format("{}:{}", fs::path(a.calib).filename().string(), a.calib_key)},
                            {"windows", calib.tokens.dim(0)}, {"seqlen", calib.tokens.dim(1)},
                            {"refinement_passes", kPasses}, {"positions", "every position of every window"}}}}};
}

// What a sparse decode measured: per point and per [layer][point] inactive fractions, the weight
// bytes per token and the speed.
nlohmann::json decode_stats(const Model& m, const std::vector<std::array<double, kNumObsPoints>>& inactive,
                            double bytes_per_weight, int64_t steps, double seconds) {
  std::array<double, kNumObsPoints> by_point{};
  for (const auto& row : inactive)
    for (int p = 0; p < kNumObsPoints; ++p) by_point[static_cast<size_t>(p)] += row[static_cast<size_t>(p)] / static_cast<double>(inactive.size());
  nlohmann::json points = nlohmann::json::object();
  for (int p = 0; p < kNumObsPoints; ++p) points[std::string(obs_point_name(static_cast<ObsPoint>(p)))] = by_point[static_cast<size_t>(p)];
  const DecodeBytes bytes = decode_weight_bytes(m, inactive, bytes_per_weight);
  return {{"steps", steps},
          {"seconds", seconds},
          {"tokens_per_second", seconds > 0 ? static_cast<double>(steps) / seconds : 0.0},
          {"ms_per_token", steps > 0 ? 1e3 * seconds / static_cast<double>(steps) : 0.0},
          {"inactive", points},
          {"inactive_by_layer", inactive},
          {"weight_bytes_per_token", {{"dense", bytes.dense}, {"read", bytes.read}, {"fraction", bytes.read / bytes.dense}}}};
}

using OnToken = std::function<void(int32_t prev, int32_t next)>;

// The tokens of one decode, and with --act-sparsity / --device cuda what it measured.
struct Decoded {
  std::vector<int32_t> tokens;
  nlohmann::json report;  // {} for a plain CPU decode
};

double elapsed_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The CPU decode; with thresholds, every step's activations sparsified and counted.
Decoded decode_cpu(const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt, const OnToken& on_token,
                   const ActivationThresholds* t) {
  if (!t) return {generate(m, prompt, opt, on_token), {}};
  DecodeSparsifier sparsifier(*t);
  const auto t0 = std::chrono::steady_clock::now();
  Decoded d{generate(m, prompt, opt, on_token, &sparsifier), {}};
  d.report = decode_stats(m, sparsifier.inactive_fractions(), sizeof(float), sparsifier.steps(), elapsed_since(t0));
  return d;
}

// The GPU decoder (greedy; the LLaMA family, Mistral, Qwen2, Qwen3): `steps` positions, then cut at the stop token.
Decoded decode_cuda(const GenerateArgs& a, const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                    const OnToken& on_token, const ActivationThresholds& t) {
  if (opt.temperature != 0.0f) bad_input("--device cuda decodes greedily; drop --temperature (or use --device cpu)");
  DecodeOptions dopt;
  dopt.precision = a.device.options().precision;
  dopt.max_seq = std::min<int64_t>(m.config.max_position, std::max<int64_t>(opt.steps, static_cast<int64_t>(prompt.size())));
  check_decode_supported(m.config, dopt);
  GpuDecoder dec(m, dopt);
  dec.set_thresholds(t);
  const int64_t steps = std::min<int64_t>(opt.steps, dopt.max_seq);
  dec.reset(prompt);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) dec.step();
  dec.synchronize();
  const double seconds = elapsed_since(t0);
  std::vector<int32_t> all = dec.tokens();
  // generate()'s result: the prompt, then the predictions until the stop token (not included).
  std::vector<int32_t> tokens{all[0]};
  for (size_t i = 1; i < all.size() && static_cast<int64_t>(i) <= steps; ++i) {
    if (static_cast<int64_t>(i) >= static_cast<int64_t>(prompt.size()) && all[i] == opt.stop_token) break;
    on_token(tokens.back(), all[i]);
    tokens.push_back(all[i]);
  }
  const auto inactive = decode_inactive_fractions(dec, prompt, steps);
  const double bytes_per_weight = dopt.precision == GpuPrecision::kFp32 ? 4.0 : 2.0;
  return {std::move(tokens), decode_stats(m, inactive, bytes_per_weight, steps, seconds)};
}

Decoded decode(const GenerateArgs& a, const Model& m, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
               const OnToken& on_token) {
  std::optional<ChosenThresholds> chosen;
  if (a.sparse()) chosen = choose_thresholds(a, m, parse_point_targets(a.act_sparsity));
  // Dense thresholds (-1) zero nothing: a dense decode measured for --stats / --json / the GPU.
  const bool measured = chosen || a.stats || a.json || a.device.cuda();
  const ActivationThresholds t = chosen ? chosen->t : dense_thresholds(m.config.num_layers);
  Decoded d = a.device.cuda() ? decode_cuda(a, m, prompt, opt, on_token, t)
                              : decode_cpu(m, prompt, opt, on_token, measured ? &t : nullptr);
  if (!d.report.is_null()) {
    d.report["device"] = a.device.device;
    d.report["act_sparsity"] = a.sparse() ? point_targets_label(parse_point_targets(a.act_sparsity)) : "0";
    if (chosen) d.report["thresholds"] = chosen->source;
  }
  return d;
}

// --stats: the measured sparsity, bytes and speed, on stderr (stdout keeps the text).
void print_stats(const nlohmann::json& r) {
  if (r.is_null()) return;
  const auto& in = r["inactive"];
  std::fprintf(stderr,
               "generate: %s, activation sparsity %s: %lld steps, %.2f tokens/s (%.3f ms/token); inactive attn_in %.3f "
               "o_in %.3f mlp_in %.3f down_in %.3f; weight bytes/token %.4g of %.4g (%.3f)\n",
               r["device"].get<std::string>().c_str(), r["act_sparsity"].get<std::string>().c_str(),
               static_cast<long long>(r["steps"].get<int64_t>()), r["tokens_per_second"].get<double>(),
               r["ms_per_token"].get<double>(), in["attn_in"].get<double>(), in["o_in"].get<double>(),
               in["mlp_in"].get<double>(), in["down_in"].get<double>(), r["weight_bytes_per_token"]["read"].get<double>(),
               r["weight_bytes_per_token"]["dense"].get<double>(), r["weight_bytes_per_token"]["fraction"].get<double>());
}

void finish(const GenerateArgs& a, const Decoded& d, const std::string& text, size_t prompt_tokens) {
  if (a.json) {
    nlohmann::json j = {{"text", text}, {"tokens", d.tokens.size()}, {"prompt_tokens", prompt_tokens}};
    if (!d.report.is_null()) j["decode"] = d.report;
    print_json(j);
    return;
  }
  if (a.stats) print_stats(d.report);
}

// llama2.c: pieces are printed as they are decided, exactly as run.c prints them (with --json,
// the text is gathered and printed as JSON at the end).
void generate_llama2c(const GenerateArgs& a, const Model& m) {
  if (a.tokenizer.empty()) bad_input("{}: a llama2.c model needs --tokenizer (its tokenizer.bin)", a.model);
  const auto tok = Llama2cTokenizer::load(a.tokenizer, static_cast<int32_t>(m.config.vocab_size));
  GenerateOptions opt = a.opt;
  opt.stop_token = 1;  // run.c stops when the model emits BOS
  const std::vector<int32_t> prompt = tok->encode(a.prompt, /*add_bos=*/true, /*add_eos=*/false);
  std::string text;
  const Decoded d = decode(a, m, prompt, opt, [&](int32_t prev, int32_t next) {
    const std::string piece = tok->decode_piece(prev, next);
    // Like run.c, skip pieces that are single unprintable bytes.
    if (piece.size() == 1 && !(std::isprint(static_cast<unsigned char>(piece[0])) || std::isspace(static_cast<unsigned char>(piece[0]))))
      return;
    if (a.json) {
      text += piece;
      return;
    }
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  if (!a.json) std::fputc('\n', stdout);
  finish(a, d, text, prompt.size());
}

// HF: BOS + prompt, stop at EOS, then decode the whole sequence (byte-level pieces only make
// valid UTF-8 together).
void generate_hf(const GenerateArgs& a, const Model& m) {
  const auto tok = HfTokenizer::load(tokenizer_path_for(a.model, a.tokenizer));
  GenerateOptions opt = a.opt;
  opt.stop_token = tok->eos_id() >= 0 ? tok->eos_id() : m.config.eos_token_id;
  const std::vector<int32_t> prompt =
      rephrase_bad_input("--prompt: ", "", [&] { return tok->encode(a.prompt, /*add_bos=*/true); });
  const Decoded d = decode(a, m, prompt, opt, [](int32_t, int32_t) {});
  const std::string text = tok->decode(d.tokens, /*skip_special=*/true);
  if (!a.json) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
  }
  finish(a, d, text, prompt.size());
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
  cmd->add_option("--act-sparsity", args->act_sparsity,
                  "decode through activation-sparse linears: S in [0, 0.95] at every point, or per point "
                  "attn_in=S,o_in=S,mlp_in=S,down_in=S (points not named stay dense); inputs with |x| <= t are "
                  "skipped, t the TEAL threshold of the target");
  cmd->add_option("--thresholds", args->thresholds,
                  "with --act-sparsity: the thresholds file written by `sparsa acts --thresholds-out` (it must hold "
                  "each target)");
  cmd->add_option("--calib", args->calib,
                  "with --act-sparsity and no --thresholds: int32 token windows to calibrate the thresholds on now "
                  "(every position of each window, re-calibrated once on activations sparsified upstream)" +
                      std::string(kDefaultCalibrationHelp));
  cmd->add_option("--calib-key", args->calib_key, "the tensor of --calib")->capture_default_str();
  cmd->add_option("--nsamples", args->nsamples, "windows of --calib to calibrate on")->capture_default_str();
  cmd->add_flag("--stats", args->stats,
                "print the measured inactive fraction per point, the weight bytes read per token and the speed on "
                "stderr");
  cmd->add_flag("--json", args->json, "print one JSON object: the text, and the decode's measurements");
  add_device_options(cmd, args->device);
  cmd->callback([args] {
    if (!args->sparse() && (!args->thresholds.empty() || !args->calib.empty()))
      bad_input("--thresholds and --calib choose the thresholds of --act-sparsity; pass --act-sparsity too");
    if (args->sparse()) (void)parse_point_targets(args->act_sparsity);  // refuse a bad target before loading
    if (args->sparse() && args->thresholds.empty() && args->calib.empty())
      args->calib = default_calibration_file().string();
    set_threads(args->threads);
    const Model m = load_model(args->model);
    if (m.config.model_type == "llama2c") generate_llama2c(*args, m);
    else generate_hf(*args, m);
  });
}
SPARSA_COMMAND(30, register_generate);

}  // namespace sparsa::cli
