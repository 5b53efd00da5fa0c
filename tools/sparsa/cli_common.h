// Pieces shared by the CLI commands.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sparsa/device.h"
#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/parallel.h"
#include "sparsa/store.h"

namespace sparsa::cli {

// The folder of the bundled demo model and data: <prefix>/share/sparsa for an installed binary
// (<prefix>/bin/sparsa, `cmake --install`); the source checkout for a binary that runs from the
// build folder it was linked in. Resolved from /proc/self/exe, so it holds in any working folder.
std::filesystem::path resource_dir();
// The bundled demo model (<resource_dir>/models/tiny-llama-15m), used when --model is not given.
std::filesystem::path default_model_path();
// A bundled data file: <resource_dir>/data/<name> (calib-tokens.safetensors, persuasion.txt).
std::filesystem::path default_data_file(std::string_view name);
// The bundled calibration windows, data/calib-tokens.safetensors (key "calib", 128 x 512 tokens of
// the demo model's tokenizer): what study, acts, prune (Wanda, SparseGPT) and generate
// --act-sparsity calibrate on when given neither --calib nor --calib-text. Its stored tokenizer
// hash refuses it for a model whose tokenizer differs.
std::filesystem::path default_calibration_file();
inline constexpr const char* kDefaultCalibrationHelp = " (default: the bundled data/calib-tokens.safetensors)";

// The tokenizer.json for `model`: `explicit_path` when given, else <model folder>/tokenizer.json.
// Throws Error(kBadInput) when there is none (llama2.c .bin models need --tokenizer).
std::filesystem::path tokenizer_path_for(const std::filesystem::path& model, const std::string& explicit_path);

// The tokenizer file a token file used with `model` is checked against (sparsa/tokenizer.h
// check_token_file_tokenizer): `explicit_path` when given, else <model folder>/tokenizer.json
// when there is one; empty (nothing to check against) otherwise. Never throws.
std::filesystem::path known_tokenizer_for(const std::filesystem::path& model, const std::string& explicit_path);

// --seqlen of the commands that cut token windows: 0 (the default: the data's rows or the model's
// context) or 2..the model's context length; Error(kBadInput) naming the flag otherwise.
void check_seqlen_flag(int64_t seqlen, const ModelConfig& config);

// Runs `step` and returns its result; a bad-input Error from it is rethrown as
// "<prefix><its message><suffix>": the command naming the flag whose value the library refused
// (the library's messages name no flags), or adding the way out it offers.
template <typename Step>
auto rephrase_bad_input(std::string_view prefix, std::string_view suffix, Step&& step) -> decltype(step()) {
  try {
    return step();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kBadInput) throw;
    throw Error(ErrorKind::kBadInput, fmt::format("{}{}{}", prefix, e.what(), suffix));
  }
}

// Runs `step` and returns its result; running out of memory in it (OutOfMemory from the library,
// which says what it was doing, or a bare std::bad_alloc, said to have happened while `what`)
// becomes Error(kRuntime) "<that>; <hint>": the command naming the flags that set the sizes.
template <typename Step>
auto hint_out_of_memory(std::string_view what, std::string_view hint, Step&& step) -> decltype(step()) {
  try {
    return step();
  } catch (const OutOfMemory& e) {
    throw Error(ErrorKind::kRuntime, fmt::format("{}; {}", e.what(), hint));
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::kRuntime, fmt::format("out of memory while {}; {}", what, hint));
  }
}

// The check of every floating-point option (add_option(...)->check(finite_number(lo, hi))): the
// value must parse whole as a finite number in [lo, hi]. "nan", "inf", "1e999" and values outside
// the range are refused before they are converted, as usage errors naming the option (exit 2).
CLI::Validator finite_number(double lo, double hi);

// True for "N:M" (two unsigned integers around one colon), the spelling of an N:M weight target.
bool looks_like_nm(std::string_view value);
// True for a plain decimal number ("0.5", "50", ".5"), the spelling of an unstructured fraction.
bool looks_like_fraction(std::string_view value);
// The refusal of an N:M pattern given to `flag`, which takes a fraction: Error(kBadInput)
// "<flag> <value>: an N:M pattern where a fraction belongs; <way_out>" when `value` looks like
// N:M, nothing otherwise. `way_out` names the option that takes it ("pass --nm 2:4").
void refuse_nm_for_fraction(std::string_view flag, std::string_view value, std::string_view way_out);
// The mirror case: a fraction given to `flag`, which takes N:M.
void refuse_fraction_for_nm(std::string_view flag, std::string_view value, std::string_view way_out);

