// Zero-shot multiple-choice tasks scored as lm-evaluation-harness does (see sparsa/tasks.h).
#include "sparsa/tasks.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/token_nll.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/json_file.h"
#include "sparsa/parallel.h"

namespace sparsa {
namespace {

using json = nlohmann::json;

// "<file>:<line>"
std::string where(const std::filesystem::path& file, int64_t line) { return fmt::format("{}:{}", file.string(), line); }

// The code point that ends s[0, end) and where it starts; {-1, end - 1} for a byte that does not
// end a well-formed sequence.
std::pair<int32_t, size_t> last_code_point(std::string_view s, size_t end) {
  size_t start = end - 1;
  while (start > 0 && end - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  const auto lead = static_cast<unsigned char>(s[start]);
  const size_t len = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (len != end - start) return {-1, end - 1};
  int32_t cp = len == 1 ? lead : lead & (0x7F >> len);
  for (size_t i = start + 1; i < end; ++i) cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
  return {cp, start};
}

// Python's str.isspace() (what str.rstrip() strips).
bool python_space(int32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680)
    return true;
  return (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// The length of `s` without its trailing whitespace (Python's len(s.rstrip())).
size_t rstripped_length(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    const auto [cp, start] = last_code_point(s, end);
    if (cp < 0 || !python_space(cp)) break;
    end = start;
  }
  return end;
}

std::string id_text(const json& v, const std::string& at) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return v.dump();
  bad_input("{}: 'id' must be a string or an integer, got {}", at, v.type_name());
}

const json& field(const json& obj, const char* name, const std::string& at) {
  const auto it = obj.find(name);
  if (it == obj.end()) bad_input("{}: missing field '{}' (an item is {{\"context\", \"choices\", \"gold\"}})", at, name);
  return *it;
}

TaskItem parse_item(std::string_view text, int64_t line, const std::filesystem::path& file) {
  const std::string at = where(file, line);
  json obj;
  try {
    obj = parse_json_bounded(text, file);
  } catch (const json::parse_error& e) {
    bad_input("{}: not JSON ({})", at, e.what());
  }
  if (!obj.is_object()) bad_input("{}: expected a JSON object, got {}", at, obj.type_name());
  TaskItem item;
  item.line = line;
  const json& context = field(obj, "context", at);
  if (!context.is_string()) bad_input("{}: 'context' must be a string, got {}", at, context.type_name());
  item.context = context.get<std::string>();
  const json& choices = field(obj, "choices", at);
  if (!choices.is_array() || choices.empty())
    bad_input("{}: 'choices' must be a non-empty array of strings, got {}", at,
              choices.is_array() ? std::string("an empty array") : std::string(choices.type_name()));
  for (size_t c = 0; c < choices.size(); ++c) {
    if (!choices[c].is_string()) bad_input("{}: choice {} must be a string, got {}", at, c, choices[c].type_name());
    item.choices.push_back(choices[c].get<std::string>());
    if (item.choices.back().empty()) bad_input("{}: choice {} is empty (it has no tokens to score)", at, c);
  }
  const json& gold = field(obj, "gold", at);
  if (!gold.is_number_integer()) bad_input("{}: 'gold' must be an integer (a choice's index), got {}", at, gold.dump());
  const int64_t n = static_cast<int64_t>(item.choices.size());
  if (gold.is_number_unsigned() ? gold.get<uint64_t>() >= static_cast<uint64_t>(n) : gold.get<int64_t>() < 0 || gold.get<int64_t>() >= n)
    bad_input("{}: 'gold' {} is out of range for {} choices (0..{})", at, gold.dump(), n, n - 1);
  item.gold = gold.get<int64_t>();
  if (const auto it = obj.find("id"); it != obj.end()) item.id = id_text(*it, at);
  return item;
}

bool blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

// First index of the largest value (numpy's argmax).
template <typename Score>
int64_t argmax(const std::vector<ChoiceScore>& choices, Score score) {
  int64_t best = 0;
  for (size_t c = 1; c < choices.size(); ++c)
    if (score(choices[c]) > score(choices[static_cast<size_t>(best)])) best = static_cast<int64_t>(c);
  return best;
}

bool row_argmax_is(const float* row, int64_t vocab, int32_t token) {
  int64_t best = 0;
  for (int64_t j = 1; j < vocab; ++j)
    if (row[j] > row[best]) best = j;
  return best == token;
}

void finish_item(ItemScore& s) {
  s.pred = argmax(s.choices, [](const ChoiceScore& c) { return c.loglik; });
  s.pred_norm = argmax(s.choices, [](const ChoiceScore& c) { return c.loglik / static_cast<double>(c.chars); });
  for (const ChoiceScore& c : s.choices) s.truncated = s.truncated || c.truncated;
}

void summarise(TaskScore& r) {
  int64_t correct = 0, correct_norm = 0;
  double chance = 0;
  for (const ItemScore& s : r.items) {
    correct += s.correct();
    correct_norm += s.correct_norm();
    r.truncated += s.truncated;
    r.forwards += static_cast<int64_t>(s.choices.size());
    chance += 1.0 / static_cast<double>(s.choices.size());
  }
  r.n = static_cast<int64_t>(r.items.size());
  const auto n = static_cast<double>(r.n);
  r.acc = static_cast<double>(correct) / n;
  r.acc_norm = static_cast<double>(correct_norm) / n;
  r.acc_stderr = sample_stderr(r.acc, r.n);
  r.acc_norm_stderr = sample_stderr(r.acc_norm, r.n);
  r.chance = chance / n;
}

}  // namespace

Task load_task(const std::filesystem::path& jsonl) {
  Task task;
  task.file = jsonl;
  task.name = jsonl.stem().string();
  const std::string text = read_utf8_file(jsonl);
  std::istringstream in(text);
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!blank(line)) task.items.push_back(parse_item(line, line_no, jsonl));
  }
  if (task.items.empty()) bad_input("{}: no items (an empty task file; one JSON object per line)", jsonl.string());
  return task;
}

