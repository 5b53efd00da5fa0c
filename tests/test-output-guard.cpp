// No command deletes or overwrites what it reads, or a folder it did not write: prune --force,
// study, report, acts --bits-out, plot, compare --features-out and synth refuse (exit 2, one line
// naming both paths) when an input lies inside (or is) what they would replace, with symbolic
// links and ".." resolved; prune --force replaces only an earlier prune's folder. (Export: test-store.)
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

fs::path model_dir() { return test::repo_dir() / "models" / "tiny-llama-15m"; }
fs::path calib_file() { return test::repo_dir() / "data" / "calib-tokens.safetensors"; }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Expects exit 2 with one line naming `a` and `b`.
void expect_refused(const test::CommandResult& r, const std::string& a, const std::string& b) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(test::one_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, a)) << a << " not in: " << r.err;
  EXPECT_TRUE(contains(r.err, b)) << b << " not in: " << r.err;
}

std::vector<std::string> magnitude_prune(const fs::path& out) {
  return {"prune", "--model", model_dir().string(), "--method", "magnitude", "--sparsity", "0.5", "--out",
          out.string(), "--force"};
}

TEST(PathWithin, ResolvesDotDotAndSymbolicLinks) {
  TempDir d;
  fs::create_directories(d / "real" / "sub");
  fs::create_directory_symlink(d / "real", d / "link");
  EXPECT_TRUE(path_within(d / "real" / "sub" / "f", d / "real"));
  EXPECT_TRUE(path_within(d / "real", d / "real"));
  EXPECT_TRUE(path_within(d / "real" / "sub" / ".." / "x", d / "real/"));
  EXPECT_TRUE(path_within(d / "link" / "sub" / "f", d / "real"));
  EXPECT_TRUE(path_within(d / "real" / "f", d / "link"));
  EXPECT_TRUE(path_within(d / "other" / ".." / "real" / "f", d / "real"));
  EXPECT_FALSE(path_within(d / "real2" / "f", d / "real"));
  EXPECT_FALSE(path_within(d / "real", d / "real" / "sub"));
  EXPECT_FALSE(path_within(d / "real" / "sub" / ".." / ".." / "x", d / "real"));
}

TEST(OutputOverInputs, NamesBothPathsAndCoversTheStagingSiblings) {
  TempDir d;
  const NamedPath out{"--out", d / "out"};
  for (const fs::path& inside : {d / "out" / "c.safetensors", d / "out", d / "out.partial" / "x",
                                 d / "out.tmp-123" / "x", d / "out.old-9" / "x"}) {
    const NamedPath inputs[] = {{"--calib", inside}};
    const std::string m = test::bad_input_message([&] { refuse_output_over_inputs(out, inputs); });
    EXPECT_TRUE(contains(m, "--out " + out.path.string()) && contains(m, "--calib " + inside.string())) << m;
  }
  const NamedPath fine[] = {{"--calib", d / "out2" / "c"}, {"--db", d / "out.backup" / "db"}, {"--x", ""}};
  EXPECT_NO_THROW(refuse_output_over_inputs(out, fine));
}

TEST(FolderReplaceable, OnlyEmptyOrMarkedFolders) {
  TempDir d;
  EXPECT_NO_THROW(check_folder_replaceable({"--out", d / "absent"}, "summary.json"));
  fs::create_directories(d / "empty");
  EXPECT_NO_THROW(check_folder_replaceable({"--out", d / "empty"}, "summary.json"));
  fs::create_directories(d / "mine");
  test::write_file(d / "mine" / "thesis.tex", "years of work");
  const std::string m = test::bad_input_message([&] { check_folder_replaceable({"--out", d / "mine"}, "summary.json"); });
  EXPECT_TRUE(contains(m, "summary.json") && contains(m, (d / "mine").string())) << m;
  test::write_file(d / "mine" / "summary.json", "{}");
  EXPECT_NO_THROW(check_folder_replaceable({"--out", d / "mine"}, "summary.json"));
  test::write_file(d / "file", "x");
  test::bad_input_message([&] { check_folder_replaceable({"--out", d / "file"}, "summary.json"); });
}

// A folder filled by someone else while a run was staging is not replaced at commit either.
TEST(StagingCommit, ReplacesOnlyAFolderHoldingTheMarker) {
  TempDir d;
  const fs::path out = d / "out";
  {
    StagingDir staging(out);
    test::write_file(staging.path() / "summary.json", "{}");
    fs::create_directories(out);
    test::write_file(out / "thesis.tex", "years of work");
    try {
      staging.commit(true, "summary.json");
      ADD_FAILURE() << "replaced a folder without summary.json";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
      EXPECT_TRUE(contains(e.what(), "summary.json") && contains(e.what(), staging.path().string())) << e.what();
    }
    EXPECT_EQ(test::read_file(out / "thesis.tex"), "years of work");
    EXPECT_TRUE(fs::exists(staging.path() / "summary.json"));  // the finished result is kept
    fs::remove_all(staging.path());
  }
  {
    StagingDir staging(out);
    test::write_file(staging.path() / "summary.json", "{\"new\": 1}");
    test::write_file(out / "summary.json", "{}");
    staging.commit(true, "summary.json");
    EXPECT_FALSE(fs::exists(out / "thesis.tex"));
    EXPECT_EQ(test::read_file(out / "summary.json"), "{\"new\": 1}");
  }
}

