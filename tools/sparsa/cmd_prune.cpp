// sparsa prune: magnitude / Wanda / SparseGPT pruning of a Hugging Face checkpoint, written as
// a new checkpoint folder + masks.safetensors (the golden mask format) + summary.json.
//
// The output is assembled in a sibling folder "<out>.tmp-<pid>" (StagingDir, sparsa/atomic_file.h)
// and renamed into place at the very end, so an interrupted or failed run never leaves a folder
// that looks complete. Each finished block is checkpointed in "<out>.partial/" (PruneResume,
// sparsa/prune_resume.h): a rerun with the same arguments resumes after the last finished block.
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/ranges.h>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/calibration.h"
#include "sparsa/checkpoint.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/model.h"
#include "sparsa/progress.h"
#include "sparsa/prune.h"
#include "sparsa/prune_resume.h"
#include "sparsa/runs.h"
#include "sparsa/safetensors.h"
#include "sparsa/tokenizer.h"

namespace sparsa::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // summary.json keeps a readable key order
using Clock = std::chrono::steady_clock;


struct PruneArgs {
  std::string model, method, sparsity, nm, calib, calib_key = "calib", out, dtype = "keep", db;
  DeviceArgs device;
  std::vector<std::string> calib_text;
  int64_t nsamples = 128, seqlen = 0, blocksize = 128;
  double percdamp = 0.01;
  uint64_t seed = 0;
  int threads = 0;
  bool nsamples_given = false, force = false, json = false, restart = false, sparsity_config = false;
};

// ---- flags ----

SparsityTarget target_from_args(const PruneArgs& a) {
  if (a.sparsity.empty() == a.nm.empty())
    bad_input("pass exactly one of --sparsity F (unstructured, e.g. 0.5) or --nm N:M (e.g. 2:4)");
  refuse_nm_for_fraction("--sparsity", a.sparsity, fmt::format("pass --nm {} (--sparsity takes an unstructured fraction such as 0.5)", a.sparsity));
  refuse_fraction_for_nm("--nm", a.nm, fmt::format("pass --sparsity {} (--nm takes N:M such as 2:4)", a.nm));
  if (a.nm.empty()) return rephrase_bad_input("--sparsity: ", "", [&] { return parse_sparsity(a.sparsity); });
  return rephrase_bad_input("--nm: ", "", [&] { return parse_nm(a.nm); });
}

void check_numeric_flags(const PruneArgs& a) {
  if (a.nsamples < 1) bad_input("--nsamples must be at least 1, got {}", a.nsamples);
  if (a.seqlen < 0) bad_input("--seqlen must be at least 1, got {}", a.seqlen);
  if (a.blocksize < 1) bad_input("--blocksize must be at least 1, got {}", a.blocksize);
  if (!std::isfinite(a.percdamp) || a.percdamp < 0) bad_input("--percdamp must be a number >= 0, got {}", a.percdamp);
}

void check_calibration_flags(const PruneArgs& a) {
  if (!a.calib.empty() && !a.calib_text.empty()) bad_input("--calib and --calib-text are alternatives; pass one");
}

// The HF folder to prune; a llama2.c .bin is refused (its output could not carry HF names).
fs::path hf_model_folder(const std::string& model) {
  if (!path_exists(model)) bad_input("--model {}: no such folder", model);
  if (!is_folder(model))
    bad_input("--model {}: a llama2.c checkpoint cannot be pruned; prune needs a Hugging Face folder "
              "(config.json + safetensors) so the output keeps the HF tensor names", model);
  if (!path_exists(fs::path(model) / "config.json")) bad_input("--model {}: no config.json in the folder", model);
  return model;
}

// ---- the output folder ----

