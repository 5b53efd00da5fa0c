// sparsa study: the main job (sparsa/study.h) — and sparsa report, which rewrites REPORT.md
// from a study's database.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/prune.h"
#include "sparsa/study.h"

namespace sparsa::cli {
namespace {

namespace fs = std::filesystem;

struct StudyArgs {
  std::string model, out = "study", db, methods = "magnitude,wanda,sparsegpt", sparsities = "0.5,2:4,4:8";
  std::string calib, calib_key = "calib", eval_text, eval_tokens, eval_key = "eval";
  std::vector<std::string> calib_text;
  std::string act_sparsities = "0.25,0.4,0.5,0.7,0.9", ks = "4,8,16", sweep = "0.3,0.7", tasks;
  std::string figure_format = "png";
  int64_t nsamples = 128, seqlen = 0, eval_windows = 0, bitset_windows = 32, analysis_layer = -1;
  double bitset_sparsity = 0.5;
  int kmeans_runs = 5, tsne_iterations = 1000, threads = 0;
  uint64_t seed = 0;
  int null_shuffles = 4, neighbour_references = 8;
  bool nsamples_given = false, calib_given = false, no_figures = false, json = false;
  DeviceArgs device;
};

std::vector<std::string> split_list(const std::string& s, const char* flag) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  if (out.empty()) bad_input("{}: empty list", flag);
  return out;
}

std::vector<double> number_list(const std::string& s, const char* flag) {
  std::vector<double> out;
  for (const auto& item : split_list(s, flag)) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size() || !std::isfinite(out.back())) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      bad_input("{}: '{}' is not a finite number", flag, item);
    }
  }
  return out;
}

StudyOptions options_from(const StudyArgs& a) {
  StudyOptions o;
  o.device = a.device.options();
  o.model = a.model;
  o.out_dir = a.out;
  o.db = a.db;
  o.methods.clear();
  for (const auto& m : split_list(a.methods, "--methods"))
    o.methods.push_back(rephrase_bad_input("--methods: ", "", [&] { return parse_prune_method(m); }));
  for (const auto& t : split_list(a.sparsities, "--targets"))
    o.targets.push_back(rephrase_bad_input(
        "--targets: ", "", [&] { return t.find(':') != std::string::npos ? parse_nm(t) : parse_sparsity(t); }));
  // SparseGPT's N:M targets are checked here, not when its run comes after hours of other runs.
  if (std::find(o.methods.begin(), o.methods.end(), PruneMethod::kSparseGPT) != o.methods.end())
    for (const SparsityTarget& t : o.targets)
      rephrase_bad_input("--targets: ", "", [&] { check_sparsegpt_blocksize(o.blocksize, t); });
  if (!a.calib_text.empty() && a.calib_given) bad_input("--calib and --calib-text are alternatives; pass one");
  if (a.calib_text.empty()) {
    o.calib.tokens_file = a.calib;
    o.calib.key = a.calib_key;
    o.calib.tokenizer = known_tokenizer_for(a.model, "");
  } else {
    o.calib.text_files.assign(a.calib_text.begin(), a.calib_text.end());
    o.calib.tokenizer = fs::path(a.model) / "tokenizer.json";
  }
  o.calib.nsamples = a.nsamples;
  o.calib.nsamples_given = a.nsamples_given;
  o.calib.seqlen = a.seqlen;
  o.calib.seed = a.seed;
  if (!a.eval_tokens.empty()) {
    o.eval_tokens = a.eval_tokens;
    o.eval_key = a.eval_key;
  } else {
    o.eval_text = a.eval_text;
  }
  for (const auto& s : split_list(a.sweep, "--sweep"))
    refuse_nm_for_fraction("--sweep", s, "the sweep is unstructured sparsities; put N:M targets in --targets");
  o.sweep = a.sweep == "none" ? std::vector<double>{} : number_list(a.sweep, "--sweep");
  o.eval_windows = a.eval_windows;
  if (!a.tasks.empty())
    for (const auto& t : split_list(a.tasks, "--tasks")) o.tasks.emplace_back(t);
  for (const auto& s : split_list(a.act_sparsities, "--act-sparsities"))
    refuse_nm_for_fraction("--act-sparsities", s, "activation sparsities are fractions in (0, 1); N:M patterns are "
                           "weight targets (--targets)");
  o.act_sparsities = number_list(a.act_sparsities, "--act-sparsities");
  o.act_bitset_windows = a.bitset_windows;
  o.act_bitset_sparsity = a.bitset_sparsity;
  o.analysis_layer = a.analysis_layer;
  o.null_every_block = a.analysis_layer < 0;
  o.null_shuffles = a.null_shuffles;
  o.neighbour_references = a.neighbour_references;
  o.ks.clear();
  for (double k : number_list(a.ks, "--ks")) {
    if (k != static_cast<int>(k)) bad_input("--ks: {} is not a whole number", k);
    o.ks.push_back(static_cast<int>(k));
  }
  o.kmeans_runs = a.kmeans_runs;
  o.tsne_iterations = a.tsne_iterations;
  o.seed = a.seed;
  o.figures = !a.no_figures;
  for (const auto& f : split_list(a.figure_format, "--figure-format")) {
    const viz::FigureFormat format = rephrase_bad_input("--figure-format: ", "", [&] { return viz::parse_figure_format(f); });
    if (format != viz::FigureFormat::kPng) o.extra_figure_formats.push_back(format);
  }
  return o;
}

