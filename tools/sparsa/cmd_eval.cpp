// sparsa eval: perplexity of a model on token windows or a text file, or its zero-shot accuracy on a
// multiple-choice task (--task).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/eval_set.h"
#include "sparsa/input_file.h"
#include "sparsa/mask_compare.h"
#include "sparsa/model.h"
#include "sparsa/progress.h"
#include "sparsa/runs.h"
#include "sparsa/tasks.h"

namespace sparsa::cli {
namespace {

struct EvalArgs {
  std::string model, tokenizer, tokens, key = "eval", text, db, task, out;
  DeviceArgs device;
  int64_t seqlen = 0, limit = 0;
  int threads = 0;
  bool json = false;
};

std::filesystem::path text_path(const EvalArgs& a) {
  return a.text.empty() ? default_data_file("persuasion.txt")
                        : std::filesystem::path(a.text);
}

// The evaluation windows [n, seqlen] from --eval-tokens/--eval-key or --eval-text.
TensorI32 eval_windows(const EvalArgs& a, const Model& m) {
  check_seqlen_flag(a.seqlen, m.config);
  EvalSetSpec spec;
  spec.tokens_file = a.tokens;
  spec.key = a.key;
  if (a.tokens.empty()) {
    spec.text_file = text_path(a);
    spec.tokenizer = tokenizer_path_for(a.model, a.tokenizer);
  } else {
    spec.tokenizer = known_tokenizer_for(a.model, a.tokenizer);
  }
  spec.seqlen = a.seqlen;
  spec.limit = a.limit;
  return load_eval_windows(spec, m.config);
}

// The perplexities row's dataset name of the windows.
std::string dataset_name(const EvalArgs& a) {
  return eval_dataset_name(a.tokens, a.key, a.tokens.empty() ? text_path(a) : std::filesystem::path());
}

// What --db records: a dense run, or for a pruned folder (summary.json + masks.safetensors) its
// prune run with this evaluation (the folder's identity + the evaluation windows).
struct EvalRun {
  RunInfo info;
  std::optional<MaskSetOrigin> pruned;
};

// `evaluation`: what the run measured (eval_options / task_options); seqlen: its windows' length
// (0 for tasks).
EvalRun eval_run(const EvalArgs& a, const Model& m, const std::string& evaluation, int64_t seqlen) {
  namespace fs = std::filesystem;
  EvalRun r;
  if (is_folder(a.model) && PrunedFolder(a.model).is_finished()) {
    r.pruned = mask_set_origin(a.model);
    r.info = r.pruned->info;
    r.info.options += (r.info.options.empty() ? "" : " ") + evaluation;
  } else {
    r.info = model_run_info(RunKind::kDense, a.model, m.config);
    r.info.seqlen = seqlen;
    r.info.device = a.device.device;
    r.info.options = evaluation;
  }
  if (!a.device.run_options().empty()) r.info.options += " " + a.device.run_options();
  return r;
}

// Adds the evaluation (and, for a pruned folder, its masks) as one run; `add_rows` adds what was
// measured, which took `eval_seconds`.
void record_eval(Store& store, const EvalArgs& a, const EvalRun& run, double eval_seconds, double total_seconds,
                 const std::function<void(RunWriter&)>& add_rows) {
  RunWriter w = store.begin_run(run.info);
  RunTimings timings{.total = total_seconds, .eval = eval_seconds};
  if (run.pruned) {
    add_mask_set_rows(w, MaskSet::open(a.model), run.pruned->matrix_seconds);
    timings = run.pruned->timings;
    timings.total = timings.total.value_or(0) + total_seconds;
    timings.eval = eval_seconds;
  }
  add_rows(w);
  w.set_timings(timings);
  const int64_t id = w.run_id();
  w.commit();
  note_db_run("eval", store, id, true);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double number_or(const nlohmann::json& v, double fallback) { return v.is_number() ? v.get<double>() : fallback; }

// The perplexity that run `run` of --db holds for these windows (an evaluation it already did).
PerplexityResult stored_perplexity(const Store& store, int64_t run, const std::string& dataset, const TensorI32& windows) {
  const nlohmann::json rows = stored_rows(
      store, fmt::format("SELECT ppl, tokens, seconds FROM perplexities WHERE run_id = {} AND dataset = {} AND kind IN "
                         "('dense', 'pruned') LIMIT 1",
                         run, sql_string(dataset)));
  if (rows.empty()) runtime_failure("{}: run {} holds no perplexity of {}", store.path().string(), run, dataset);
  PerplexityResult r;
  r.ppl = rows[0][0].get<double>();
  r.mean_nll = std::log(r.ppl);
  r.predicted_tokens = rows[0][1].get<int64_t>();
  r.windows = windows.dim(0);
  r.seconds = number_or(rows[0][2], 0.0);
  return r;
}

// The task scores that run `run` of --db holds (no per-item scores: those are its task_choices rows).
nlohmann::json stored_task_score(const Store& store, int64_t run, const std::string& task) {
  const nlohmann::json rows = stored_rows(
      store, fmt::format("SELECT task, items, acc, acc_stderr, acc_norm, acc_norm_stderr, chance, truncated, seconds "
                         "FROM task_scores WHERE run_id = {} AND task = {}",
                         run, sql_string(task)));
  if (rows.empty()) runtime_failure("{}: run {} holds no scores of task {}", store.path().string(), run, task);
  const nlohmann::json& r = rows[0];
  return {{"task", r[0]},      {"n", r[1]},        {"acc", r[2]},       {"acc_stderr", r[3]}, {"acc_norm", r[4]},
          {"acc_norm_stderr", r[5]}, {"chance", r[6]}, {"truncated", r[7]}, {"seconds", r[8]}};
}

// --task's result on stdout (and in --out): `out` as task_score_json writes it.
void print_task_result(const EvalArgs& a, nlohmann::json out) {
  if (!a.out.empty()) {
    AtomicFile f(a.out);
    f.write(out.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    f.commit();
  }
  if (a.json) return print_json(out);
  const auto number = [&](const char* key) { return number_or(out[key], std::nan("")); };
  std::printf("%s: acc %.4f ± %.4f, acc_norm %.4f ± %.4f over %lld items (chance %.4f); %lld truncated to the "
              "model's context", out["task"].get<std::string>().c_str(), number("acc"), number("acc_stderr"),
              number("acc_norm"), number("acc_norm_stderr"), out["n"].get<long long>(), number("chance"),
              out["truncated"].get<long long>());
  if (out.contains("forwards"))
    std::printf("; %lld forward passes, %.1f s\n", out["forwards"].get<long long>(), number("seconds"));
  else
    std::printf("; already scored by run %lld\n", out["run"].get<long long>());
}

// --task: zero-shot accuracy on a multiple-choice task (sparsa/tasks.h), on --device.
void run_task(const EvalArgs& a) {
  set_threads(a.threads);
  if (a.limit < 0) bad_input("--eval-limit must be >= 0 (0 = every item), got {}", a.limit);
  if (!a.out.empty()) {
    const NamedPath inputs[] = {{"--task", a.task}, {"--model", a.model}, {"--db", a.db}};
    refuse_output_over_inputs({"--out", a.out}, inputs);
  }
  const auto store = open_db(a.db);
  const auto t0 = std::chrono::steady_clock::now();
  const Model m = load_model(a.model);
  const Task task = load_task(a.task);
  const auto tokenizer = HfTokenizer::load(tokenizer_path_for(a.model, a.tokenizer));
  const EncodedTask encoded = encode_task(task, *tokenizer, m.config, a.limit);
  std::optional<EvalRun> run;
  if (store) {
    run = eval_run(a, m, task_options({&encoded, 1}), 0);
    if (const auto id = store->find_run(run->info)) {
      note_db_run("eval", *store, *id, false);
      nlohmann::json out = stored_task_score(*store, *id, task.name);
      out["file"] = a.task;
      out["model"] = m.source.string();
      mark_reused(out, id);
      return print_task_result(a, std::move(out));
    }
  }
  int64_t choices = 0;
  for (const EncodedItem& e : encoded.items) choices += static_cast<int64_t>(e.choices.size());
  Progress bar("eval", choices);
  const TaskScore r = hint_out_of_memory("scoring the task", "try a smaller --eval-limit",
                                         [&] {
                                           return score_task(m, encoded, a.device.options(),
                                                             [&](int64_t done, int64_t) { bar.update(done); });
                                         });
  bar.finish();
  if (store) record_eval(*store, a, *run, r.seconds, seconds_since(t0), [&](RunWriter& w) { add_task_rows(w, r); });
  nlohmann::json out = task_score_json(r, /*items=*/true);
  out["file"] = a.task;
  out["model"] = m.source.string();
  print_task_result(a, std::move(out));
}

// The perplexity on stdout: --json's object or one line. `reused_run`: the --db run that already
// held it (its stored perplexity; the JSON says "reused": true and names the run).
void print_perplexity(const EvalArgs& a, const Model& m, const TensorI32& windows, const PerplexityResult& r,
                      std::optional<int64_t> reused_run) {
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
    mark_reused(out, reused_run);
    print_json(out);
  } else {
    std::printf("perplexity %.4f over %lld windows x %lld tokens (%.1f s, %.0f tokens/s)\n", r.ppl,
                static_cast<long long>(r.windows), static_cast<long long>(windows.dim(1)), r.seconds,
                static_cast<double>(tokens) / r.seconds);
  }
}

void run_eval(const EvalArgs& a) {
  if (!a.task.empty()) return run_task(a);
  if (!a.out.empty()) bad_input("--out writes the per-item scores of --task; without --task use --json");
  const DeviceOptions device = a.device.options();
  set_threads(a.threads);
  if (a.limit < 0) bad_input("--eval-limit must be >= 0 (0 = every window), got {}", a.limit);
  const auto store = open_db(a.db);
  const auto t0 = std::chrono::steady_clock::now();
  const Model m = load_model(a.model);
  const TensorI32 windows = eval_windows(a, m);
  std::optional<EvalRun> run;
  if (store) {
    run = eval_run(a, m, eval_options(dataset_name(a), windows), windows.dim(1));
    if (const auto id = store->find_run(run->info)) {
      note_db_run("eval", *store, *id, false);
      return print_perplexity(a, m, windows, stored_perplexity(*store, *id, dataset_name(a), windows), id);
    }
  }
  Progress bar("eval", windows.dim(0));
  const auto on_window = [&](int64_t done, int64_t) { bar.update(done); };
  const PerplexityResult r = hint_out_of_memory("computing the perplexity", "try a smaller --eval-limit or --seqlen",
                                                [&] { return perplexity(m, windows, device, on_window); });
  bar.finish();
  if (store) {
    const PerplexityRow row{dataset_name(a), run->pruned ? PplKind::kPruned : PplKind::kDense, std::nullopt, r.ppl,
                            r.predicted_tokens, r.seconds};
    record_eval(*store, a, *run, r.seconds, seconds_since(t0), [&](RunWriter& w) { w.add_perplexity(row); });
  }
  print_perplexity(a, m, windows, r, std::nullopt);
}

}  // namespace

void register_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  args->model = default_model_path().string();
  auto* cmd = app.add_subcommand("eval", "Perplexity of a model on held-out text (exp of the mean next-token NLL "
                                         "over non-overlapping windows, no BOS, no sliding), or with --task its "
                                         "zero-shot accuracy on a multiple-choice task");
  cmd->add_option("--model", args->model, "HF checkpoint folder or llama2.c .bin")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json (default: the model folder's)");
  auto* tokens = cmd->add_option("--eval-tokens", args->tokens, "evaluation windows: int32 safetensors [n, seqlen]");
  cmd->add_option("--eval-key", args->key, "tensor in --eval-tokens")->capture_default_str();
  auto* text = cmd->add_option("--eval-text", args->text, "or: evaluation text file, tokenized and cut into windows "
                                        "(default: the bundled data/persuasion.txt)")->excludes(tokens);
  auto* seqlen = cmd->add_option("--seqlen", args->seqlen,
                                 "window length (default: the --eval-tokens row length, or the model's context)");
  cmd->add_option("--eval-limit", args->limit,
                  "evaluate only the first N windows (with --task: the first N items); 0 = all");
  rename_option(cmd, "--tokens", "--eval-tokens");
  rename_option(cmd, "--key", "--eval-key");
  rename_option(cmd, "--text", "--eval-text");
  rename_option(cmd, "--limit", "--eval-limit");
  cmd->add_option("--task", args->task,
                  "zero-shot multiple-choice task instead of perplexity: JSON Lines, one item per line "
                  "{\"context\": str, \"choices\": [str, ...], \"gold\": int} (optional \"id\"); each choice is scored by "
                  "the summed log-probability of its tokens after the context (tokenized as lm-evaluation-harness "
                  "does; contexts longer than the model's are cut from the left and counted as truncated); reports "
                  "acc, acc_norm (log-likelihood / characters of the choice), their standard errors and n. "
                  "One forward pass per choice (on the GPU with --device cuda, choices padded to one length). Format: docs/tasks.md; example: data/tasks/persuasion-next.jsonl")
      ->excludes(tokens)
      ->excludes(text)
      ->excludes(seqlen);
  cmd->add_option("--out", args->out, "with --task: also write the JSON result with per-item scores to this file");
  add_device_options(cmd, args->device);
  cmd->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  add_db_option(cmd, args->db,
                "the perplexity (or --task's scores): a dense run, or for a `sparsa prune` folder its prune run with "
                "this evaluation (masks and perplexity or task scores)");
  cmd->add_flag("--json", args->json,
                "print {\"ppl\", \"tokens\", \"seconds\", ...} as JSON on stdout (with --task: {\"acc\", \"acc_norm\", "
                "\"acc_stderr\", \"acc_norm_stderr\", \"n\", \"truncated\", \"items\": [per-item scores], ...})");
  cmd->callback([args] { run_eval(*args); });
}
SPARSA_COMMAND(20, register_eval);

}  // namespace sparsa::cli
