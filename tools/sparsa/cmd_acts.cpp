// sparsa acts: activation sparsity the TEAL way. One calibration pass fills a histogram per
// (block, observation point); thresholds for the target sparsities come from them; perplexity
// is then measured with every activation |x| <= t zeroed; optionally the binary activation
// matrices |x| > t of chosen (layer, point, sparsity) are written as packed bits.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <span>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/activations.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/eval_set.h"
#include "sparsa/model.h"
#include "sparsa/progress.h"
#include "sparsa/runs.h"
#include "sparsa/mask_compare.h"
#include "sparsa/safetensors.h"

namespace sparsa::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct ActsArgs {
  std::string model, tokenizer, tokens, key = "calib", text, eval_tokens, eval_key, eval_text, bits_out, db;
  std::vector<std::string> sparsities{"0.25", "0.4", "0.5", "0.7", "0.9"}, bits;
  int64_t seqlen = 0, nsamples = 0, eval_limit = 0;
  int threads = 0;
  std::string thresholds_out;
  bool dense = false, json = false;
  DeviceArgs device;
};


// "0.5" as the golden file spells sparsities.
std::string sparsity_key(double s) { return fmt::format("{:g}", s); }

double parse_fraction(const std::string& s, std::string_view flag) {
  refuse_nm_for_fraction(flag, s,
                         "activation sparsities are fractions in (0, 1); N:M patterns are weight targets "
                         "(prune --nm, study --targets)");
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !(v > 0.0 && v < 1.0))
    bad_input("{} '{}' must be a number in (0, 1)", flag, s);
  return v;
}

// Windows [n, seqlen] from tensor `key` of FILE (each row's first --seqlen tokens when given), or
// from a text file tokenized with the model's tokenizer and cut into --seqlen windows (default:
// the context).
TensorI32 load_windows(const ActsArgs& a, const std::string& file, const std::string& key, const std::string& text,
                       const Model& m, int64_t limit) {
  EvalSetSpec spec;
  spec.tokens_file = file;
  spec.key = key;
  spec.text_file = text;
  spec.tokenizer = file.empty() ? tokenizer_path_for(a.model, a.tokenizer) : known_tokenizer_for(a.model, a.tokenizer);
  spec.seqlen = a.seqlen;
  spec.limit = limit;
  spec.row_cut = RowCut::kPrefix;
  return load_eval_windows(spec, m.config);
}

// --bits LAYER:POINT:S -> the request (threshold filled in later) and its sparsity.
struct BitsSpec {
  int64_t layer = 0;
  ObsPoint point = ObsPoint::kAttnIn;
  double sparsity = 0;
};

BitsSpec parse_bits(const std::string& s, int64_t n_layers) {
  const auto c1 = s.find(':'), c2 = s.find(':', c1 == std::string::npos ? c1 : c1 + 1);
  if (c1 == std::string::npos || c2 == std::string::npos)
    bad_input("--bits '{}' must be LAYER:POINT:SPARSITY, e.g. 0:down_in:0.5", s);
  BitsSpec b;
  try {
    size_t used = 0;
    b.layer = std::stoll(s.substr(0, c1), &used);
    if (used != c1) throw std::invalid_argument("layer");
  } catch (const std::exception&) {
    bad_input("--bits '{}': the layer must be an integer", s);
  }
  if (b.layer < 0 || b.layer >= n_layers) bad_input("--bits '{}': layer {} is outside 0..{}", s, b.layer, n_layers - 1);
  const std::string point = s.substr(c1 + 1, c2 - c1 - 1);
  bool found = false;
  for (int p = 0; p < kNumObsPoints; ++p)
    if (obs_point_name(static_cast<ObsPoint>(p)) == point) {
      b.point = static_cast<ObsPoint>(p);
      found = true;
    }
  if (!found) bad_input("--bits '{}': point '{}' is not one of attn_in, o_in, mlp_in, down_in", s, point);
  b.sparsity = parse_fraction(s.substr(c2 + 1), "--bits " + s + ": the sparsity");
  return b;
}

