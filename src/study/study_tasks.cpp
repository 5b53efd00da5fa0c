// The study's zero-shot tasks: loaded once, scored on the dense model and on every pruned model.
#include <fmt/format.h>

#include "sparsa/runs.h"
#include "sparsa/tokenizer.h"
#include "study_context.h"

namespace sparsa::study {

void load_tasks(Context& ctx) {
  if (ctx.opt.tasks.empty()) return;
  ctx.tasks.reserve(ctx.opt.tasks.size());  // encoded_tasks point into it
  for (const auto& file : ctx.opt.tasks) ctx.tasks.push_back(load_task(file));
  for (size_t i = 0; i < ctx.tasks.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (ctx.tasks[i].name == ctx.tasks[j].name)
        bad_input("tasks {} and {} have the same name '{}' (the file's stem names a task)", ctx.tasks[j].file.string(),
                  ctx.tasks[i].file.string(), ctx.tasks[i].name);
  const auto tokenizer = HfTokenizer::load(ctx.opt.model / "tokenizer.json");
  for (const Task& t : ctx.tasks) ctx.encoded_tasks.push_back(encode_task(t, *tokenizer, ctx.dense.config));
}

std::string task_identity(const Context& ctx) { return task_options(ctx.encoded_tasks); }

void score_tasks(Context& ctx, const Model& m, RunWriter& w, const std::string& what) {
  for (const EncodedTask& t : ctx.encoded_tasks) {
    const TaskScore s = score_task(m, t, ctx.opt.device);
    add_task_rows(w, s);
    ctx.note(fmt::format("{}: {} acc {:.4f}, acc_norm {:.4f} over {} items ({:.1f} s)", what, s.name, s.acc, s.acc_norm,
                         s.n, s.seconds));
  }
}

nlohmann::json stored_task_scores(const Context& ctx, int64_t run_id) {
  const auto rows = ctx.store.query_json(fmt::format(
      "SELECT task, acc, acc_stderr, acc_norm, acc_norm_stderr, items, truncated FROM task_scores WHERE run_id = {} "
      "ORDER BY task", run_id))["rows"];
  nlohmann::json out = nlohmann::json::object();
  for (const auto& r : rows)
    out[r[0].get<std::string>()] = {{"acc", r[1]}, {"acc_stderr", r[2]}, {"acc_norm", r[3]}, {"acc_norm_stderr", r[4]},
                                    {"n", r[5]}, {"truncated", r[6]}};
  return out;
}

}  // namespace sparsa::study
