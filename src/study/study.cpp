// run_study(): the main job, step by step (see sparsa/study.h).
#include "sparsa/input_file.h"
#include "sparsa/study.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/eval_set.h"
#include "sparsa/runs.h"
#include "study_context.h"

namespace sparsa {

std::vector<SparsityTarget> default_study_targets() {
  return {parse_sparsity("0.5"), parse_nm("2:4"), parse_nm("4:8")};
}

namespace study {

namespace fs = std::filesystem;

RunInfo Context::run_info(RunKind kind) const {
  RunInfo i = model_run_info(kind, opt.model, dense.config);
  i.calib_description = calib_run_description(calib.description.value("file", std::string("text")), calib.tokens);
  i.calib_hash = calib_hash;
  i.nsamples = calib.tokens.dim(0);
  i.seqlen = calib.tokens.dim(1);
  i.options = eval_identity();
  return i;
}

std::string Context::eval_identity() const { return eval_options(eval_name, eval); }

void Context::save_figure(const viz::Image& figure, const fs::path& png) const {
  figure.save(png);
  for (const viz::FigureFormat f : opt.extra_figure_formats)
    if (f != viz::FigureFormat::kPng) figure.save(fs::path(png).replace_extension(viz::figure_format_name(f)));
}

bool Context::figure_present(const fs::path& png) const {
  if (!path_exists(png)) return false;
  return std::all_of(opt.extra_figure_formats.begin(), opt.extra_figure_formats.end(), [&](viz::FigureFormat f) {
    return path_exists(fs::path(png).replace_extension(viz::figure_format_name(f)));
  });
}

std::optional<double> Context::query_number(const std::string& sql) const {
  const auto j = store.query_json(sql);
  if (j["rows"].empty() || j["rows"][0].empty() || !j["rows"][0][0].is_number()) return std::nullopt;
  return j["rows"][0][0].get<double>();
}

namespace {

void check_options(const StudyOptions& o) {
  if (o.model.empty()) bad_input("no model given");
  if (!is_folder(o.model) || !path_exists(o.model / "config.json"))
    bad_input("{}: not a Hugging Face folder (config.json + safetensors)", o.model.string());
  if (o.out_dir.empty()) bad_input("no output folder given");
  if (o.eval_text.empty() == o.eval_tokens.empty()) bad_input("evaluation windows come from exactly one of a text file or a tokens file");
  if (o.methods.empty()) bad_input("no pruning method given");
  for (double s : o.act_sparsities)
    if (!(s > 0 && s < 1)) bad_input("activation sparsity {} is not in (0, 1)", s);
  if (!(o.act_bitset_sparsity > 0 && o.act_bitset_sparsity < 1))
    bad_input("the activation sparsity of the co-activation bitsets, {}, is not in (0, 1)", o.act_bitset_sparsity);
  if (o.act_bitset_windows < 1) bad_input("the co-activation bitsets need at least 1 window, got {}", o.act_bitset_windows);
  if (o.ks.empty()) bad_input("no k-means cluster count given");
  for (int k : o.ks)
    if (k < 2) bad_input("k-means with k = {} is too small (at least 2 clusters)", k);
  if (o.kmeans_runs < 1) bad_input("k-means runs must be at least 1, got {}", o.kmeans_runs);
  if (o.analysis_layer < -1) bad_input("analysis layer {} is not a block index (>= 0) nor -1 (the middle one)", o.analysis_layer);
  if (o.null_shuffles < 1) bad_input("the null model needs at least 1 shuffle, got {}", o.null_shuffles);
  if (o.neighbour_references < 1) bad_input("the neighbourhood procedure needs at least 1 reference feature, got {}", o.neighbour_references);
  if (o.tsne_iterations < 1) bad_input("t-SNE iterations must be at least 1, got {}", o.tsne_iterations);
  if (o.eval_windows < 0) bad_input("the number of evaluation windows must be >= 0 (0 = all), got {}", o.eval_windows);
}

TensorI32 eval_windows(const StudyOptions& o, const Model& m, std::string& name) {
  EvalSetSpec spec;
  spec.tokens_file = o.eval_tokens;
  spec.key = o.eval_key;
  spec.text_file = o.eval_text;
  if (o.eval_tokens.empty()) spec.tokenizer = o.model / "tokenizer.json";
  spec.seqlen = o.eval_seqlen;
  spec.limit = o.eval_windows;
  name = o.eval_tokens.empty() ? eval_dataset_name({}, "", o.eval_text) : eval_dataset_name(o.eval_tokens, o.eval_key, {});
  return load_eval_windows(spec, m.config);
}

nlohmann::json summary_json(const Context& ctx, const std::vector<PruneRun>& runs) {
  nlohmann::json j;
  j["model"] = ctx.model_name;
  j["dense_ppl"] = ctx.dense_ppl;
  j["runs"] = nlohmann::json::array();
  const bool tasks = !ctx.encoded_tasks.empty();
  if (tasks) j["dense_tasks"] = stored_task_scores(ctx, ctx.dense_run);
  for (const auto& r : runs) {
    j["runs"].push_back({{"method", prune_method_name(r.method)}, {"structure", r.target.label()},
                         {"run_id", r.run_id}, {"ppl", r.ppl}, {"masks", r.mask_file.string()}});
    if (tasks) j["runs"].back()["tasks"] = stored_task_scores(ctx, r.run_id);
  }
  const auto acts = ctx.store.query_json(fmt::format(
      "SELECT act_sparsity, ppl FROM perplexities WHERE kind = 'act-sparsified' AND run_id = {} ORDER BY act_sparsity",
      ctx.acts_run));
  for (const auto& row : acts["rows"]) j["act_ppl"][fmt::format("{:g}", row[0].get<double>())] = row[1];
  return j;
}

}  // namespace
}  // namespace study

StudyResult run_study(const StudyOptions& options, const std::function<void(const std::string&)>& log) {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  StudyOptions opt = options;
  study::check_options(opt);
  if (opt.targets.empty()) opt.targets = default_study_targets();
  for (double s : opt.sweep) {
    const SparsityTarget t = parse_sparsity(fmt::format("{:g}", s));
    const bool present = std::any_of(opt.targets.begin(), opt.targets.end(),
                                     [&](const SparsityTarget& x) { return x.label() == t.label(); });
    if (!present) opt.targets.push_back(t);
  }
  if (std::find(opt.act_sparsities.begin(), opt.act_sparsities.end(), opt.act_bitset_sparsity) == opt.act_sparsities.end())
    opt.act_sparsities.push_back(opt.act_bitset_sparsity);
  std::sort(opt.act_sparsities.begin(), opt.act_sparsities.end());

  create_output_folder(opt.out_dir / "masks");
  create_output_folder(opt.out_dir / "figures");
  StudyResult result;
  result.db = opt.db.empty() ? opt.out_dir / "study.duckdb" : opt.db;
  result.figures_dir = opt.out_dir / "figures";
  result.report = opt.out_dir / "REPORT.md";

  const auto store = Store::open(result.db, Store::Mode::kReadWrite);
  Model model = load_hf_model(opt.model);
  study::Context ctx(opt, *store, std::move(model));
  ctx.model_name = fs::weakly_canonical(opt.model).filename().string();
  ctx.calib = load_calibration(opt.calib, ctx.dense.config);
  ctx.calib_hash = token_hash(ctx.calib.tokens.data);
  ctx.eval = study::eval_windows(opt, ctx.dense, ctx.eval_name);
  study::load_tasks(ctx);
  ctx.masks_dir = opt.out_dir / "masks";
  ctx.figures_dir = result.figures_dir;
  ctx.analysis_layer = opt.analysis_layer >= 0 ? opt.analysis_layer : ctx.dense.config.num_layers / 2;
  if (ctx.analysis_layer >= ctx.dense.config.num_layers)
    bad_input("analysis layer {}: the model has {} blocks", ctx.analysis_layer, ctx.dense.config.num_layers);
  ctx.log = log;

  study::dense_step(ctx);
  std::vector<study::PruneRun> runs;
  for (const SparsityTarget& t : opt.targets)
    for (PruneMethod m : opt.methods) runs.push_back(study::prune_step(ctx, m, t));
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j)
      if (runs[i].target.label() == runs[j].target.label()) study::compare_step(ctx, runs[i], runs[j]);
  const ActivationThresholds thresholds = study::acts_step(ctx);
  study::coactivation_step(ctx, runs, thresholds);
  study::null_model_step(ctx, thresholds);
  if (opt.figures) study::summary_figures(ctx, runs);

  write_study_report(*store, result.figures_dir, result.report);
  result.runs_computed = ctx.computed;
  result.runs_reused = ctx.reused;
  result.summary = study::summary_json(ctx, runs);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace sparsa