// Writes each bitset as U8 [features, ceil(tokens / 8)], numpy packbits MSB first, 1 = |x| > t,
// under the key "layers.{l}.{point}.s{sparsity}" with the threshold in the metadata.
void write_bits(const fs::path& file, const std::vector<BitsSpec>& specs, const std::vector<BitsetRequest>& reqs,
                const std::vector<BitMatrix>& bits) {
  std::vector<std::vector<uint8_t>> packed(bits.size());
  std::vector<TensorToWrite> tensors;
  std::map<std::string, std::string> meta{{"format", "packbits MSB first, 1 = |x| > threshold, [features, tokens]"}};
  for (size_t i = 0; i < bits.size(); ++i) {
    const BitMatrix& b = bits[i];
    packed[i] = packed_from_bits(b);
    const std::string key = fmt::format("layers.{}.{}.s{}", specs[i].layer, obs_point_name(specs[i].point),
                                        sparsity_key(specs[i].sparsity));
    tensors.push_back({key, DType::U8, {b.rows(), (b.cols() + 7) / 8}, packed[i].data()});
    meta[key + ".threshold"] = fmt::format("{:.9g}", reqs[i].threshold);
  }
  write_safetensors(file, tensors, meta);
}

// "calib-tokens.safetensors:calib", or the --text file's name.
std::string calib_source(const ActsArgs& a) {
  return a.tokens.empty() ? fs::path(a.text).filename().string()
                          : fmt::format("{}:{}", fs::path(a.tokens).filename().string(), a.key);
}

json thresholds_json(const std::vector<ActivationThresholds>& ts) {
  json out = json::object();
  for (const ActivationThresholds& t : ts) {
    json layers = json::object();
    for (size_t l = 0; l < t.t.size(); ++l) {
      json points = json::object();
      for (int p = 0; p < kNumObsPoints; ++p) points[std::string(obs_point_name(static_cast<ObsPoint>(p)))] = t.t[l][p];
      layers[std::to_string(l)] = std::move(points);
    }
    out[sparsity_key(t.sparsity)] = std::move(layers);
  }
  return out;
}

// --thresholds-out: thresholds for sparse decoding (decode_thresholds from the dense profile of
// the same windows: one refinement pass on activations sparsified upstream, per target) with the
// model and calibration they belong to.
void write_thresholds(const ActsArgs& a, const Model& m, const TensorI32& calib, const ActivationProfile& profile,
                      std::vector<double> sparsities, const WindowRunner& runner) {
  std::sort(sparsities.begin(), sparsities.end());
  sparsities.erase(std::unique(sparsities.begin(), sparsities.end()), sparsities.end());
  constexpr int kPasses = 1;
  ThresholdsFile f;
  f.model = {fs::weakly_canonical(a.model).filename().string(), m.config.model_type, m.config.num_layers,
             m.config.hidden_size, m.config.intermediate_size};
  f.calibration = {calib_source(a), calib.dim(0), calib.dim(1), token_hash(calib.data), kPasses};
  Progress bar("acts decode thresholds", static_cast<int64_t>(sparsities.size()) * kPasses * calib.dim(0));
  int64_t done = 0;
  for (double s : sparsities) {
    f.sets.push_back(decode_thresholds(m, calib, profile, PointTargets{s, s, s, s}, kPasses,
                                       [&](int64_t d, int64_t) { bar.update(done + d); }, runner));
    f.sets.back().sparsity = s;
    done += kPasses * calib.dim(0);
  }
  bar.finish();
  write_thresholds_file(a.thresholds_out, f);
}

void print_text(const std::vector<ActivationThresholds>& ts, const json& ppl) {
  for (const ActivationThresholds& t : ts) {
    std::printf("sparsity %s%s\n%6s %10s %10s %10s %10s\n", sparsity_key(t.sparsity).c_str(),
                ppl.contains(sparsity_key(t.sparsity))
                    ? fmt::format(": perplexity {:.4f}", ppl[sparsity_key(t.sparsity)].get<double>()).c_str()
                    : "",
                "layer", "attn_in", "o_in", "mlp_in", "down_in");
    for (size_t l = 0; l < t.t.size(); ++l)
      std::printf("%6zu %10.5f %10.5f %10.5f %10.5f\n", l, t.t[l][0], t.t[l][1], t.t[l][2], t.t[l][3]);
  }
}

