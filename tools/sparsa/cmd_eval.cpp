// sparsa eval: perplexity of a model on token windows or a text file.
#include <chrono>
#include <cstdio>
#include <optional>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/error.h"
#include "sparsa/eval_set.h"
#include "sparsa/model.h"
#include "sparsa/mask_compare.h"
#include "sparsa/progress.h"
#include "sparsa/runs.h"

namespace sparsa::cli {
namespace {

struct EvalArgs {
  std::string model, tokenizer, tokens, key = "eval", text, db;
  DeviceArgs device;
  int64_t seqlen = 0, limit = 0;
  int threads = 0;
  bool json = false;
};

std::filesystem::path text_path(const EvalArgs& a) {
  return a.text.empty() ? default_data_file("persuasion.txt")
                        : std::filesystem::path(a.text);
}

// The evaluation windows [n, seqlen] from --tokens/--key or --text.
TensorI32 eval_windows(const EvalArgs& a, const Model& m) {
  check_seqlen_flag(a.seqlen, m.config);
  EvalSetSpec spec;
  spec.tokens_file = a.tokens;
  spec.key = a.key;
  if (a.tokens.empty()) {
    spec.text_file = text_path(a);
    spec.tokenizer = tokenizer_path_for(a.model, a.tokenizer);
  }
  spec.seqlen = a.seqlen;
  spec.limit = a.limit;
  return load_eval_windows(spec, m.config);
}

// What --db records: a dense run, or for a pruned folder (summary.json + masks.safetensors) its
// prune run with this evaluation (the folder's identity + the evaluation windows).
struct EvalRun {
  RunInfo info;
  std::string dataset;  // the perplexities row's
  std::optional<MaskSetOrigin> pruned;
};

EvalRun eval_run(const EvalArgs& a, const Model& m, const TensorI32& windows) {
  namespace fs = std::filesystem;
  EvalRun r;
  r.dataset = eval_dataset_name(a.tokens, a.key, a.tokens.empty() ? text_path(a) : fs::path());
  if (fs::is_directory(a.model) && PrunedFolder(a.model).is_finished()) {
    r.pruned = mask_set_origin(a.model);
    r.info = r.pruned->info;
    r.info.options += (r.info.options.empty() ? "" : " ") + eval_options(r.dataset, windows);
  } else {
    r.info = model_run_info(RunKind::kDense, a.model, m.config);
    r.info.seqlen = windows.dim(1);
    r.info.device = a.device.device;
    r.info.options = eval_options(r.dataset, windows);
  }
  if (!a.device.run_options().empty()) r.info.options += " " + a.device.run_options();
  return r;
}

// Adds the evaluation (and, for a pruned folder, its masks) as one run.
void record_eval(Store& store, const EvalArgs& a, const EvalRun& run, const PerplexityResult& r, double total_seconds) {
  RunWriter w = store.begin_run(run.info);
  RunTimings timings{.total = total_seconds, .eval = r.seconds};
  if (run.pruned) {
    add_mask_set_rows(w, MaskSet::open(a.model), run.pruned->matrix_seconds);
    timings = run.pruned->timings;
    timings.total = timings.total.value_or(0) + total_seconds;
    timings.eval = r.seconds;
  }
  w.add_perplexity({run.dataset, run.pruned ? PplKind::kPruned : PplKind::kDense, std::nullopt, r.ppl, r.predicted_tokens,
                    r.seconds});
  w.set_timings(timings);
  const int64_t id = w.run_id();
  w.commit();
  note_db_run("eval", store, id, true);
}

void run_eval(const EvalArgs& a) {
  const DeviceOptions device = a.device.options();
  set_threads(a.threads);
  if (a.limit < 0) bad_input("--limit must be >= 0 (0 = every window), got {}", a.limit);
  const auto store = open_db(a.db);
  const auto t0 = std::chrono::steady_clock::now();
  const Model m = load_model(a.model);
  const TensorI32 windows = eval_windows(a, m);
  std::optional<EvalRun> run;
  if (store) {
    run = eval_run(a, m, windows);
    if (const auto id = store->find_run(run->info)) return note_db_run("eval", *store, *id, false);
  }
  Progress bar("eval", windows.dim(0));
  const auto on_window = [&](int64_t done, int64_t) { bar.update(done); };
  const PerplexityResult r = hint_out_of_memory("computing the perplexity", "try a smaller --limit or --seqlen",
                                                [&] { return perplexity(m, windows, device, on_window); });
  bar.finish();
  if (store) record_eval(*store, a, *run, r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  const int64_t tokens = windows.dim(0) * windows.dim(1);
  if (a.json) {
    nlohmann::json out = {{"ppl", r.ppl},
                {"tokens", tokens},
                {"seconds", r.seconds},
                {"predicted_tokens", r.predicted_tokens},
                {"windows", r.windows},
                {"seqlen", windows.dim(1)},
                {"mean_nll", r.mean_nll},
                {"tokens_per_second", static_cast<double>(tokens) / r.seconds},
                {"model", m.source.string()}};
    out.update(a.device.describe());
    print_json(out);
  } else {
    std::printf("perplexity %.4f over %lld windows x %lld tokens (%.1f s, %.0f tokens/s)\n", r.ppl,
                static_cast<long long>(r.windows), static_cast<long long>(windows.dim(1)), r.seconds,
                static_cast<double>(tokens) / r.seconds);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  args->model = default_model_path().string();
  auto* cmd = app.add_subcommand("eval", "Perplexity of a model on held-out text (exp of the mean next-token NLL "
                                         "over non-overlapping windows, no BOS, no sliding)");
  cmd->add_option("--model", args->model, "HF checkpoint folder or llama2.c .bin")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json (default: the model folder's)");
  auto* tokens = cmd->add_option("--tokens", args->tokens, "int32 safetensors of windows [n, seqlen]");
  cmd->add_option("--key", args->key, "tensor in --tokens")->capture_default_str();
  cmd->add_option("--text", args->text, "text file to tokenize and cut into windows (default: the bundled "
                                        "data/persuasion.txt)")->excludes(tokens);
  cmd->add_option("--seqlen", args->seqlen, "window length (default: the --tokens row length, or the model's context)");
  cmd->add_option("--limit", args->limit, "evaluate only the first N windows");
  add_device_options(cmd, args->device);
  cmd->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  add_db_option(cmd, args->db,
                "the perplexity: a dense run, or for a `sparsa prune` folder its prune run with this evaluation (masks "
                "and perplexity)");
  cmd->add_flag("--json", args->json, "print {\"ppl\", \"tokens\", \"seconds\", ...} as JSON on stdout");
  cmd->callback([args] { run_eval(*args); });
}
SPARSA_COMMAND(20, register_eval);

}  // namespace sparsa::cli
