// sparsa/tasks.h — zero-shot multiple-choice tasks (`sparsa eval --task`, `sparsa study --tasks`),
// scored as lm-evaluation-harness scores its `multiple_choice` tasks (docs/tasks.md).
//
// A task file is JSON Lines: one item per line, {"context": str, "choices": [str, ...],
// "gold": int} plus an optional "id" (string or number); other fields are ignored, blank lines
// skipped. Each choice is a continuation of the context, scored by the sum of the log-probabilities
// of its tokens given the context. The pair is tokenized as lm-eval's `_encode_pair` does:
// trailing whitespace of the context moves to the front of the continuation, context and
// continuation are encoded together (no BOS) and the continuation's tokens are those after the
// context's own encoding; the model reads context tokens + continuation tokens, left-truncated to
// its context length (the item is then counted as truncated). An empty context reads the
// tokenizer's BOS (else its EOS) instead, as lm-eval's prefix token.
//
//   acc      = [argmax_c loglik(c) == gold]
//   acc_norm = [argmax_c loglik(c) / chars(c) == gold], chars = Unicode code points of the
//              choice text (Python len(), as lm-eval's completion_len; equal to the UTF-8 byte
//              length for ASCII)
// argmax takes the first of equal scores (numpy). Standard errors are lm-eval's mean_stderr:
// sqrt(p (1 - p) / (n - 1)); NaN for n < 2.
//
// Cost: one forward pass of (context + choice - 1) tokens per choice (no prefix sharing between
// the choices of an item); choices run in parallel over the CPU threads.
//
// Errors: Error(kBadInput), one line naming the file and 1-based line: a line that is not JSON or
// not an object, a missing or mistyped field, an empty choices list or an empty choice, gold out
// of range, an empty file (no items), a choice with no tokens of its own after the context or with
// more tokens than the model's context. Thread safety: functions are reentrant; a Model is shared
// read-only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparsa/device.h"
#include "sparsa/model.h"
#include "sparsa/tokenizer.h"

namespace sparsa {

struct TaskItem {
  int64_t line = 0;                  // 1-based line of the file
  std::string id;                    // the item's "id" as text; empty when absent
  std::string context;
  std::vector<std::string> choices;  // at least one, none empty
  int64_t gold = 0;                  // in [0, choices.size())
};

struct Task {
  std::string name;  // the file's stem ("continuation" for data/tasks/continuation.jsonl)
  std::filesystem::path file;
  std::vector<TaskItem> items;  // at least one
};

// Reads a task file. Error(kBadInput) "<file>:<line>: ..." as listed above.
Task load_task(const std::filesystem::path& jsonl);

// The tokens lm-eval's _encode_pair gives (context, continuation) (no BOS; an empty context is
// handled by the caller, see encode_task).
std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const HfTokenizer& tokenizer,
                                                                  std::string_view context,
                                                                  std::string_view continuation);

struct EncodedChoice {
  std::vector<int32_t> context;       // [n_context >= 1]
  std::vector<int32_t> continuation;  // [n_continuation >= 1]
};
struct EncodedItem {
  const TaskItem* item = nullptr;     // into the Task, which must outlive this
  std::vector<EncodedChoice> choices;
};
struct EncodedTask {
  const Task* task = nullptr;
  std::vector<EncodedItem> items;     // the first `limit` items of the task (all when 0)
};

// Tokenizes the first `limit` items (0 = all; Error(kBadInput) when negative) for a model of
// `config`: token ids must be in its vocabulary, and a continuation may not be longer than its
// context length (Error(kBadInput) naming the file, line and choice).
EncodedTask encode_task(const Task& task, const HfTokenizer& tokenizer, const ModelConfig& config, int64_t limit = 0);

struct ChoiceScore {
  double loglik = 0;     // sum of log p(continuation token | everything before it)
  int64_t tokens = 0;    // continuation tokens
  int64_t chars = 0;     // Unicode code points of the choice text
  bool greedy = false;   // every continuation token is the argmax of its row (lm-eval's is_greedy)
  bool truncated = false;  // context + continuation was cut from the left to the model's context
};

// What the model reads for one choice: context + continuation, the last max_position + 1 tokens of
// it when longer (truncated), of which the first n_in are the input and row t of the logits
// predicts tokens[t + 1]; the continuation is scored at rows n_in - n_continuation ... n_in - 1.
// Every backend windows a choice this way.
struct ChoiceWindow {
  std::vector<int32_t> tokens;  // [n_in + 1]
  int64_t n_in = 0, n_continuation = 0;
  bool truncated = false;
};
ChoiceWindow choice_window(const EncodedChoice& c, int64_t max_position);

// Scores one choice: one forward pass over its window (choice_window). `chars` is left 0.
// Thread-safe for distinct buffers.
ChoiceScore score_choice(const Model& m, const EncodedChoice& c, ForwardBuffers& buf, Tensor& logits);

struct ItemScore {
  const TaskItem* item = nullptr;
  std::vector<ChoiceScore> choices;
  int64_t pred = 0;       // argmax loglik
  int64_t pred_norm = 0;  // argmax loglik / chars
  bool truncated = false;  // some choice was truncated
  bool correct() const { return pred == item->gold; }
  bool correct_norm() const { return pred_norm == item->gold; }
};

struct TaskScore {
  std::string name;
  int64_t n = 0;
  double acc = 0, acc_stderr = 0, acc_norm = 0, acc_norm_stderr = 0;  // stderr NaN for n < 2
  double chance = 0;        // mean over items of 1 / choices: the expected acc of a random guess
  int64_t truncated = 0;    // items with a truncated choice
  int64_t forwards = 0;     // forward passes (one per choice)
  int64_t tokens = 0;       // tokens read over all forward passes
  double seconds = 0;
  std::vector<ItemScore> items;
};

// Scores every item of `t` on `m` (CPU). `progress(done, total)` is called after each forward
// pass when given. A non-finite log-likelihood is Error(kRuntime) naming the item.
TaskScore score_task(const Model& m, const EncodedTask& t, const std::function<void(int64_t, int64_t)>& progress = {});
// The same on the device `device` names (sparsa/device.h): the CPU above, or the GPU (every
// family the GPU forward runs): the choices' windows right-padded to the longest (causal
// attention leaves the scored rows unchanged) and run in chunks of device.chunk_tokens, each
// row's log-probability and greedy flag computed on the device. Error(kBadInput) for a model the
// GPU path does not run.
TaskScore score_task(const Model& m, const EncodedTask& t, const DeviceOptions& device,
                     const std::function<void(int64_t, int64_t)>& progress = {});

// The choices of `t` in scoring order: item by item, choice by choice.
std::vector<const EncodedChoice*> task_choices(const EncodedTask& t);
// The task's scores from every choice's score in task_choices order (`chars` filled in here):
// predictions, acc, acc_norm, standard errors, chance, token counts; `seconds` left 0.
// Error(kRuntime) naming the item for a non-finite log-likelihood.
TaskScore task_score(const Model& m, const EncodedTask& t, const std::vector<ChoiceScore>& scores);

// lm-eval's mean_stderr of a 0/1 metric with mean p over n items: sqrt(p (1 - p) / (n - 1)); NaN
// for n < 2.
double sample_stderr(double p, int64_t n);

// Code points of UTF-8 text (the bytes that do not continue a sequence).
int64_t utf8_length(std::string_view s);

}  // namespace sparsa