// The dense perplexity (no thresholds) or the one with activations sparsified at `t`.
PerplexityResult eval_ppl(const Model& m, const TensorI32& windows, const ActivationThresholds* t,
                          const DeviceOptions& device, const std::string& label) {
  Progress bar(label, windows.dim(0));
  PerplexityResult r = hint_out_of_memory("computing the perplexity", "try a smaller --eval-limit or --seqlen", [&] {
    const auto step = [&](int64_t done, int64_t) { bar.update(done); };
    return t ? sparsified_perplexity(m, windows, *t, device, step) : perplexity(m, windows, device, step);
  });
  bar.finish();
  return r;
}

// The file of the evaluation windows: --eval-tokens, else the --calib file ("" with --eval-text).
std::string eval_tokens_file(const ActsArgs& a) {
  if (!a.eval_text.empty()) return "";
  return a.eval_tokens.empty() ? a.tokens : a.eval_tokens;
}

// Their tensor: --eval-key, else "eval" ("" with --eval-text).
std::string eval_tensor(const ActsArgs& a) {
  if (!a.eval_text.empty()) return "";
  return a.eval_key.empty() ? "eval" : a.eval_key;
}

// The perplexities rows' dataset: "<file stem>:<eval key>" or the --eval-text file's stem.
std::string eval_dataset(const ActsArgs& a) {
  return a.eval_text.empty() ? eval_dataset_name(eval_tokens_file(a), eval_tensor(a), {})
                             : eval_dataset_name({}, "", a.eval_text);
}

// Adds the histograms, thresholds and perplexities as one acts run.
void record_acts(Store& store, const RunInfo& info, const ActivationProfile& profile,
                 const std::vector<ActivationThresholds>& thresholds, const std::vector<PerplexityRow>& ppl,
                 double total_seconds, double capture_seconds) {
  RunWriter w = store.begin_run(info);
  add_act_histogram_rows(w, profile);
  for (const ActivationThresholds& t : thresholds) add_act_threshold_rows(w, t);
  double eval_seconds = 0;
  for (const PerplexityRow& r : ppl) {
    w.add_perplexity(r);
    eval_seconds += r.seconds;
  }
  w.set_timings({.total = total_seconds, .forward = capture_seconds,
                 .eval = ppl.empty() ? std::nullopt : std::optional<double>(eval_seconds)});
  const int64_t id = w.run_id();
  w.commit();
  note_db_run("acts", store, id, true);
}

// The acts run of these arguments: the calibration windows, the targets, and the evaluation
// windows when perplexity is measured (" dense" when the dense perplexity is too).
RunInfo acts_info(const ActsArgs& a, const Model& m, const TensorI32& calib, std::span<const double> sparsities,
                  const TensorI32* eval_windows) {
  RunInfo info = model_run_info(RunKind::kActs, a.model, m.config);
  info.calib_description = calib_run_description(calib_source(a), calib);
  info.calib_hash = token_hash(calib.data);
  info.nsamples = calib.dim(0);
  info.seqlen = calib.dim(1);
  info.device = a.device.device;
  info.options = act_sparsities_option(sparsities);
  if (eval_windows) info.options += " " + eval_options(eval_dataset(a), *eval_windows) + (a.dense ? " dense" : "");
  if (!a.device.run_options().empty()) info.options += " " + a.device.run_options();
  return info;
}

// {"calib": {"source", "windows", "seqlen"}, "eval": {...} (when measured)} of --json.
void add_window_counts(json& out, const ActsArgs& a, const TensorI32& calib, const TensorI32* eval_windows) {
  out["calib"] = {{"source", calib_source(a)}, {"windows", calib.dim(0)}, {"seqlen", calib.dim(1)}};
  if (eval_windows) out["eval"] = {{"windows", eval_windows->dim(0)}, {"seqlen", eval_windows->dim(1)}};
}

