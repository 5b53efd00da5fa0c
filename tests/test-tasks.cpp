// Zero-shot multiple-choice tasks (sparsa/tasks.h, `sparsa eval --task`, `sparsa study --tasks`):
// log-likelihoods against a reference from the model's full logits, acc / acc_norm on a model
// whose answers are known, lm-eval's tokenization of a pair, truncation, bad task files, the CLI
// and the study's rows.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sparsa/cuda.h"
#include "sparsa/store.h"
#include "sparsa/synth.h"
#include "sparsa/tasks.h"
#include "sparsa/tokenizer.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::bad_input_message;
using test::run_sparsa;
using test::TempDir;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const Model& demo_model() {
  static const Model m = load_model(test::repo_dir() / "models" / "tiny-llama-15m");
  return m;
}
const HfTokenizer& demo_tokenizer() {
  static const auto t = HfTokenizer::load(test::repo_dir() / "models" / "tiny-llama-15m" / "tokenizer.json");
  return *t;
}
fs::path bundled_task() { return test::repo_dir() / "data" / "tasks" / "persuasion-next.jsonl"; }

// Σ log softmax(logits[t])[seq[t + 1]] over the continuation's rows, from forward()'s full
// logits, in long double with a plain log-sum-exp: the reference for score_choice.
double reference_loglik(const Model& m, const std::vector<int32_t>& seq, int64_t n_cont) {
  ForwardBuffers buf;
  Tensor logits;
  const int64_t n_in = static_cast<int64_t>(seq.size()) - 1;
  forward(m, seq.data(), n_in, logits, buf);
  const int64_t vocab = logits.dim(1);
  long double total = 0;
  for (int64_t t = n_in - n_cont; t < n_in; ++t) {
    const float* row = logits.ptr() + t * vocab;
    long double mx = row[0], sum = 0;
    for (int64_t j = 0; j < vocab; ++j) mx = std::max<long double>(mx, row[j]);
    for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<long double>(row[j]) - mx);
    total += static_cast<long double>(row[seq[static_cast<size_t>(t + 1)]]) - mx - std::log(sum);
  }
  return static_cast<double>(total);
}

TEST(Tasks, ChoiceLogLikelihoodEqualsTheSumOverTheFullLogits) {
  const Task task = load_task(bundled_task());
  const EncodedTask enc = encode_task(task, demo_tokenizer(), demo_model().config, 3);
  ASSERT_EQ(enc.items.size(), 3u);
  ForwardBuffers buf;
  Tensor logits;
  for (const EncodedItem& e : enc.items)
    for (const EncodedChoice& c : e.choices) {
      std::vector<int32_t> seq = c.context;
      seq.insert(seq.end(), c.continuation.begin(), c.continuation.end());
      const ChoiceScore s = score_choice(demo_model(), c, buf, logits);
      EXPECT_FALSE(s.truncated);
      EXPECT_EQ(s.tokens, static_cast<int64_t>(c.continuation.size()));
      EXPECT_NEAR(s.loglik, reference_loglik(demo_model(), seq, s.tokens), 1e-4) << e.item->line;
      EXPECT_LT(s.loglik, 0.0);
    }
}

// lm-eval's _encode_pair: the context's trailing whitespace goes to the continuation, the pair is
// encoded whole, and the continuation is what follows the context's own tokens.
TEST(Tasks, EncodesPairsAsLmEval) {
  const HfTokenizer& tok = demo_tokenizer();
  const auto [ctx, cont] = encode_pair(tok, "Anne was at home ", "that evening.");
  EXPECT_EQ(ctx, tok.encode("Anne was at home", false));
  const std::vector<int32_t> whole = tok.encode("Anne was at home that evening.", false);
  ASSERT_GT(whole.size(), ctx.size());
  EXPECT_EQ(cont, std::vector<int32_t>(whole.begin() + static_cast<std::ptrdiff_t>(ctx.size()), whole.end()));
  EXPECT_EQ(encode_pair(tok, "Anne was at home", " that evening."), encode_pair(tok, "Anne was at home ", "that evening."));
  // Unicode whitespace (U+00A0, U+3000) moves too, as Python's rstrip() moves it.
  EXPECT_EQ(encode_pair(tok, "Anne\u00a0\u3000", "x").first, tok.encode("Anne", false));
  EXPECT_EQ(utf8_length("caf\u00e9 \u3000"), 6);
}