std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const HfTokenizer& tokenizer,
                                                                  std::string_view context,
                                                                  std::string_view continuation) {
  const size_t kept = rstripped_length(context);
  const std::string moved = std::string(context.substr(kept)) + std::string(continuation);
  context = context.substr(0, kept);
  const std::vector<int32_t> whole = tokenizer.encode(std::string(context) + moved, /*add_bos=*/false);
  std::vector<int32_t> context_enc = tokenizer.encode(context, /*add_bos=*/false);
  const size_t split = std::min(context_enc.size(), whole.size());
  return {std::move(context_enc), std::vector<int32_t>(whole.begin() + static_cast<std::ptrdiff_t>(split), whole.end())};
}

EncodedTask encode_task(const Task& task, const HfTokenizer& tokenizer, const ModelConfig& config, int64_t limit) {
  if (limit < 0) bad_input("{}: the item limit must be >= 0 (0 = every item), got {}", task.file.string(), limit);
  const int32_t prefix = tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : tokenizer.eos_id();
  const size_t n = limit == 0 ? task.items.size() : std::min(task.items.size(), static_cast<size_t>(limit));
  EncodedTask out;
  out.task = &task;
  for (size_t i = 0; i < n; ++i) {
    const TaskItem& item = task.items[i];
    const std::string at = where(task.file, item.line);
    EncodedItem e;
    e.item = &item;
    for (size_t c = 0; c < item.choices.size(); ++c) {
      EncodedChoice ec;
      if (item.context.empty()) {
        ec.continuation = tokenizer.encode(item.choices[c], /*add_bos=*/false);
      } else {
        std::tie(ec.context, ec.continuation) = encode_pair(tokenizer, item.context, item.choices[c]);
      }
      if (ec.context.empty()) {  // an empty (or all-whitespace) context reads the prefix token
        if (prefix < 0) bad_input("{}: the context is empty and the tokenizer has no BOS or EOS token to stand for it", at);
        ec.context = {prefix};
      }
      if (ec.continuation.empty())
        bad_input("{}: choice {} has no tokens of its own after the context (the tokenizer merges it into the context)", at, c);
      if (static_cast<int64_t>(ec.continuation.size()) > config.max_position)
        bad_input("{}: choice {} has {} tokens, more than the model's context length {}", at, c, ec.continuation.size(),
                  config.max_position);
      for (const auto* ids : {&ec.context, &ec.continuation})
        for (int32_t id : *ids)
          if (id < 0 || id >= config.vocab_size)
            bad_input("{}: choice {} tokenizes to id {}, outside the model's vocabulary (size {})", at, c, id, config.vocab_size);
      e.choices.push_back(std::move(ec));
    }
    out.items.push_back(std::move(e));
  }
  return out;
}