// Absolute, normalised, without a trailing separator (so ".tmp-<pid>" lands beside it).
fs::path normalized_dir(const std::string& dir) {
  if (dir.empty()) bad_input("--out must name a folder");
  fs::path p = fs::absolute(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p;
}

// Before anything is opened: no input may lie inside --out (or its staging and resume folders),
// which a run replaces.
void check_inputs_outside_out(const PruneArgs& a, const fs::path& out, const fs::path& model) {
  if (path_within(fs::current_path(), out))
    bad_input("--out {}: is the current folder or one above it; name a new folder for the pruned checkpoint", out.string());
  std::vector<NamedPath> inputs = {{"--model", model}, {"--calib", a.calib}, {"--db", a.db}};
  for (const std::string& f : a.calib_text) inputs.push_back({"--calib-text", f});
  refuse_output_over_inputs({"--out", out}, inputs);
}

// --out may be replaced when empty, and with --force when it is an earlier prune's folder.
void check_out_dir(const fs::path& out, bool force) {
  if (path_exists(out) && !is_folder(out)) bad_input("--out {}: exists and is not a folder", out.string());
  if (is_nonempty_folder(out) && !force)
    bad_input("--out {}: the folder exists and is not empty (pass --force to replace it)", out.string());
  check_folder_replaceable({"--out", out}, PrunedFolder(out).summary_file().filename().string());
}

// ---- calibration ----

Calibration load_calibration_for(const PruneArgs& a, const ModelConfig& config) {
  CalibrationSpec spec;
  spec.tokens_file = a.calib;
  spec.key = a.calib_key;
  spec.text_files.assign(a.calib_text.begin(), a.calib_text.end());
  spec.tokenizer = a.calib_text.empty() ? known_tokenizer_for(a.model, "") : tokenizer_path_for(a.model, "");
  spec.nsamples = a.nsamples;
  spec.nsamples_given = a.nsamples_given;
  spec.seqlen = a.seqlen;
  spec.seed = a.seed;
  return load_calibration(spec, config);
}

// ---- outputs ----

std::string target_text(const SparsityTarget& t) {
  return t.is_nm() ? fmt::format("{}:{}", t.n, t.m) : fmt::format("{:g} unstructured", t.ratio);
}

// The way out of a refusal to resume (another run's or a corrupt "<out>.partial/").
constexpr std::string_view kRestartHint = "; pass --restart to discard the interrupted run";

// The prune run of these arguments (the study's identity: sparsa/runs.h prune_run_info) with its
// masks in `out`, recorded in summary.json as "run" and added to --db.
RunInfo prune_info(const PruneArgs& a, const fs::path& model_dir, const ModelConfig& config, const PruneOptions& opt,
                   const Calibration& calib, const fs::path& out) {
  RunInfo base = model_run_info(RunKind::kPrune, model_dir, config);
  base.device = a.device.device;
  if (needs_calibration(opt.method)) {
    base.calib_description = calib_run_description(calib.description.value("file", std::string("text")), calib.tokens);
    base.calib_hash = token_hash(calib.tokens.data);
    base.nsamples = calib.tokens.dim(0);
    base.seqlen = calib.tokens.dim(1);
  }
  RunInfo info = prune_run_info(base, opt.method, opt.target, opt.blocksize, opt.percdamp);
  if (!a.device.run_options().empty()) info.options += (info.options.empty() ? "" : " ") + a.device.run_options();
  info.mask_file = PrunedFolder(out).mask_file();
  return info;
}

// True when `out` is a finished prune folder of the run `info` (its summary.json records it).
bool holds_run(const fs::path& out, const RunInfo& info) {
  if (!PrunedFolder(out).is_finished()) return false;
  try {
    return run_key(mask_set_origin(out).info) == run_key(info);
  } catch (const Error&) {
    return false;
  }
}

// What the checkpoint's config.json says of its sparsity (sparsa/checkpoint.h).
SparsityMetadata sparsity_metadata(const SparsityTarget& target, const PruneResult& r) {
  SparsityMetadata s;
  s.structure = target.is_nm() ? fmt::format("{}:{}", target.n, target.m) : "unstructured";
  for (const LinearPruneResult& l : r.linears) s.pruned_modules.push_back(l.name);
  return s;
}

void add_prune_run(Store& store, const RunInfo& info, const PruneResult& r) {
  RunWriter w = store.begin_run(info);
  add_prune_rows(w, r);
  w.set_timings({.total = r.timings.total, .forward = r.timings.forward, .stats = r.timings.stats,
                 .select = r.timings.select});
  const int64_t id = w.run_id();
  w.commit();
  note_db_run("prune", store, id, true);
}

// The result on stdout: --json's object or one line. `reused_run`: the --db run that already held
// it (the folder's summary.json is then the result; the JSON says "reused": true and names the run).
void print_result(const PruneArgs& a, const PruneSummary& summary, const fs::path& out, std::optional<int64_t> reused_run) {
  const std::string method(summary.method ? prune_method_name(*summary.method) : "");
  if (a.json) {
    json compact = {{"method", method},
                    {"target", summary.target ? target_json(*summary.target) : json(nullptr)},
                    {"sparsity", summary.overall_sparsity},
                    {"matrices", summary.matrices.size()},
                    {"calibration", summary.calibration},
                    {"timings", stage_seconds_json(summary.timings)},
                    {"out", out.string()}};
    mark_reused(compact, reused_run);
    return print_json(nlohmann::json(compact));
  }
  std::printf("%s %zu matrices with %s %s: overall sparsity %.4f (prune %.1f s, save %.1f s) -> %s\n",
              reused_run ? "already pruned" : "pruned", summary.matrices.size(), method.c_str(),
              summary.target ? target_text(*summary.target).c_str() : "", summary.overall_sparsity,
              summary.timings.total.value_or(0), summary.timings.save.value_or(0), out.string().c_str());
}

void run_prune(const PruneArgs& a) {
  const DeviceOptions device = a.device.options();
  set_threads(a.threads);
  PruneOptions opt;
  opt.method = parse_prune_method(a.method);
  opt.target = target_from_args(a);
  opt.blocksize = a.blocksize;
  opt.percdamp = a.percdamp;
  check_numeric_flags(a);
  if (opt.method == PruneMethod::kSparseGPT)
    rephrase_bad_input("--blocksize: ", "", [&] { check_sparsegpt_blocksize(opt.blocksize, opt.target); });
  check_calibration_flags(a);
  const std::optional<DType> weight_dtype = parse_weight_dtype(a.dtype);
  const fs::path model_dir = hf_model_folder(a.model);
  const fs::path out = normalized_dir(a.out);
  check_inputs_outside_out(a, out, model_dir);
  const auto store = open_db(a.db);

  const auto t_load = Clock::now();
  const ModelConfig config = load_hf_config(model_dir / "config.json");
  if (a.seqlen > config.max_position)
    bad_input("--seqlen {} is above the model's context length {}", a.seqlen, config.max_position);
  const bool calibrated = needs_calibration(opt.method);
  const Calibration calib = calibrated ? load_calibration_for(a, config) : Calibration{};
  const RunInfo info = prune_info(a, model_dir, config, opt, calib, out);
  const int64_t existing = store ? store->find_run(info).value_or(0) : 0;  // run ids start at 1
  if (existing > 0 && holds_run(out, info)) {
    note_db_run("prune", *store, existing, false);
    return print_result(a, PrunedFolder(out).read_summary(), out, existing);
  }
  check_out_dir(out, a.force);
  StagingDir staging(out);
  Model m = load_hf_model(model_dir);
  const double load_seconds = seconds_since(t_load);

  // --dtype, --threads, --json and --force only shape the output: they are not part of what resumes.
  const json calib_identity = calibrated ? calib.description : json(nullptr);
  PruneResume progress = rephrase_bad_input(
      "", kRestartHint, [&] { return PruneResume(out, prune_resume_identity(model_dir, opt, calib_identity), a.restart); });
  const int64_t restored_blocks = progress.finished_blocks();
  PruneResult result;
  result.linears = rephrase_bad_input("", kRestartHint, [&] { return progress.restore(m); });
  if (restored_blocks > 0)
    std::fprintf(stderr, "prune: resuming after block %lld of %lld (finished blocks restored from %s)\n",
                 static_cast<long long>(restored_blocks), static_cast<long long>(m.config.num_layers),
                 progress.path().string().c_str());
  {
    Progress bar(fmt::format("prune {} {}", prune_method_name(opt.method), opt.target.label()), m.config.num_layers);
    bar.update(restored_blocks);
    opt.first_layer = restored_blocks;
    opt.on_block = [&](int64_t layer, std::span<const LinearPruneResult> linears) { progress.save_block(m, layer, linears); };
    const auto on_progress = [&](int64_t done, int64_t) { bar.update(done); };
    PruneResult rest = hint_out_of_memory("pruning", "try a smaller --nsamples or --seqlen",
                                          [&] { return prune_model(m, calib.tokens, opt, device, on_progress); });
    for (auto& lr : rest.linears) result.linears.push_back(std::move(lr));
    result.timings = rest.timings;
  }

  const auto t_save = Clock::now();
  const PrunedFolder staged(staging.path());
  const SparsityMetadata sparsity = sparsity_metadata(opt.target, result);
  const CheckpointWriteInfo written =
      save_pruned_checkpoint(m, model_dir, staged.dir(), weight_dtype, a.sparsity_config ? &sparsity : nullptr);
  write_mask_file(staged.mask_file(), result, opt.method, opt.target);
  const double save_seconds = seconds_since(t_save);
  PruneSummary summary = summarize_prune(result);
  summary.timings.load = load_seconds;
  summary.timings.save = save_seconds;
  summary.model = fs::absolute(model_dir).lexically_normal().string();
  summary.method = opt.method;
  summary.target = opt.target;
  summary.calibration = calibrated ? calib.description : json(nullptr);
  summary.blocksize = a.blocksize;
  summary.percdamp = a.percdamp;
  summary.dtype = a.dtype;
  summary.threads = omp_get_max_threads();
  summary.checkpoint = written;
  summary.restored_blocks = restored_blocks;
  summary.pruned_blocks = m.config.num_layers - restored_blocks;
  summary.run = info;
  summary.device = a.device.describe();
  staged.write_summary(summary);
  if (store) {  // before the folder is moved into place: a failed write leaves neither
    if (existing > 0) note_db_run("prune", *store, existing, false);
    else add_prune_run(*store, info, result);
  }
  staging.commit(a.force, PrunedFolder(out).summary_file().filename().string());
  progress.remove();

  print_result(a, summary, out, std::nullopt);
}

}  // namespace