// A model that predicts "the same token again": every linear zero (each block passes its input
// on), one-hot embeddings and lm_head = 10 x identity, so from token a the next token is a with
// log-probability ~0 and any other token b with ~-40.
Model repeat_model(int64_t context) {
  ModelConfig c = synth_config("tiny");
  c.vocab_size = c.hidden_size = c.embed_dim = 16;
  c.intermediate_size = 32;
  c.num_layers = 1;
  c.num_heads = c.num_kv_heads = 2;
  c.head_dim = 8;
  c.max_position = context;
  Model m = synth_model(c, 1);
  for (Block& b : m.blocks)
    for (Linear& l : b.linears) std::fill(l.weight.data.begin(), l.weight.data.end(), 0.0f);
  std::fill(m.embed.data.begin(), m.embed.data.end(), 0.0f);
  std::fill(m.lm_head.data.begin(), m.lm_head.data.end(), 0.0f);
  for (int64_t i = 0; i < 16; ++i) {
    m.embed.data[static_cast<size_t>(i * 16 + i)] = 1.0f;
    m.lm_head.data[static_cast<size_t>(i * 16 + i)] = 10.0f;
  }
  return m;
}

// By hand, without a tokenizer: (context ids, [(continuation ids, choice text)]).
struct HandItem {
  std::vector<int32_t> context;
  std::vector<std::pair<std::vector<int32_t>, std::string>> choices;
  int64_t gold;
};
struct HandTask {
  Task task;
  EncodedTask encoded;
};
HandTask hand_task(const std::vector<HandItem>& items) {
  HandTask h;
  h.task.name = "hand";
  for (size_t i = 0; i < items.size(); ++i) {
    TaskItem t{.line = static_cast<int64_t>(i + 1), .id = {}, .context = "ctx", .choices = {}, .gold = items[i].gold};
    for (const auto& c : items[i].choices) t.choices.push_back(c.second);
    h.task.items.push_back(t);
  }
  h.encoded.task = &h.task;
  for (size_t i = 0; i < items.size(); ++i) {
    EncodedItem e{.item = &h.task.items[i], .choices = {}};
    for (const auto& c : items[i].choices) e.choices.push_back({items[i].context, c.first});
    h.encoded.items.push_back(e);
  }
  return h;
}

// Item 1: the repeat wins both ways (gold). Item 2: the gold loses on log-likelihood (-80 vs -40)
// but wins per character (-80/40 vs -40/2). Item 3: the gold loses both ways.
TEST(Tasks, AccuracyOnAModelWithKnownAnswers) {
  const Model m = repeat_model(64);
  HandTask h = hand_task({
      {{1, 2, 3}, {{{3}, "a"}, {{4}, "b"}, {{5}, "c"}}, 0},
      {{2}, {{{7, 8}, std::string(40, 'x')}, {{9}, "yy"}}, 0},
      {{4}, {{{5}, "z"}, {{4, 4}, "zz"}}, 0},
  });
  const TaskScore s = score_task(m, h.encoded);
  ASSERT_EQ(s.n, 3);
  EXPECT_NEAR(s.items[0].choices[0].loglik, 0.0, 1e-3);
  EXPECT_NEAR(s.items[0].choices[1].loglik, -40.0, 0.01);  // 10 sqrt(16) less RMSNorm's eps
  EXPECT_NEAR(s.items[1].choices[0].loglik, -80.0, 0.02);
  EXPECT_TRUE(s.items[0].choices[0].greedy);
  EXPECT_FALSE(s.items[0].choices[1].greedy);
  EXPECT_EQ(s.items[0].pred, 0);
  EXPECT_EQ(s.items[1].pred, 1);
  EXPECT_EQ(s.items[1].pred_norm, 0);
  EXPECT_EQ(s.items[2].pred, 1);
  EXPECT_EQ(s.items[2].pred_norm, 1);
  EXPECT_DOUBLE_EQ(s.acc, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s.acc_norm, 2.0 / 3);
  EXPECT_DOUBLE_EQ(s.acc_stderr, std::sqrt((1.0 / 3) * (2.0 / 3) / 2));
  EXPECT_DOUBLE_EQ(s.acc_norm_stderr, std::sqrt((2.0 / 3) * (1.0 / 3) / 2));
  EXPECT_DOUBLE_EQ(s.chance, (1.0 / 3 + 0.5 + 0.5) / 3);
  EXPECT_EQ(s.truncated, 0);
  EXPECT_EQ(s.forwards, 7);
  EXPECT_TRUE(std::isnan(sample_stderr(1.0, 1)));
}

// A pair longer than the model's context is cut from the left: the scores are those of the last
// max_position + 1 tokens, and the item counts as truncated.
TEST(Tasks, TruncatesLongContextsFromTheLeft) {
  const Model m = repeat_model(8);
  const std::vector<int32_t> context = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, cont = {10, 11};
  HandTask h = hand_task({{context, {{cont, "ab"}, {{3}, "c"}}, 0}, {{1}, {{{1}, "a"}}, 0}});
  const TaskScore s = score_task(m, h.encoded);
  EXPECT_EQ(s.truncated, 1);
  EXPECT_TRUE(s.items[0].truncated);
  EXPECT_FALSE(s.items[1].truncated);
  const std::vector<int32_t> kept = {4, 5, 6, 7, 8, 9, 10, 10, 11};  // the last 8 + 1 tokens
  EXPECT_NEAR(s.items[0].choices[0].loglik, reference_loglik(m, kept, 2), 1e-6);
  EXPECT_NEAR(s.items[0].choices[0].loglik, -40.0, 0.01);  // 10 sqrt(16) less RMSNorm's eps
}