ChoiceWindow choice_window(const EncodedChoice& c, int64_t max_position) {
  ChoiceWindow w;
  w.tokens = c.context;
  w.tokens.insert(w.tokens.end(), c.continuation.begin(), c.continuation.end());
  const auto whole = static_cast<int64_t>(w.tokens.size());
  const int64_t keep = std::min<int64_t>(whole, max_position + 1);
  w.truncated = keep < whole;
  w.tokens.erase(w.tokens.begin(), w.tokens.begin() + (whole - keep));
  w.n_in = keep - 1;
  w.n_continuation = static_cast<int64_t>(c.continuation.size());
  SPARSA_ASSERT(w.n_continuation <= w.n_in);
  return w;
}

ChoiceScore score_choice(const Model& m, const EncodedChoice& c, ForwardBuffers& buf, Tensor& logits) {
  const ChoiceWindow w = choice_window(c, m.config.max_position);
  forward(m, w.tokens.data(), w.n_in, logits, buf);  // logits [n_in, vocab]
  const int64_t vocab = logits.dim(1);
  ChoiceScore s;
  s.tokens = w.n_continuation;
  s.truncated = w.truncated;
  s.greedy = true;
  for (int64_t t = w.n_in - w.n_continuation; t < w.n_in; ++t) {
    const float* row = logits.ptr() + t * vocab;
    s.loglik -= token_nll(row, vocab, w.tokens[static_cast<size_t>(t + 1)]);
    s.greedy = s.greedy && row_argmax_is(row, vocab, w.tokens[static_cast<size_t>(t + 1)]);
  }
  return s;
}

std::vector<const EncodedChoice*> task_choices(const EncodedTask& t) {
  std::vector<const EncodedChoice*> out;
  for (const EncodedItem& item : t.items)
    for (const EncodedChoice& c : item.choices) out.push_back(&c);
  return out;
}

TaskScore score_task(const Model& m, const EncodedTask& t, const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<const EncodedChoice*> jobs = task_choices(t);
  std::vector<ChoiceScore> scores(jobs.size());
  const auto n_jobs = static_cast<int64_t>(jobs.size());
  std::mutex progress_mutex;
  int64_t done = 0;
  ParallelFailure failure;
#pragma omp parallel
  {
    ForwardBuffers buf;
    Tensor logits;
#pragma omp for schedule(dynamic, 1)
    for (int64_t j = 0; j < n_jobs; ++j)
      failure.run([&] {
        scores[static_cast<size_t>(j)] = score_choice(m, *jobs[static_cast<size_t>(j)], buf, logits);
        if (progress) {
          std::lock_guard<std::mutex> lock(progress_mutex);
          progress(++done, n_jobs);
        }
      });
  }
  failure.rethrow_if_any([&] {
    return fmt::format("scoring {} choices of task '{}' (logits [<= {}, {}] per choice)", n_jobs, t.task->name,
                       m.config.max_position, m.config.vocab_size);
  });
  TaskScore r = task_score(m, t, scores);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

TaskScore task_score(const Model& m, const EncodedTask& t, const std::vector<ChoiceScore>& scores) {
  TaskScore r;
  r.name = t.task->name;
  r.items.resize(t.items.size());
  size_t next = 0;
  for (size_t i = 0; i < t.items.size(); ++i) {
    r.items[i].item = t.items[i].item;
    for (size_t c = 0; c < t.items[i].choices.size(); ++c) {
      SPARSA_ASSERT(next < scores.size());
      ChoiceScore s = scores[next++];
      s.chars = utf8_length(t.items[i].item->choices[c]);
      r.items[i].choices.push_back(s);
    }
  }
  SPARSA_ASSERT(next == scores.size());
  for (ItemScore& s : r.items) {
    for (const ChoiceScore& c : s.choices) {
      if (!std::isfinite(c.loglik))
        runtime_failure("{}: a choice's log-likelihood is {}: the model's outputs overflow or hold NaN, so there is no "
                        "accuracy to report", where(t.task->file, s.item->line), c.loglik);
    }
    finish_item(s);
  }
  for (const EncodedItem& e : t.items)
    for (const EncodedChoice& c : e.choices)
      r.tokens += std::min<int64_t>(static_cast<int64_t>(c.context.size() + c.continuation.size()),
                                    m.config.max_position + 1) - 1;
  summarise(r);
  return r;
}

double sample_stderr(double p, int64_t n) {
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(p * (1.0 - p) / static_cast<double>(n - 1));
}

int64_t utf8_length(std::string_view s) {
  int64_t n = 0;
  for (char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return n;
}

}  // namespace sparsa