// A study rewrites the files of --out's masks/ and figures/ and its REPORT.md: no input may be one.
void check_inputs_outside_outputs(const StudyOptions& o) {
  std::vector<NamedPath> inputs = {{"--model", o.model}, {"--calib", o.calib.tokens_file},
                                   {"--eval-text", o.eval_text}, {"--eval-tokens", o.eval_tokens}};
  for (const fs::path& f : o.calib.text_files) inputs.push_back({"--calib-text", f});
  for (const fs::path& f : o.tasks) inputs.push_back({"--tasks", f});
  for (const char* rewritten : {"masks", "figures", "REPORT.md"})
    refuse_output_over_inputs({"--out", o.out_dir / rewritten}, inputs);
}

void run(const StudyArgs& a) {
  set_threads(a.threads);
  const StudyOptions o = options_from(a);
  check_inputs_outside_outputs(o);
  const StudyResult r = run_study(o, [](const std::string& line) { std::fprintf(stderr, "study: %s\n", line.c_str()); });
  if (a.json) {
    nlohmann::json j = r.summary;
    j["db"] = r.db.string();
    j["report"] = r.report.string();
    j["figures"] = r.figures_dir.string();
    j["runs_computed"] = r.runs_computed;
    j["runs_reused"] = r.runs_reused;
    if (r.runs_computed == 0) j["reused"] = true;  // every result came from the database
    j["seconds"] = r.seconds;
    if (a.device.cuda()) j.update(a.device.describe());
    print_json(j);
    return;
  }
  std::printf("study finished in %.0f s (%lld runs computed, %lld reused)\n", r.seconds,
              static_cast<long long>(r.runs_computed), static_cast<long long>(r.runs_reused));
  std::printf("  report:   %s\n  database: %s\n  figures:  %s\n", r.report.string().c_str(), r.db.string().c_str(),
              r.figures_dir.string().c_str());
  std::printf("  Parquet:  sparsa export --db %s --parquet %s\n", r.db.string().c_str(),
              (r.db.parent_path() / "parquet").string().c_str());
  std::printf("  explore:  sparsa serve --db %s\n", r.db.string().c_str());
}

struct ReportArgs {
  std::string db, figures, out;
};

void run_report(const ReportArgs& a) {
  const auto store = Store::open(a.db, Store::Mode::kReadOnly);
  const fs::path out = a.out.empty() ? fs::path(a.db).parent_path() / "REPORT.md" : fs::path(a.out);
  const fs::path figures = a.figures.empty() ? fs::path(a.db).parent_path() / "figures" : fs::path(a.figures);
  const NamedPath inputs[] = {{"--db", a.db}};
  refuse_output_over_inputs({"--out", out}, inputs);
  write_study_report(*store, figures, out);
  std::printf("%s\n", out.string().c_str());
}

}  // namespace