// The thresholds that acts run `run` of --db holds, one per target of `sparsities` in its order.
std::vector<ActivationThresholds> stored_thresholds(const Store& store, int64_t run, std::span<const double> sparsities,
                                                    int64_t layers) {
  const nlohmann::json rows = stored_rows(
      store, fmt::format("SELECT target_sparsity, layer, point, threshold FROM act_thresholds WHERE run_id = {}", run));
  std::vector<ActivationThresholds> out;
  for (const double s : sparsities) {
    ActivationThresholds t{.sparsity = s, .t = std::vector<std::array<float, kNumObsPoints>>(static_cast<size_t>(layers))};
    for (const auto& r : rows) {
      const auto layer = r[1].get<int64_t>();
      if (r[0].get<double>() != s || layer < 0 || layer >= layers) continue;
      for (int p = 0; p < kNumObsPoints; ++p)
        if (obs_point_name(static_cast<ObsPoint>(p)) == r[2].get<std::string>())
          t.t[static_cast<size_t>(layer)][p] = static_cast<float>(r[3].get<double>());
    }
    out.push_back(std::move(t));
  }
  return out;
}

// What acts run `run` of --db holds, as --json prints it: thresholds, and the perplexities when it
// measured them ("ppl" per target, "ppl_dense"); no "seconds" (nothing was timed now).
json stored_acts(const Store& store, int64_t run, std::span<const double> sparsities, int64_t layers) {
  json out = {{"thresholds", thresholds_json(stored_thresholds(store, run, sparsities, layers))}};
  const nlohmann::json rows =
      stored_rows(store, fmt::format("SELECT kind, act_sparsity, ppl FROM perplexities WHERE run_id = {}", run));
  json ppl = json::object();
  for (const double s : sparsities)
    for (const auto& r : rows)
      if (r[0] == "act-sparsified" && r[1].is_number() && r[1].get<double>() == s) ppl[sparsity_key(s)] = r[2];
  for (const auto& r : rows)
    if (r[0] == "dense") out["ppl_dense"] = r[2];
  if (!ppl.empty()) out["ppl"] = ppl;
  return out;
}

