// One option language across the commands: the README's "Option vocabulary" table against every
// command's options (`sparsa --list-options`); the old spellings still run, each with one
// deprecation line; lists take commas, spaces and repeats; an N:M pattern where a fraction belongs
// (and a fraction given to --nm) names the option that takes it; the --db help of every command.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_sparsa;
using test::TempDir;

// ---- the two tables ----

// One row of the README's table: concept | `--option` | commands | `command --old`, ...
struct VocabularyRow {
  std::string meaning, option;
  std::set<std::string> commands;
  std::set<std::pair<std::string, std::string>> old;  // (command, old spelling)
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" `"), e = s.find_last_not_of(" `");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);)
    if (!trim(item).empty()) out.push_back(trim(item));
  return out;
}

// The cells of a table row "| a | b | c |" (a cell's "\|" is not a separator: none is used here).
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 1;
  for (size_t bar = line.find('|', start); bar != std::string::npos; bar = line.find('|', start)) {
    out.push_back(line.substr(start, bar - start));
    start = bar + 1;
  }
  return out;
}

std::vector<VocabularyRow> readme_vocabulary() {
  std::stringstream readme(test::read_file(test::repo_dir() / "README.md"));
  std::vector<VocabularyRow> rows;
  bool in_section = false;
  for (std::string line; std::getline(readme, line);) {
    if (line.starts_with("#")) in_section = line == "### Option vocabulary";
    if (!in_section || !line.starts_with("| ") || line.starts_with("| concept") || line.starts_with("| ---")) continue;
    const auto c = cells(line);
    if (c.size() != 4) {
      ADD_FAILURE() << "README vocabulary row without 4 cells: " << line;
      continue;
    }
    VocabularyRow row{trim(c[0]), trim(c[1]), {}, {}};
    for (const auto& command : split(c[2], ',')) row.commands.insert(command);
    for (const auto& spelling : split(c[3], ',')) {
      const auto space = spelling.rfind(' ');
      row.old.insert({spelling.substr(0, space), spelling.substr(space + 1)});
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

struct OptionTable {
  std::map<std::string, std::set<std::string>> options;                  // command -> option names
  std::map<std::string, std::map<std::string, std::string>> renamed;     // command -> old -> new
  std::map<std::string, std::map<std::string, json>> option_json;        // command -> name -> entry
};

OptionTable option_table() {
  const auto r = run_sparsa({"--list-options"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  OptionTable t;
  const json listing = json::parse(r.out);
  for (const json& c : listing.at("commands")) {
    const std::string command = c.at("command");
    for (const json& o : c.at("options")) {
      t.options[command].insert(o.at("name").get<std::string>());
      t.option_json[command][o.at("name")] = o;
    }
    for (const json& rename : c.at("renamed")) t.renamed[command][rename.at("old")] = rename.at("new");
  }
  return t;
}

// ---- the vocabulary ----

TEST(Vocabulary, TheReadmeTableIsEveryCommandsOptionNames) {
  const auto rows = readme_vocabulary();
  ASSERT_GE(rows.size(), 20u) << "README.md has no \"### Option vocabulary\" table";
  const OptionTable t = option_table();
  std::map<std::string, const VocabularyRow*> by_option;
  for (const VocabularyRow& row : rows) {
    EXPECT_TRUE(by_option.emplace(row.option, &row).second) << row.option << " has two rows";
    for (const auto& command : row.commands) {
      ASSERT_TRUE(t.options.count(command)) << "no command '" << command << "' (row " << row.option << ")";
      EXPECT_TRUE(t.options.at(command).count(row.option)) << command << " has no " << row.option;
    }
  }
  // Every option name two commands share is a row listing every command that has it: the same
  // name means the same thing everywhere.
  std::map<std::string, std::set<std::string>> users;
  for (const auto& [command, names] : t.options)
    for (const auto& name : names)
      if (name.starts_with("--")) users[name].insert(command);
  for (const auto& [name, commands] : users) {
    if (commands.size() < 2 && !by_option.count(name)) continue;
    ASSERT_TRUE(by_option.count(name)) << name << " is shared by several commands but has no vocabulary row";
    EXPECT_EQ(by_option.at(name)->commands, commands) << "the commands of " << name;
  }
}

TEST(Vocabulary, OldSpellingsAreTheTablesAndNoCurrentName) {
  const OptionTable t = option_table();
  std::map<std::string, std::map<std::string, std::string>> from_readme;
  for (const VocabularyRow& row : readme_vocabulary())
    for (const auto& [command, old] : row.old) from_readme[command][old] = row.option;
  std::map<std::string, std::map<std::string, std::string>> from_cli;
  for (const auto& [command, renames] : t.renamed)
    if (!renames.empty()) from_cli[command] = renames;
  EXPECT_EQ(from_cli, from_readme);
  for (const auto& [command, renames] : t.renamed)
    for (const auto& [old, now] : renames) {
      EXPECT_FALSE(t.options.at(command).count(old)) << command << " " << old << " is both old and current";
      EXPECT_TRUE(t.options.at(command).count(now)) << command << " " << old << " -> " << now << ", which it lacks";
    }
}

// Help texts say "a list" for the options that take one, and those take several values.
TEST(Vocabulary, ListsTakeSeveralValues) {
  const OptionTable t = option_table();
  int lists = 0;
  for (const auto& [command, options] : t.option_json)
    for (const auto& [name, o] : options) {
      const std::string description = o.at("description");
      EXPECT_EQ(description.find("comma-separated"), std::string::npos) << command << " " << name;
      if (description.find("a list") == std::string::npos) continue;
      ++lists;
      EXPECT_GT(o.at("max_values").get<int>(), 1) << command << " " << name;
    }
  EXPECT_GE(lists, 10);
}

TEST(Vocabulary, EveryDbOptionSaysWhatItIs) {
  const OptionTable t = option_table();
  for (const auto& [command, options] : t.option_json) {
    if (!options.count("--db")) continue;
    const std::string d = options.at("--db").at("description");
    EXPECT_TRUE(d.starts_with("study database (DuckDB file")) << command << ": " << d;
    EXPECT_EQ(d.find(" to, "), std::string::npos) << command << ": " << d;
  }
}

// ---- the old spellings still run ----

// A tokens file for the demo model: "calib" and "eval", [2, 16].
fs::path tokens_file(const TempDir& tmp) {
  std::vector<int32_t> ids(32);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(3 + (i * 37) % 8000);
  const auto path = tmp / "tokens.safetensors";
  write_safetensors(path, {{"calib", DType::I32, {2, 16}, ids.data()}, {"eval", DType::I32, {2, 16}, ids.data()}});
  return path;
}

// The JSON on stdout without its timings.
json result_of(const test::CommandResult& r) {
  json j = json::parse(r.out);
  for (const char* timing : {"seconds", "tokens_per_second"}) j.erase(timing);
  return j;
}

// One invocation with old spellings and the same with the new ones.
struct RenameCase {
  std::string command;
  std::vector<std::string> old_args, new_args;
};

std::vector<RenameCase> rename_cases(const fs::path& tokens, const fs::path& text) {
  const std::string f = tokens.string(), txt = text.string();
  return {
      {"eval",
       {"eval", "--tokens", f, "--key", "calib", "--limit", "1", "--json"},
       {"eval", "--eval-tokens", f, "--eval-key", "calib", "--eval-limit", "1", "--json"}},
      {"eval",
       {"eval", "--text=" + txt, "--seqlen", "16", "--json"},
       {"eval", "--eval-text=" + txt, "--seqlen", "16", "--json"}},
      {"acts",
       {"acts", "--tokens", f, "--key", "eval", "--sparsities", "0.5,0.7", "--json"},
       {"acts", "--calib", f, "--calib-key", "eval", "--act-sparsities", "0.5,0.7", "--json"}},
      {"acts",
       {"acts", "--text", txt, "--seqlen", "16", "--sparsities", "0.5", "--json"},
       {"acts", "--calib-text", txt, "--seqlen", "16", "--act-sparsities", "0.5", "--json"}},
      // A study runs for minutes: its renamed options are shown to reach the new option through the
      // refusal of a bad value, which names the new spelling.
      {"study", {"study", "--sparsities", "0.5,bogus"}, {"study", "--targets", "0.5,bogus"}},
      {"study", {"study", "--eval-windows", "x"}, {"study", "--eval-limit", "x"}},
  };
}

std::string deprecation_line(const std::string& command, const std::string& old, const std::string& now) {
  return "sparsa " + command + ": " + old + " is deprecated and will be removed in the next release; use " + now + "\n";
}

TEST(Vocabulary, EveryOldSpellingStillWorksAndWarns) {
  TempDir tmp;
  const auto tokens = tokens_file(tmp);
  const auto text = tmp / "text.txt";
  test::write_file(text, "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
                         "must be in want of a wife. However little known the feelings or views of such a man may be.");
  const OptionTable t = option_table();
  std::set<std::pair<std::string, std::string>> covered;
  for (const RenameCase& c : rename_cases(tokens, text)) {
    const auto old_run = run_sparsa(c.old_args), new_run = run_sparsa(c.new_args);
    ASSERT_EQ(old_run.exit_code, new_run.exit_code) << old_run.err << new_run.err;
    std::string warned;
    for (const std::string& arg : c.old_args)  // in the order of the command line, as the lines come
      for (const auto& [old, now] : t.renamed.at(c.command))
        if (arg == old || arg.starts_with(old + "=")) {
          covered.insert({c.command, old});
          const std::string line = deprecation_line(c.command, old, now);
          EXPECT_NE(old_run.err.find(line), std::string::npos) << old_run.err;
          warned += line;
        }
    EXPECT_EQ(new_run.err.find("deprecated"), std::string::npos) << new_run.err;
    if (new_run.exit_code == 0) {
      EXPECT_EQ(result_of(old_run), result_of(new_run));
      EXPECT_TRUE(old_run.err.starts_with(warned)) << old_run.err;
    } else {
      EXPECT_EQ(old_run.err, warned + new_run.err);
      EXPECT_EQ(old_run.out, new_run.out);
    }
  }
  for (const auto& [command, renames] : t.renamed)
    for (const auto& [old, now] : renames)
      EXPECT_TRUE(covered.count({command, old})) << command << " " << old << " has no case here";
}

TEST(Vocabulary, AnOldSpellingIsNotInHelp) {
  const OptionTable t = option_table();
  for (const auto& [command, renames] : t.renamed) {
    std::vector<std::string> args = split(command, ' ');
    args.push_back("--help");
    const auto r = run_sparsa(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const auto& [old, now] : renames) {
      EXPECT_EQ(r.out.find("  " + old + " "), std::string::npos) << command << " --help shows " << old;
      EXPECT_NE(r.out.find("  " + now + " "), std::string::npos) << command << " --help lacks " << now;
    }
  }
}

// After "--" nothing is an option: an old spelling there is left as it is.
TEST(Vocabulary, OldSpellingsAfterDoubleDashAreLeftAlone) {
  const auto r = run_sparsa({"eval", "--", "--tokens"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.find("deprecated"), std::string::npos) << r.err;
}

// ---- lists ----

TEST(Vocabulary, ListsTakeCommasSpacesAndRepeats) {
  TempDir tmp;
  const std::string f = tokens_file(tmp).string();
  const auto acts = [&](std::vector<std::string> sparsities) {
    std::vector<std::string> args = {"acts", "--calib", f, "--json"};
    args.insert(args.end(), sparsities.begin(), sparsities.end());
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out).at("thresholds") : json();
  };
  const json commas = acts({"--act-sparsities", "0.5,0.7"});
  ASSERT_EQ(commas.size(), 2u);
  EXPECT_EQ(acts({"--act-sparsities", "0.5", "0.7"}), commas);
  EXPECT_EQ(acts({"--act-sparsities", "0.5", "--act-sparsities", "0.7"}), commas);
  // A study's lists are strings joined by commas: the second value reaches the check, given either way.
  const std::vector<std::vector<std::string>> spellings = {{"study", "--methods", "magnitude", "bogus"},
                                                           {"study", "--methods", "magnitude", "--methods", "bogus"},
                                                           {"study", "--methods", "magnitude,bogus"}};
  for (const auto& args : spellings) {
    const auto r = run_sparsa(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("--methods: pruning method 'bogus'"), std::string::npos) << r.err;
  }
}

// ---- N:M where a fraction belongs, and the reverse ----

void expect_refusal(const std::vector<std::string>& args, const std::string& says) {
  const auto r = run_sparsa(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find(says), std::string::npos) << "stderr does not say '" << says << "': " << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Vocabulary, PruneSparsityGivenNmPointsToNm) {
  expect_refusal({"prune", "--method", "magnitude", "--sparsity", "2:4", "--out", "x"}, "pass --nm 2:4");
  expect_refusal({"prune", "--method", "magnitude", "--nm", "0.5", "--out", "x"}, "pass --sparsity 0.5");
  expect_refusal({"prune", "--method", "magnitude", "--nm", "50", "--out", "x"}, "pass --sparsity 50");
}

TEST(Vocabulary, EveryFractionOptionGivenNmSaysItIsAWeightPattern) {
  TempDir tmp;
  const std::string f = tokens_file(tmp).string();
  const std::string nm = "an N:M pattern";
  expect_refusal({"import", tmp.path().string(), "--out", (tmp / "m.safetensors").string(), "--sparsity", "2:4"}, nm);
  expect_refusal({"study", "--sweep", "0.3,2:4"}, nm);
  expect_refusal({"study", "--act-sparsities", "0.5", "2:4"}, nm);
  expect_refusal({"acts", "--calib", f, "--act-sparsities", "2:4"}, nm);
  expect_refusal({"acts", "--calib", f, "--bits", "0:down_in:2:4", "--bits-out", (tmp / "b.safetensors").string()}, nm);
  // Every floating-point option (their check is finite_number): the table names them by validator.
  const OptionTable t = option_table();
  int checked = 0;
  for (const auto& [command, options] : t.option_json)
    for (const auto& [name, o] : options) {
      const std::string validators = o.at("validators").dump();
      if (validators.find("a finite number") == std::string::npos) continue;
      std::vector<std::string> args = split(command, ' ');
      args.insert(args.end(), {name, "2:4"});
      const auto r = run_sparsa(args);
      EXPECT_EQ(r.exit_code, 2) << command << " " << name;
      EXPECT_NE(r.err.find("'2:4' is " + nm), std::string::npos) << command << " " << name << ": " << r.err;
      ++checked;
    }
  EXPECT_GE(checked, 4);
}

// ---- compare and plot ----

fs::path golden(const std::string& name) { return test::shared_dir() / "golden" / name; }

TEST(Vocabulary, CompareSeriesPrintsWholeLabels) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  const std::string a = golden("wanda_2-4.safetensors").string(), b = golden("wanda_4-8.safetensors").string();
  const std::string long_a = "wanda-two-of-four-layer-zero", long_b = "wanda-four-of-eight-layer-zero";
  const auto r = run_sparsa({"compare", "--series", "--layer", "0", a, b, "--labels", long_a + "," + long_b});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::stringstream lines(r.out);
  int rows = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with(long_a + " ") || line.starts_with(long_b + " ")) ++rows;
  EXPECT_EQ(rows, 6) << r.out;  // a row per label in the jaccard (pooled, mean) and hamming tables
  EXPECT_NE(r.out.find(" " + long_a + " " + long_b + "\n"), std::string::npos) << r.out;
}

TEST(Vocabulary, CompareFeaturesCsvNamesTheFeatureColumnAsTheDatabase) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  TempDir tmp;
  const std::string a = golden("wanda_2-4.safetensors").string(), b = golden("wanda_4-8.safetensors").string();
  ASSERT_EQ(run_sparsa({"compare", a, b, "--features-out", (tmp / "f.csv").string()}).exit_code, 0);
  const std::string csv = test::read_file(tmp / "f.csv");
  EXPECT_TRUE(csv.starts_with("name,layer,component,axis,feature,jaccard,hamming,sparsity_a,sparsity_b,cosine\n"))
      << csv.substr(0, 200);
}

TEST(Vocabulary, PlotSpyWithAWrongKeyListsTheKeys) {
  TempDir tmp;
  const std::vector<uint8_t> bits(4, 0xF0);
  const auto mask = tmp / "m.safetensors";
  write_safetensors(mask, {{"model.layers.0.mlp.down_proj.mask", DType::U8, {2, 2}, bits.data()},
                           {"model.layers.0.mlp.up_proj.mask", DType::U8, {2, 2}, bits.data()}});
  const auto r = run_sparsa({"plot", "spy", "--mask", mask.string(), "--key", "model.layers.0.mlp.down.mask", "--out",
                             (tmp / "s.png").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("model.layers.0.mlp.down_proj.mask"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sparsa