// The case: prune --force --out DIR with its --db and --calib inside DIR deleted them.
TEST(PruneForce, NeverDeletesItsOwnInputs) {
  TempDir d;
  const fs::path out = d / "out";
  const auto first = test::run_sparsa(magnitude_prune(out));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  fs::copy_file(calib_file(), out / "calib.safetensors");
  const fs::path db = out / "study.duckdb";
  test::write_file(out / "notes.txt", "keep");

  auto with_db = magnitude_prune(out);
  with_db.insert(with_db.end(), {"--db", db.string()});
  expect_refused(test::run_sparsa(with_db), out.string(), db.string());
  EXPECT_FALSE(fs::exists(db)) << "the database was created before the refusal";

  auto with_calib = magnitude_prune(out);
  with_calib[4] = "wanda";
  with_calib.insert(with_calib.end(), {"--calib", (out / "calib.safetensors").string(), "--nsamples", "2"});
  expect_refused(test::run_sparsa(with_calib), out.string(), "calib.safetensors");

  // Through a symbolic link and "..": the same folder.
  fs::create_directory_symlink(out, d / "alias");
  auto via_link = magnitude_prune(d / "alias");
  via_link[4] = "wanda";
  via_link.insert(via_link.end(), {"--calib", (d / "x" / ".." / "out" / "calib.safetensors").string(), "--nsamples", "2"});
  expect_refused(test::run_sparsa(via_link), "alias", "calib.safetensors");

  // The model itself inside --out.
  auto model_inside = magnitude_prune(d.path());
  model_inside[2] = out.string();
  expect_refused(test::run_sparsa(model_inside), d.path().string(), out.string());

  EXPECT_TRUE(fs::exists(out / "calib.safetensors"));
  EXPECT_EQ(test::read_file(out / "notes.txt"), "keep");
  EXPECT_TRUE(fs::exists(out / "summary.json"));
}

TEST(PruneForce, ReplacesOnlyAnEarlierPrunesFolder) {
  TempDir d;
  const fs::path mine = d / "mine";
  fs::create_directories(mine);
  test::write_file(mine / "thesis.tex", "years of work");
  expect_refused(test::run_sparsa(magnitude_prune(mine)), mine.string(), "summary.json");
  EXPECT_EQ(test::read_file(mine / "thesis.tex"), "years of work");

  const fs::path out = d / "out";
  ASSERT_EQ(test::run_sparsa(magnitude_prune(out)).exit_code, 0);
  const std::string masks = test::read_file(out / "masks.safetensors");
  const auto again = test::run_sparsa(magnitude_prune(out));  // --force over its own output
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(test::read_file(out / "masks.safetensors") == masks);
}

TEST(OtherCommands, RefuseToOverwriteTheirInputs) {
  TempDir d;
  const fs::path study = d / "study";
  fs::create_directories(study / "masks");
  fs::copy_file(test::repo_dir() / "data" / "persuasion.txt", study / "masks" / "eval.txt");
  expect_refused(test::run_sparsa({"study", "--out", study.string(), "--eval-text", (study / "masks" / "eval.txt").string()}),
                 (study / "masks").string(), "eval.txt");

  const fs::path tokens = d / "tokens.safetensors";
  fs::copy_file(calib_file(), tokens);
  const std::string before = test::read_file(tokens);
  expect_refused(test::run_sparsa({"acts", "--model", model_dir().string(), "--calib", tokens.string(), "--bits",
                                   "0:mlp_in:0.5", "--bits-out", tokens.string()}),
                 "--bits-out", "--calib");
  EXPECT_TRUE(test::read_file(tokens) == before);

  const fs::path pruned = d / "pruned";
  ASSERT_EQ(test::run_sparsa(magnitude_prune(pruned)).exit_code, 0);
  const fs::path mask = pruned / "masks.safetensors";
  const std::string mask_bytes = test::read_file(mask);
  expect_refused(test::run_sparsa({"plot", "spy", "--mask", mask.string(), "--key",
                                   "model.layers.0.mlp.up_proj.mask", "--out", mask.string()}),
                 "--out", "--mask");
  expect_refused(test::run_sparsa({"compare", pruned.string(), pruned.string(), "--features-out", mask.string()}),
                 "--features-out", mask.string());
  EXPECT_TRUE(test::read_file(mask) == mask_bytes);

  const fs::path db = d / "db.duckdb";
  ASSERT_EQ(test::run_sparsa({"prune", "--model", model_dir().string(), "--method", "magnitude", "--sparsity", "0.5",
                              "--out", (d / "p2").string(), "--db", db.string()}).exit_code, 0);
  expect_refused(test::run_sparsa({"report", "--db", db.string(), "--out", db.string()}), "--out", "--db");

  // synth writes its files into --out: a real model's folder is refused untouched.
  const fs::path model_copy = d / "model";
  fs::copy(model_dir(), model_copy, fs::copy_options::recursive);
  const std::string config = test::read_file(model_copy / "config.json");
  expect_refused(test::run_sparsa({"synth", "--preset", "tiny", "--out", model_copy.string()}), model_copy.string(),
                 "sparsa_synthetic");
  EXPECT_EQ(test::read_file(model_copy / "config.json"), config);
  const fs::path synth = d / "synth";
  ASSERT_EQ(test::run_sparsa({"synth", "--preset", "tiny", "--out", synth.string(), "--calib-samples", "2"}).exit_code, 0);
  EXPECT_EQ(test::run_sparsa({"synth", "--preset", "tiny", "--out", synth.string(), "--calib-samples", "2"}).exit_code, 0);
}

}  // namespace
}  // namespace sparsa
