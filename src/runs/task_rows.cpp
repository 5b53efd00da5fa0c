// The zero-shot tasks of a run: their identity, their rows and their JSON (sparsa/runs.h).
#include <cmath>

#include <fmt/format.h>

#include "sparsa/calibration.h"
#include "sparsa/runs.h"

namespace sparsa {
namespace {

// NaN (a standard error below 2 items) as null.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nullptr; }
std::optional<double> finite_or_unset(double v) { return std::isfinite(v) ? std::optional<double>(v) : std::nullopt; }

// Every scored id in order, each list preceded by its length, and each item's gold.
std::vector<int32_t> scored_ids(const EncodedTask& t) {
  std::vector<int32_t> ids;
  for (const EncodedItem& e : t.items) {
    ids.push_back(static_cast<int32_t>(e.item->gold));
    ids.push_back(static_cast<int32_t>(e.choices.size()));
    for (const EncodedChoice& c : e.choices)
      for (const auto* part : {&c.context, &c.continuation}) {
        ids.push_back(static_cast<int32_t>(part->size()));
        ids.insert(ids.end(), part->begin(), part->end());
      }
  }
  return ids;
}

}  // namespace

std::string task_options(std::span<const EncodedTask> tasks) {
  std::string out;
  for (const EncodedTask& t : tasks)
    out += fmt::format("{}task={}:{:016x}:{}", out.empty() ? "" : " ", t.task->name, fnv1a64(scored_ids(t)),
                       t.items.size());
  return out;
}

void add_task_rows(RunWriter& w, const TaskScore& s) {
  std::vector<TaskChoiceRow> rows;
  for (size_t i = 0; i < s.items.size(); ++i) {
    const ItemScore& item = s.items[i];
    for (size_t c = 0; c < item.choices.size(); ++c) {
      const ChoiceScore& cs = item.choices[c];
      rows.push_back({.item = static_cast<int64_t>(i), .item_id = item.item->id, .choice = static_cast<int64_t>(c),
                      .gold = static_cast<int64_t>(c) == item.item->gold, .loglik = cs.loglik, .tokens = cs.tokens,
                      .chars = cs.chars, .greedy = cs.greedy, .truncated = cs.truncated});
    }
  }
  w.add_task_scores({.task = s.name, .items = s.n, .acc = s.acc, .acc_norm = s.acc_norm,
                     .acc_stderr = finite_or_unset(s.acc_stderr), .acc_norm_stderr = finite_or_unset(s.acc_norm_stderr),
                     .chance = s.chance, .truncated = s.truncated, .seconds = s.seconds},
                    rows);
}

nlohmann::json task_score_json(const TaskScore& s, bool items) {
  nlohmann::json j = {{"task", s.name},
                              {"n", s.n},
                              {"acc", s.acc},
                              {"acc_stderr", number_or_null(s.acc_stderr)},
                              {"acc_norm", s.acc_norm},
                              {"acc_norm_stderr", number_or_null(s.acc_norm_stderr)},
                              {"chance", s.chance},
                              {"truncated", s.truncated},
                              {"forwards", s.forwards},
                              {"tokens", s.tokens},
                              {"seconds", s.seconds}};
  if (!items) return j;
  j["items"] = nlohmann::json::array();
  for (size_t i = 0; i < s.items.size(); ++i) {
    const ItemScore& item = s.items[i];
    nlohmann::json choices = nlohmann::json::array();
    for (const ChoiceScore& c : item.choices)
      choices.push_back({{"loglik", c.loglik}, {"tokens", c.tokens}, {"chars", c.chars}, {"greedy", c.greedy},
                         {"truncated", c.truncated}});
    j["items"].push_back({{"index", i}, {"line", item.item->line}, {"id", item.item->id}, {"gold", item.item->gold},
                          {"pred", item.pred}, {"pred_norm", item.pred_norm}, {"acc", item.correct() ? 1 : 0},
                          {"acc_norm", item.correct_norm() ? 1 : 0}, {"truncated", item.truncated},
                          {"choices", std::move(choices)}});
  }
  return j;
}

}  // namespace sparsa