void register_study(CLI::App& app) {
  auto a = std::make_shared<StudyArgs>();
  a->model = default_model_path().string();
  a->calib = default_calibration_file().string();
  a->eval_text = default_data_file("persuasion.txt").string();
  auto* cmd = app.add_subcommand(
      "study",
      "The whole study of a model: dense perplexity; pruning with each method x structure and its perplexity; mask "
      "comparisons between methods; activation thresholds, histograms and activation-sparsified perplexity; "
      "co-activation clustering (k-means, separation ratio, stability, t-SNE, block coherence); everything into one "
      "DuckDB file, figures (PNG) and REPORT.md in --out. Rerunning over the same --out resumes: finished runs are "
      "kept and skipped. With no options it studies the bundled demo model (about 12 minutes on 2 cores).");
  cmd->add_option("--model", a->model, "Hugging Face checkpoint folder (llama, mistral, qwen2, qwen3, gemma3_text, opt)")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder: study.duckdb, masks/, figures/, REPORT.md")->capture_default_str();
  cmd->add_option("--db", a->db, "study database (DuckDB file, created when absent; default: <out>/study.duckdb)");
  list_option(cmd->add_option("--methods", a->methods, "pruning methods, a list"))->capture_default_str();
  list_option(cmd->add_option("--targets", a->sparsities, "weight pruning targets, a list: 0.5 = 50 % unstructured, 2:4 = N:M"))
      ->capture_default_str();
  rename_option(cmd, "--sparsities", "--targets");
  list_option(cmd->add_option("--sweep", a->sweep,
                              "more unstructured sparsities pruned with every method for the perplexity-against-"
                              "sparsity curve, a list, or 'none'"))
      ->capture_default_str();
  cmd->add_option("--calib", a->calib, "calibration tokens: int32 safetensors [n_samples, seqlen]")
      ->capture_default_str()
      ->each([a](const std::string&) { a->calib_given = true; });
  cmd->add_option("--calib-key", a->calib_key, "tensor in --calib")->capture_default_str();
  list_option(cmd->add_option("--calib-text", a->calib_text, "or: text files to draw calibration windows from, a list"));
  cmd->add_option("--nsamples", a->nsamples, "calibration windows")->capture_default_str()->each([a](const std::string&) {
    a->nsamples_given = true;
  });
  cmd->add_option("--seqlen", a->seqlen, "calibration window length (default: the file's rows / the model's context)");
  cmd->add_option("--eval-text", a->eval_text, "held-out text for perplexity")->capture_default_str();
  cmd->add_option("--eval-tokens", a->eval_tokens, "or: int32 safetensors of evaluation windows [n, seqlen]");
  cmd->add_option("--eval-key", a->eval_key, "tensor in --eval-tokens")->capture_default_str();
  cmd->add_option("--eval-limit", a->eval_windows, "evaluate only the first N windows (0 = all)")->capture_default_str();
  rename_option(cmd, "--eval-windows", "--eval-limit");
  list_option(cmd->add_option("--tasks", a->tasks,
                              "zero-shot multiple-choice tasks (JSON Lines, docs/tasks.md), a list: each is scored "
                              "(acc, acc_norm) on the dense model and on every pruned model, and REPORT.md gets an "
                              "accuracy table; e.g. data/tasks/persuasion-next.jsonl"));
  list_option(cmd->add_option("--act-sparsities", a->act_sparsities, "target activation sparsities in (0, 1), a list"))
      ->capture_default_str();
  cmd->add_option("--bitset-sparsity", a->bitset_sparsity, "activation sparsity of the co-activation bitset")
      ->check(finite_number(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--bitset-windows", a->bitset_windows, "calibration windows in the co-activation bitset")
      ->capture_default_str();
  cmd->add_option("--analysis-layer", a->analysis_layer,
                  "all (default): the null model and neighbourhoods on every block, the in-depth analysis (mask "
                  "clusters, t-SNE, coherence, figures) on the middle one; or one block index for all of it")
      ->transform(CLI::Transformer(std::map<std::string, std::string>{{"all", "-1"}}))
      ->default_str("all");
  cmd->add_option("--null-shuffles", a->null_shuffles,
                  "density-keeping shuffled copies of each bitset for the null model of cluster quality")
      ->capture_default_str();
  cmd->add_option("--neighbour-references", a->neighbour_references,
                  "reference features per block whose 128 Hamming neighbours are clustered (the seed's procedure)")
      ->capture_default_str();
  list_option(cmd->add_option("--ks", a->ks, "k-means cluster counts, a list"))->capture_default_str();
  cmd->add_option("--kmeans-runs", a->kmeans_runs, "repeated k-means runs (seeds) for the stability (ARI)")
      ->capture_default_str();
  cmd->add_option("--tsne-iterations", a->tsne_iterations, "t-SNE gradient steps, at least 500 (250 of early exaggeration + 250 to converge)")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of k-means, t-SNE and --calib-text windows")->capture_default_str();
  cmd->add_flag("--no-figures", a->no_figures, "skip the figures");
  list_option(cmd->add_option("--figure-format", a->figure_format,
                              "figure formats, a list: png (always written: REPORT.md and the dashboard show it), "
                              "pdf (vector, for papers; written beside each PNG with the same name)"))
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (default: all cores)");
  add_device_options(cmd, a->device);
  cmd->add_flag("--json", a->json, "print a JSON summary (perplexities, paths, timings) on stdout");
  cmd->callback([a] { run(*a); });
}
SPARSA_COMMAND(10, register_study);

void register_report(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  auto* cmd = app.add_subcommand("report", "Rewrite REPORT.md from a study's database (opened read-only)");
  cmd->add_option("--db", a->db, "study database (DuckDB file) to read")->required();
  cmd->add_option("--figures", a->figures, "folder of the study's figures (default: figures/ beside the database)");
  cmd->add_option("--out", a->out, "the report to write (default: REPORT.md beside the database)");
  cmd->callback([a] { run_report(*a); });
}
SPARSA_COMMAND(11, register_report);

}  // namespace sparsa::cli
