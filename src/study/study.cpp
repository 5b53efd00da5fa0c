// run_study(): the main job, step by step (see sparsa/study.h).
#include "sparsa/input_file.h"
#include "sparsa/study.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "sparsa/atomic_file.h"
#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "sparsa/eval_set.h"
#include "sparsa/gpu.h"
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
  i.device = std::string(device_name(opt.device.device));
  i.options = eval_identity();
  return i;
}

std::string Context::eval_identity() const {
  const bool half = opt.device.cuda() && opt.device.precision != GpuPrecision::kFp32;
  return eval_options(eval_name, eval) +
         (half ? fmt::format(" gpu_precision={}", gpu_precision_name(opt.device.precision)) : "");
}

void Context::save_figure(const viz::Image& figure, const fs::path& png) const {
  figure.save(png);
  for (const viz::FigureFormat f : opt.extra_figure_formats)
    if (f != viz::FigureFormat::kPng) figure.save(fs::path(png).replace_extension(viz::figure_format_name(f)));
}

void Context::remove_figure(const fs::path& png) const {
  std::error_code ec;  // absent is fine; one that cannot be removed stays (stale, not wrong)
  fs::remove(png, ec);
  for (const viz::FigureFormat f : opt.extra_figure_formats)
    fs::remove(fs::path(png).replace_extension(viz::figure_format_name(f)), ec);
}

bool Context::figure_present(const fs::path& png) const {
  if (!path_exists(png)) return false;
  return std::all_of(opt.extra_figure_formats.begin(), opt.extra_figure_formats.end(), [&](viz::FigureFormat f) {
    return path_exists(fs::path(png).replace_extension(viz::figure_format_name(f)));
  });
}

TensorI32 Context::first_calib_windows(int64_t n) const {
  n = std::min(n, calib.tokens.dim(0));
  const int64_t seqlen = calib.tokens.dim(1);
  TensorI32 windows({n, seqlen});
  std::copy_n(calib.tokens.data.begin(), n * seqlen, windows.data.begin());
  return windows;
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
  if (o.tsne_iterations < kTsneMinIterations)
    bad_input("t-SNE iterations must be at least {} ({} steps of early exaggeration + {} to converge), got {}",
              kTsneMinIterations, kTsneExaggerationSteps, kTsneMinIterations - kTsneExaggerationSteps,
              o.tsne_iterations);
  if (o.eval_windows < 0) bad_input("the number of evaluation windows must be >= 0 (0 = all), got {}", o.eval_windows);
}

TensorI32 eval_windows(const StudyOptions& o, const Model& m, std::string& name) {
  EvalSetSpec spec;
  spec.tokens_file = o.eval_tokens;
  spec.key = o.eval_key;
  spec.text_file = o.eval_text;
  const std::filesystem::path tokenizer = o.model / "tokenizer.json";
  if (o.eval_tokens.empty() || path_exists(tokenizer)) spec.tokenizer = tokenizer;  // tokenizes, or checks the file
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

// "1.5 s", "4 min 10 s", "2 h 05 min": a duration for the progress line.
std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (seconds < 60) return fmt::format("{:.1f} s", seconds);
  if (s < 3600) return fmt::format("{} min {:02} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, s % 3600 / 60);
}

// The study's progress: before each step one log line
//   "step k/n: <what> (<elapsed> elapsed, eta <remaining>)"
// The ETA assumes the remaining steps take the mean time of the steps so far ("eta ?" before the
// first has finished); steps a rerun finds in the database take almost none, so a resumed study's
// first estimates are low.
class StepProgress {
 public:
  StepProgress(const Context& ctx, int64_t total) : ctx_(ctx), total_(total), start_(Clock::now()) {}
  void begin(const std::string& what) {
    const double elapsed = seconds_since(start_);
    const std::string eta =
        done_ > 0 ? duration_text(elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_)) : "?";
    ++done_;
    ctx_.note(fmt::format("step {}/{}: {} ({} elapsed, eta {})", done_, total_, what, duration_text(elapsed), eta));
  }

 private:
  const Context& ctx_;
  int64_t total_, done_ = 0;
  Clock::time_point start_;
};

// The method-against-method comparisons of the study: every pair of runs at the same target.
std::vector<std::pair<size_t, size_t>> comparison_pairs(const std::vector<std::pair<PruneMethod, SparsityTarget>>& runs) {
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j)
      if (runs[i].second.label() == runs[j].second.label()) pairs.emplace_back(i, j);
  return pairs;
}

// Every step of the study in order, each announced on the progress line.
std::vector<PruneRun> run_steps(Context& ctx) {
  const StudyOptions& opt = ctx.opt;
  std::vector<std::pair<PruneMethod, SparsityTarget>> planned;
  for (const SparsityTarget& t : opt.targets)
    for (PruneMethod m : opt.methods) planned.emplace_back(m, t);
  const auto pairs = comparison_pairs(planned);
  // dense, prunes, comparisons, activations, co-activation, null model, speed, (figures,) report
  StepProgress progress(ctx, 1 + static_cast<int64_t>(planned.size() + pairs.size()) + 5 + (opt.figures ? 1 : 0));
  progress.begin("dense perplexity");
  dense_step(ctx);
  std::vector<PruneRun> runs;
  for (const auto& [m, t] : planned) {
    progress.begin(fmt::format("prune {} {}", prune_method_name(m), t.label()));
    runs.push_back(prune_step(ctx, m, t));
  }
  for (const auto& [i, j] : pairs) {
    progress.begin(fmt::format("compare {} {} with {}", runs[i].target.label(), prune_method_name(runs[i].method),
                               prune_method_name(runs[j].method)));
    compare_step(ctx, runs[i], runs[j]);
  }
  progress.begin("activation sparsity");
  const ActivationThresholds thresholds = acts_step(ctx);
  progress.begin("co-activation analysis");
  coactivation_step(ctx, runs, thresholds);
  progress.begin("null model and neighbourhoods of every block");
  null_model_step(ctx, thresholds);
  progress.begin("speed (bytes model)");
  speed_step(ctx);
  if (opt.figures) {
    progress.begin("summary figures");
    summary_figures(ctx, runs);
  }
  progress.begin("report");
  return runs;
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
  if (opt.device.cuda()) check_gpu_supported(ctx.dense.config);
  ctx.runner = make_window_runner(opt.device);
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

  const std::vector<study::PruneRun> runs = study::run_steps(ctx);
  write_study_report(*store, result.figures_dir, result.report);
  result.runs_computed = ctx.computed;
  result.runs_reused = ctx.reused;
  result.summary = study::summary_json(ctx, runs);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace sparsa