void register_prune(CLI::App& app) {
  auto args = std::make_shared<PruneArgs>();
  args->model = default_model_path().string();
  auto* cmd = app.add_subcommand(
      "prune", "Prune every linear of every decoder block with magnitude, Wanda or SparseGPT (unstructured or N:M), "
               "block by block on calibration data as the reference implementations do, and write DIR/ = a loadable "
               "HF checkpoint + masks.safetensors (1 = pruned, packbits along input columns) + summary.json");
  cmd->footer(
      "Examples:\n"
      "  sparsa prune --method magnitude --sparsity 0.5 --out pruned-mag\n"
      "  sparsa prune --method wanda --nm 2:4 --calib tokens.safetensors --calib-key calib --out pruned-wanda\n"
      "  sparsa prune --method sparsegpt --sparsity 0.5 --calib-text a.txt b.txt --nsamples 64 --seqlen 256 "
      "--dtype float32 --out pruned-sgpt");
  cmd->add_option("--model", args->model, "HF checkpoint folder to prune")->capture_default_str();
  cmd->add_option("--method", args->method, "pruning method")
      ->required()
      ->check(CLI::IsMember({"magnitude", "wanda", "sparsegpt"}));
  cmd->add_option("--sparsity", args->sparsity, "unstructured target: fraction of each matrix to prune, in (0, 1)");
  cmd->add_option("--nm", args->nm, "N:M target: prune N of every M consecutive input columns (0 < N < M), e.g. 2:4");
  cmd->add_option("--calib", args->calib, std::string("calibration tokens for Wanda and SparseGPT: int32 safetensors [n_samples, seqlen]") +
                                              kDefaultCalibrationHelp);
  cmd->add_option("--calib-key", args->calib_key, "tensor in --calib")->capture_default_str();
  list_option(cmd->add_option("--calib-text", args->calib_text,
                              "or: calibration text files, a list: tokenized with the model's tokenizer, concatenated, "
                              "and cut into --nsamples windows at random offsets (recorded in summary.json)"));
  auto* nsamples = cmd->add_option("--nsamples", args->nsamples,
                                   "calibration samples (with --calib: its first N rows)")->capture_default_str();
  cmd->add_option("--seqlen", args->seqlen,
                  "tokens per sample, at most the model's context (default: the --calib row length, or the context)");
  cmd->add_option("--seed", args->seed, "random seed of the --calib-text window offsets")->capture_default_str();
  cmd->add_option("--blocksize", args->blocksize, "SparseGPT lazy-update block (columns)")->capture_default_str();
  cmd->add_option("--percdamp", args->percdamp, "SparseGPT dampening, fraction of mean(diag H)")
      ->check(finite_number(0.0, 1e6))
      ->capture_default_str();
  add_device_options(cmd, args->device);
  add_multi_gpu_option(cmd, args->device);
  cmd->add_option("--out", args->out, "output folder (written as <out>.tmp-<pid>, renamed at the end)")->required();
  cmd->add_flag("--sparsity-config", args->sparsity_config,
                "also write the sparsity into config.json as llm-compressor does (compressed-tensors' "
                "quantization_config.sparsity_config: format dense, structure, targets, ignore, global sparsity), so "
                "vLLM and llm-compressor see the structure; transformers then loads the folder only with the "
                "compressed-tensors package installed (docs/checkpoints.md). Without it config.json is the source's");
  cmd->add_flag("--force", args->force,
                "replace --out if it holds an earlier prune's output (its summary.json); a folder holding anything "
                "else, or any input of this command (--model, --calib, --calib-text, --db), is never deleted");
  cmd->add_flag("--restart", args->restart,
                "discard the checkpoints of an interrupted run in <out>.partial/ instead of resuming it (a rerun with "
                "the same model, method, target, calibration, --blocksize and --percdamp resumes after the last "
                "finished block; other arguments are refused unless --restart)");
  cmd->add_option("--dtype", args->dtype,
                  "weight dtype of the written checkpoint: keep (the source's), float32 (keeps SparseGPT's updated "
                  "weights exactly), bfloat16, float16")
      ->check(CLI::IsMember({"keep", "float32", "bfloat16", "float16"}))
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  add_db_option(cmd, args->db,
                "the prune run (matrices, per-feature mask statistics, timings; no perplexity: `sparsa eval --model "
                "DIR --db FILE` adds it); rerunning with a finished --out folder of the same run does nothing");
  cmd->add_flag("--json", args->json,
                "print {\"method\", \"target\", \"sparsity\", \"timings\", \"out\", ...} as JSON on stdout");
  cmd->callback([args, nsamples] {
    args->nsamples_given = nsamples->count() > 0;
    if (args->calib.empty() && args->calib_text.empty()) args->calib = default_calibration_file().string();
    run_prune(*args);
  });
}
SPARSA_COMMAND(50, register_prune);

}  // namespace sparsa::cli