// ---- bad task files ----

std::string task_error(const TempDir& dir, const std::string& content) {
  const fs::path p = dir / "bad.jsonl";
  test::write_file(p, content);
  return bad_input_message([&] { load_task(p); });
}

TEST(Tasks, RefusesBadFilesNamingTheLine) {
  TempDir dir;
  const std::string ok = R"({"context": "a", "choices": [" b", " c"], "gold": 1})";
  const std::string file = (dir / "bad.jsonl").string();
  struct Case {
    std::string content, where, what;
  };
  const std::vector<Case> cases = {
      {ok + "\n{not json\n", ":2:", "not JSON"},
      {ok + "\n[1, 2]\n", ":2:", "expected a JSON object"},
      {R"({"choices": [" b"], "gold": 0})", ":1:", "missing field 'context'"},
      {ok + "\n\n" + R"({"context": "a", "gold": 0})", ":3:", "missing field 'choices'"},
      {R"({"context": "a", "choices": [" b"]})", ":1:", "missing field 'gold'"},
      {R"({"context": "a", "choices": [], "gold": 0})", ":1:", "non-empty array"},
      {R"({"context": "a", "choices": [" b", 3], "gold": 0})", ":1:", "choice 1 must be a string"},
      {R"({"context": "a", "choices": [" b", ""], "gold": 0})", ":1:", "choice 1 is empty"},
      {R"({"context": "a", "choices": [" b", " c"], "gold": 2})", ":1:", "out of range for 2 choices"},
      {R"({"context": "a", "choices": [" b", " c"], "gold": -1})", ":1:", "out of range"},
      {R"({"context": "a", "choices": [" b", " c"], "gold": 1.5})", ":1:", "'gold' must be an integer"},
      {R"({"context": 5, "choices": [" b"], "gold": 0})", ":1:", "'context' must be a string"},
      {R"({"context": "a", "choices": [" b"], "gold": 0, "id": [1]})", ":1:", "'id' must be"},
      {"", "", "no items"},
      {"\n  \n", "", "no items"},
  };
  for (const Case& c : cases) {
    const std::string m = task_error(dir, c.content);
    EXPECT_TRUE(contains(m, file + c.where)) << c.content << " -> " << m;
    EXPECT_TRUE(contains(m, c.what)) << c.content << " -> " << m;
  }
  EXPECT_TRUE(contains(task_error(dir, "\xff\n"), "not valid UTF-8"));
  const Task t = load_task(bundled_task());
  const std::string limit = bad_input_message([&] { encode_task(t, demo_tokenizer(), demo_model().config, -1); });
  EXPECT_TRUE(contains(limit, "limit")) << limit;
}

// ---- the CLI ----