void run_acts(const ActsArgs& a) {
  set_threads(a.threads);
  if (a.nsamples < 0 || a.eval_limit < 0 || a.seqlen < 0) bad_input("--nsamples, --eval-limit and --seqlen must be >= 0");
  if (!a.eval_key.empty() && a.tokens.empty() && a.eval_tokens.empty())
    bad_input("--eval-key needs --eval-tokens or --calib (the file that holds it)");
  if (!a.bits.empty() && a.bits_out.empty()) bad_input("--bits needs --bits-out FILE.safetensors");
  const NamedPath inputs[] = {{"--model", a.model},         {"--tokenizer", a.tokenizer},
                              {"--calib", a.tokens},        {"--calib-text", a.text},
                              {"--eval-tokens", a.eval_tokens}, {"--eval-text", a.eval_text},
                              {"--db", a.db}};
  if (!a.bits_out.empty()) refuse_output_over_inputs({"--bits-out", a.bits_out}, inputs);
  if (!a.thresholds_out.empty()) refuse_output_over_inputs({"--thresholds-out", a.thresholds_out}, inputs);
  std::vector<double> sparsities;
  for (const std::string& s : a.sparsities) sparsities.push_back(parse_fraction(s, "--act-sparsities"));
  const auto store = open_db(a.db);
  const auto t_start = Clock::now();
  const Model m = load_model(a.model);
  check_seqlen_flag(a.seqlen, m.config);
  std::vector<BitsSpec> bit_specs;
  for (const std::string& b : a.bits) bit_specs.push_back(parse_bits(b, m.config.num_layers));
  const TensorI32 calib = load_windows(a, a.tokens, a.key, a.text, m, a.nsamples);
  const bool eval = !a.eval_tokens.empty() || !a.eval_key.empty() || !a.eval_text.empty();
  const TensorI32 eval_windows =
      eval ? load_windows(a, eval_tokens_file(a), eval_tensor(a), a.eval_text, m, a.eval_limit) : TensorI32{};

  std::optional<RunInfo> info;
  std::optional<int64_t> stored;  // the run the database already holds
  if (store) {
    info = acts_info(a, m, calib, sparsities, eval ? &eval_windows : nullptr);
    stored = store->find_run(*info);
    // A stored run is reused unless a file is asked for (the database holds neither file).
    if (stored && a.thresholds_out.empty() && a.bits_out.empty()) {
      note_db_run("acts", *store, *stored, false);
      json out = stored_acts(*store, *stored, sparsities, m.config.num_layers);
      add_window_counts(out, a, calib, eval ? &eval_windows : nullptr);
      mark_reused(out, stored);
      if (a.json) return print_json(nlohmann::json(out));
      return print_text(stored_thresholds(*store, *stored, sparsities, m.config.num_layers), out.value("ppl", json::object()));
    }
  }

  json seconds = json::object();
  auto t0 = Clock::now();
  const DeviceOptions device = a.device.options();
  const std::unique_ptr<WindowRunner> runner = make_window_runner(device);
  ActivationProfile profile;
  {
    Progress bar("acts calibration", calib.dim(0));
    profile = hint_out_of_memory("capturing activations", "try a smaller --nsamples or --seqlen", [&] {
      return capture_activation_profile(m, calib, [&](int64_t done, int64_t) { bar.update(done); }, *runner);
    });
  }
  seconds["calibration"] = seconds_since(t0);
  std::vector<ActivationThresholds> thresholds;
  for (double s : sparsities) thresholds.push_back(profile.thresholds(s));
  if (!a.thresholds_out.empty()) write_thresholds(a, m, calib, profile, sparsities, *runner);

  json ppl = json::object(), ppl_seconds = json::object();
  std::vector<PerplexityRow> ppl_rows;  // for --db
  json out = {{"thresholds", thresholds_json(thresholds)}};
  if (eval && a.dense) {
    const PerplexityResult r = eval_ppl(m, eval_windows, nullptr, device, "acts dense");
    out["ppl_dense"] = r.ppl;
    ppl_seconds["dense"] = r.seconds;
    ppl_rows.push_back({eval_dataset(a), PplKind::kDense, std::nullopt, r.ppl, r.predicted_tokens, r.seconds});
  }
  for (const ActivationThresholds& t : thresholds) {
    if (!eval) break;
    const PerplexityResult r = eval_ppl(m, eval_windows, &t, device, "acts ppl @" + sparsity_key(t.sparsity));
    ppl[sparsity_key(t.sparsity)] = r.ppl;
    ppl_seconds[sparsity_key(t.sparsity)] = r.seconds;
    ppl_rows.push_back({eval_dataset(a), PplKind::kActSparsified, t.sparsity, r.ppl, r.predicted_tokens, r.seconds});
  }
  if (eval) {
    out["ppl"] = ppl;
    seconds["ppl"] = ppl_seconds;
  }
  if (!bit_specs.empty()) {
    t0 = Clock::now();
    std::vector<BitsetRequest> reqs;
    for (const BitsSpec& b : bit_specs) reqs.push_back({b.layer, b.point, profile.at(b.layer, b.point).threshold(b.sparsity)});
    Progress bar("acts bitsets", calib.dim(0));
    const std::vector<BitMatrix> bits =
        capture_activation_bits(m, calib, reqs, [&](int64_t done, int64_t) { bar.update(done); }, *runner);
    bar.finish();
    write_bits(a.bits_out, bit_specs, reqs, bits);
    seconds["bitsets"] = seconds_since(t0);
  }
  if (stored) note_db_run("acts", *store, *stored, false);
  else if (store) record_acts(*store, *info, profile, thresholds, ppl_rows, seconds_since(t_start), seconds["calibration"].get<double>());
  add_window_counts(out, a, calib, eval ? &eval_windows : nullptr);
  out["seconds"] = seconds;
  if (a.device.cuda()) out.update(a.device.describe());
  if (a.json) print_json(nlohmann::json(out));
  else print_text(thresholds, ppl);
}

}  // namespace