// Makes `opt` a list: its values may be separated by commas, by spaces, or given by repeating the
// option ("--ks 4,8", "--ks 4 8" and "--ks 4 --ks 8" are the same). A std::string target receives
// the values joined by commas; a std::vector target one element per value. Returns `opt`.
CLI::Option* list_option(CLI::Option* opt);

// Renamed options, accepted under their old spelling for one release. rename_option(cmd, "--tokens",
// "--eval-tokens") registers that `cmd` (whose option is now --eval-tokens) still accepts --tokens:
// the old name is in no --help, `sparsa --list-options` lists it under "renamed", and a command
// line that uses it runs as if it had said --eval-tokens after one stderr line
// "sparsa eval: --tokens is deprecated ...; use --eval-tokens". Call it where the command is
// registered (static initialisation, single thread).
struct RenamedOption {
  std::string old_name;
  std::string new_name;
};
void rename_option(const CLI::App* cmd, std::string old_name, std::string new_name);
// The renames registered for `cmd` (empty when none).
const std::vector<RenamedOption>& renamed_options(const CLI::App* cmd);
// argv (without argv[0]) with every old spelling of the command it names written the new way
// ("--old" and "--old=VALUE"; nothing after a "--" argument), printing the deprecation line once
// per old spelling used.
std::vector<std::string> spell_renamed_options(const CLI::App& app, int argc, const char* const* argv);

// A std::filesystem error as one line in the user's terms: "<path>: <OS reason>", the path
// without the ".tmp-<pid>" suffix of a staging name (the user never named that).
std::string filesystem_message(const std::filesystem::filesystem_error& e);

// Reads a whole text file; Error(kBadInput) naming it when it cannot be read.
std::string read_text_file(const std::filesystem::path& p);

// Prints `j` on stdout as one line.
void print_json(const nlohmann::json& j);

// Sets the number of CPU threads from --threads (0 = leave the default: all cores); Error(kBadInput)
// naming the flag outside 0..1024 (OpenMP crashes or exhausts memory starting ~10^5 threads).
void set_threads(int threads);

// --device cpu|cuda with the GPU settings (--gpu-precision, --chunk-tokens, --gpus): the one
// place the flags are read. A command passes options() to the library's entry points
// (prune_model, perplexity), which pick the backend.
struct DeviceArgs {
  std::string device = "cpu";
  std::string precision = "fp32";
  int64_t chunk_tokens = DeviceOptions{}.chunk_tokens;
  int gpus = 1;
  bool cuda() const { return device == "cuda"; }
  // The library's device options; Error(kBadInput) for a bad value, Error(kRuntime) with
  // --device cuda when this machine has no CUDA device.
  DeviceOptions options() const;
  // {"device", "gpu": {"name", "precision", "chunk_tokens", "peak_allocated_bytes"}} for summaries.
  nlohmann::json describe() const;
  // What the device adds to a run's identity (RunInfo::options): "gpu_precision=bf16" for a GPU
  // run in a precision other than fp32 (whose results differ from the CPU's); "" otherwise.
  std::string run_options() const;
};
void add_device_options(CLI::App* cmd, DeviceArgs& args);
// --gpus N (data-parallel calibration over N GPUs, for prune).
void add_multi_gpu_option(CLI::App* cmd, DeviceArgs& args);

// --db FILE of eval, prune, compare and acts: the study database the command adds its run to
// (docs/db-commands.md). `what` says what the run holds, as a phrase ("the prune run (...)"), for --help.
void add_db_option(CLI::App* cmd, std::string& db, std::string_view what);
// The database of --db opened read-write (created when absent); nullptr when `db` is empty.
// Errors as Store::open: not a DuckDB file / newer schema -> exit 2, locked -> exit 1.
std::unique_ptr<Store> open_db(const std::string& db);
// The one stderr line saying that `command`'s result is run `run_id` of the database: a new run
// (`added`), or one that already held it (nothing added).
void note_db_run(std::string_view command, const Store& store, int64_t run_id, bool added);
// Marks a --json result that --db already held: "reused": true and "run": the run's id (a fresh
// result, `run` unset, gets neither key).
template <typename Json>
void mark_reused(Json& result, std::optional<int64_t> run) {
  if (!run) return;
  result["reused"] = true;
  result["run"] = *run;
}
// The rows (arrays of values, Store::query_json) of one read-only query on --db's database: what
// a run that already holds a command's result stored, for printing it again.
nlohmann::json stored_rows(const Store& store, const std::string& sql);
// `s` as an SQL string literal: in single quotes, quotes doubled.
std::string sql_string(std::string_view s);

}  // namespace sparsa::cli