TEST(TasksCli, BundledTaskIsClearlyAboveChance) {
  TempDir dir;
  const fs::path out = dir / "scores.json";
  const auto r = run_sparsa({"eval", "--task", bundled_task().string(), "--json", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j, json::parse(test::read_file(out)));
  EXPECT_EQ(j["n"], 40);
  EXPECT_EQ(j["truncated"], 0);
  EXPECT_EQ(j["items"].size(), 40u);
  EXPECT_EQ(j["items"][0]["choices"].size(), 4u);
  EXPECT_DOUBLE_EQ(j["chance"].get<double>(), 0.25);
  for (const char* metric : {"acc", "acc_norm"}) {
    const double acc = j[metric].get<double>(), se = j[std::string(metric) + "_stderr"].get<double>();
    EXPECT_NEAR(se, std::sqrt(acc * (1 - acc) / 39), 1e-12);
    EXPECT_GT(acc, 0.25 + 2 * se) << metric << " " << acc << " ± " << se;
  }
  int64_t correct = 0;
  for (const auto& item : j["items"]) correct += item["acc"].get<int64_t>();
  EXPECT_DOUBLE_EQ(j["acc"].get<double>(), static_cast<double>(correct) / 40);
}

TEST(TasksCli, ExitCodesAndOneLineErrors) {
  TempDir dir;
  const fs::path bad = dir / "bad.jsonl";
  test::write_file(bad, R"({"context": "a", "choices": [" b"], "gold": 0})" "\n" R"({"context": "a", "choices": [" b"], "gold": 3})" "\n");
  auto r = run_sparsa({"eval", "--task", bad.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, bad.string() + ":2:")) << r.err;
  test::write_file(bad, "");
  r = run_sparsa({"eval", "--task", bad.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "no items")) << r.err;
  r = run_sparsa({"eval", "--task", (dir / "absent.jsonl").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // On the GPU the task runs (test-gpu-model compares its scores with the CPU's); without one,
  // --device cuda is a one-line runtime failure like every command's.
  r = run_sparsa({"eval", "--task", bundled_task().string(), "--device", "cuda", "--eval-limit", "2"});
  EXPECT_EQ(r.exit_code, cuda_device_count() > 0 ? 0 : 1) << r.err;
  if (cuda_device_count() == 0) EXPECT_TRUE(test::one_line(r.err)) << r.err;
  r = run_sparsa({"eval", "--task", bundled_task().string(), "--eval-limit", "-1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_sparsa({"eval", "--task", bundled_task().string(), "--eval-text", bundled_task().string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_sparsa({"eval", "--out", (dir / "x.json").string(), "--eval-limit", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--out")) << r.err;
  r = run_sparsa({"eval", "--task", bundled_task().string(), "--out", bundled_task().string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_sparsa({"eval", "--help"});
  EXPECT_TRUE(contains(r.out, "\"choices\"")) << r.out;
}

TEST(TasksCli, DbStoresOneRowPerTaskAndPerChoice) {
  TempDir dir;
  const fs::path db = dir / "e.duckdb";
  const std::vector<std::string> args = {"eval", "--task", bundled_task().string(), "--eval-limit", "5", "--db", db.string(), "--json"};
  auto r = run_sparsa(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  r = run_sparsa(args);  // the same evaluation again: found, nothing added
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto store = Store::open(db, Store::Mode::kReadOnly);
  const json s = store->query_json("SELECT r.kind, t.task, t.items, t.acc, t.acc_norm, t.truncated FROM task_scores t JOIN runs r USING (run_id)");
  ASSERT_EQ(s["rows"].size(), 1u);
  EXPECT_EQ(s["rows"][0][0], "dense");
  EXPECT_EQ(s["rows"][0][1], "persuasion-next");
  EXPECT_EQ(s["rows"][0][2], 5);
  EXPECT_DOUBLE_EQ(s["rows"][0][3].get<double>(), j["acc"].get<double>());
  EXPECT_DOUBLE_EQ(s["rows"][0][4].get<double>(), j["acc_norm"].get<double>());
  const json c = store->query_json("SELECT count(*), sum(gold::INT), max(item) FROM task_choices");
  EXPECT_EQ(c["rows"][0][0], 20);
  EXPECT_EQ(c["rows"][0][1], 5);
  EXPECT_EQ(c["rows"][0][2], 4);
  const json first = store->query_json("SELECT loglik FROM task_choices WHERE item = 0 ORDER BY choice");
  for (size_t k = 0; k < 4; ++k)
    EXPECT_DOUBLE_EQ(first["rows"][k][0].get<double>(), j["items"][0]["choices"][k]["loglik"].get<double>());
}

TEST(TasksCli, StudyScoresTheDenseAndEveryPrunedModel) {
  TempDir dir;
  const fs::path task = dir / "three.jsonl", out = dir / "s";
  std::string lines;
  const std::string bundled = test::read_file(bundled_task());
  for (size_t pos = 0, n = 0; n < 3; ++n) {
    const size_t end = bundled.find('\n', pos);
    lines += bundled.substr(pos, end - pos + 1);
    pos = end + 1;
  }
  test::write_file(task, lines);
  const auto r = run_sparsa({"study", "--out", out.string(), "--methods", "magnitude", "--targets", "0.5", "--sweep",
                             "none", "--nsamples", "2", "--eval-limit", "1", "--act-sparsities", "0.5",
                             "--bitset-windows", "1", "--ks", "2", "--kmeans-runs", "1", "--tsne-iterations", "500",
                             "--no-figures", "--tasks", task.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["dense_tasks"]["three"]["n"], 3);
  EXPECT_EQ(j["runs"][0]["tasks"]["three"]["n"], 3);
  const auto store = Store::open(out / "study.duckdb", Store::Mode::kReadOnly);
  const json s = store->query_json("SELECT r.kind, t.items FROM task_scores t JOIN runs r USING (run_id) ORDER BY r.run_id");
  ASSERT_EQ(s["rows"].size(), 2u);
  EXPECT_EQ(s["rows"][0][0], "dense");
  EXPECT_EQ(s["rows"][1][0], "prune");
  const std::string report = test::read_file(out / "REPORT.md");
  EXPECT_TRUE(contains(report, "## Zero-shot accuracy")) << report;
  EXPECT_TRUE(contains(report, "| three acc | three acc_norm |")) << report;
}

}  // namespace
}  // namespace sparsa