void register_acts(CLI::App& app) {
  auto args = std::make_shared<ActsArgs>();
  args->model = default_model_path().string();
  auto* cmd = app.add_subcommand(
      "acts", "Activation sparsity: per-block thresholds at attn_in (q/k/v input), o_in, mlp_in (gate/up input) and "
              "down_in for target sparsities (t = the |x| below which a fraction s of the calibration activations "
              "falls), perplexity with every |x| <= t zeroed, and binary activation matrices |x| > t");
  cmd->add_option("--model", args->model, "HF checkpoint folder or llama2.c .bin")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer,
                  "tokenizer.json for --calib-text / --eval-text (default: the model folder's)");
  auto* tokens = cmd->add_option("--calib", args->tokens, std::string("calibration tokens: int32 safetensors [n_samples, seqlen]") + kDefaultCalibrationHelp);
  cmd->add_option("--calib-key", args->key, "tensor in --calib")->capture_default_str();
  cmd->add_option("--calib-text", args->text,
                  "or: a calibration text file, tokenized and cut into consecutive --seqlen windows")
      ->excludes(tokens);
  cmd->add_option("--seqlen", args->seqlen, "window length (default: the row length of --calib, or the model's context)");
  cmd->add_option("--nsamples", args->nsamples, "use only the first N calibration windows (default: all)");
  list_option(cmd->add_option("--act-sparsities", args->sparsities, "target activation sparsities in (0, 1), a list"))
      ->capture_default_str();
  auto* eval_tokens = cmd->add_option("--eval-tokens", args->eval_tokens,
                                      "evaluation windows: int32 safetensors [n, seqlen] (default: the --calib file); "
                                      "evaluating measures perplexity with activations sparsified at each target");
  auto* eval_key = cmd->add_option("--eval-key", args->eval_key,
                                   "tensor in --eval-tokens (default when evaluating: eval); giving it evaluates");
  cmd->add_option("--eval-text", args->eval_text, "or: evaluation text file, tokenized and cut into --seqlen windows")
      ->excludes(eval_key)
      ->excludes(eval_tokens);
  cmd->add_option("--eval-limit", args->eval_limit, "evaluate only the first N windows (0 = all)");
  rename_option(cmd, "--tokens", "--calib");
  rename_option(cmd, "--key", "--calib-key");
  rename_option(cmd, "--text", "--calib-text");
  rename_option(cmd, "--sparsities", "--act-sparsities");
  cmd->add_flag("--dense", args->dense, "also measure the dense model's perplexity (\"ppl_dense\")");
  list_option(cmd->add_option("--bits", args->bits,
                              "LAYER:POINT:SPARSITY, a list (e.g. 0:down_in:0.5): capture the binary activation "
                              "matrix |x| > t [features, tokens] of the calibration windows"));
  cmd->add_option("--thresholds-out", args->thresholds_out,
                  "write thresholds for sparse decoding at every --act-sparsities target to this JSON file, with the "
                  "model and calibration they belong to, for `sparsa generate --act-sparsity S --thresholds FILE`; "
                  "each target is re-calibrated once on activations sparsified upstream (one more pass over the "
                  "windows per target; docs/sparse-decode.md)");
  cmd->add_option("--bits-out", args->bits_out,
                  "safetensors file for --bits: U8 [features, ceil(tokens / 8)], packbits MSB first, 1 = active, "
                  "keys layers.{l}.{point}.s{sparsity}");
  cmd->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  add_device_options(cmd, args->device);
  add_db_option(cmd, args->db,
                "an acts run (histograms per layer and point, thresholds per layer x point x target, the perplexities "
                "measured); --bits files are not stored");
  cmd->add_flag("--json", args->json,
                "print {\"thresholds\": {s: {layer: {point: t}}}, \"ppl\": {s: ppl}, ...} as JSON on stdout");
  cmd->callback([args] {
    if (args->tokens.empty() && args->text.empty()) args->tokens = default_calibration_file().string();
    run_acts(*args);
  });
}
SPARSA_COMMAND(70, register_acts);

}  // namespace sparsa::cli
