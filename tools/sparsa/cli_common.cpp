#include "cli_common.h"

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include <fmt/format.h>

#include "sparsa/atomic_file.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"
#include "sparsa/input_file.h"

namespace sparsa::cli {

std::filesystem::path tokenizer_path_for(const std::filesystem::path& model, const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (!is_folder(model))
    bad_input("{}: a llama2.c model needs --tokenizer (its tokenizer.bin)", model.string());
  const auto p = model / "tokenizer.json";
  if (!path_exists(p)) bad_input("{}: no tokenizer.json in the model folder; pass --tokenizer", model.string());
  return p;
}

std::filesystem::path known_tokenizer_for(const std::filesystem::path& model, const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  const auto p = model / "tokenizer.json";
  return is_folder(model) && path_exists(p) ? p : std::filesystem::path();
}

void check_seqlen_flag(int64_t seqlen, const ModelConfig& config) {
  if (seqlen < 0 || seqlen == 1) bad_input("--seqlen must be at least 2, got {}", seqlen);
  if (seqlen > config.max_position)
    bad_input("--seqlen {} is above the model's context length {}", seqlen, config.max_position);
}

bool looks_like_nm(std::string_view value) {
  const size_t colon = value.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == value.size()) return false;
  const auto digits = [](std::string_view s) { return s.find_first_not_of("0123456789") == std::string_view::npos; };
  return digits(value.substr(0, colon)) && digits(value.substr(colon + 1));
}

bool looks_like_fraction(std::string_view value) {
  const size_t dot = value.find('.');
  const std::string_view whole = value.substr(0, dot);
  const std::string_view part = dot == std::string_view::npos ? std::string_view() : value.substr(dot + 1);
  const auto digits = [](std::string_view s) { return s.find_first_not_of("0123456789") == std::string_view::npos; };
  return whole.size() + part.size() > 0 && digits(whole) && digits(part);
}

void refuse_nm_for_fraction(std::string_view flag, std::string_view value, std::string_view way_out) {
  if (looks_like_nm(value)) bad_input("{} {}: an N:M pattern where a fraction belongs; {}", flag, value, way_out);
}

void refuse_fraction_for_nm(std::string_view flag, std::string_view value, std::string_view way_out) {
  if (looks_like_fraction(value)) bad_input("{} {}: a fraction where an N:M pattern belongs; {}", flag, value, way_out);
}

CLI::Option* list_option(CLI::Option* opt) {
  opt->delimiter(',');
  // A scalar string takes any number of values, joined by commas; a vector already takes many.
  if (opt->get_expected_max() == 1)
    opt->expected(1, CLI::detail::expected_max_vector_size)->allow_extra_args()->join(',');
  return opt;
}

namespace {

std::map<const CLI::App*, std::vector<RenamedOption>>& rename_registry() {
  static std::map<const CLI::App*, std::vector<RenamedOption>> registry;
  return registry;
}

// The command argv names: the top-level command and, for one with subcommands ("plot spy"), the
// nested one, outermost first (argv[1..size] name them).
std::vector<const CLI::App*> command_path(const CLI::App& app, int argc, const char* const* argv) {
  std::vector<const CLI::App*> path;
  const CLI::App* at = &app;
  for (int i = 1; i < argc; ++i) {
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
      if (sub->get_name() == argv[i]) next = sub;
    if (next == nullptr) break;
    path.push_back(next);
    at = next;
  }
  return path;
}

}  // namespace

void rename_option(const CLI::App* cmd, std::string old_name, std::string new_name) {
  rename_registry()[cmd].push_back({std::move(old_name), std::move(new_name)});
}

const std::vector<RenamedOption>& renamed_options(const CLI::App* cmd) {
  static const std::vector<RenamedOption> none;
  const auto it = rename_registry().find(cmd);
  return it == rename_registry().end() ? none : it->second;
}

std::vector<std::string> spell_renamed_options(const CLI::App& app, int argc, const char* const* argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::vector<const CLI::App*> path = command_path(app, argc, argv);
  if (path.empty()) return args;
  std::string command;
  for (const CLI::App* c : path) command += " " + c->get_name();
  std::vector<RenamedOption> renames;
  for (const CLI::App* c : path) renames.insert(renames.end(), renamed_options(c).begin(), renamed_options(c).end());
  std::set<std::string> noted;
  for (size_t i = path.size(); i < args.size() && args[i] != "--"; ++i) {
    std::string& arg = args[i];
    const auto r = std::find_if(renames.begin(), renames.end(), [&](const RenamedOption& r) {
      return arg == r.old_name || arg.starts_with(r.old_name + "=");
    });
    if (r == renames.end()) continue;
    arg = r->new_name + arg.substr(r->old_name.size());
    if (noted.insert(r->old_name).second)
      std::fprintf(stderr, "sparsa%s: %s is deprecated and will be removed in the next release; use %s\n",
                   command.c_str(), r->old_name.c_str(), r->new_name.c_str());
  }
  return args;
}

CLI::Validator finite_number(double lo, double hi) {
  const std::string range = fmt::format("a finite number in [{:g}, {:g}]", lo, hi);
  return CLI::Validator(
      [lo, hi, range](const std::string& text) -> std::string {
        if (looks_like_nm(text))
          return fmt::format("'{}' is an N:M pattern, which only a weight target takes (prune --nm, study --targets); "
                             "this option takes {}", text, range);
        double v = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (ec != std::errc() || ptr != end || !std::isfinite(v) || v < lo || v > hi)
          return fmt::format("'{}' must be {}", text, range);
        return {};
      },
      range);
}

std::string filesystem_message(const std::filesystem::filesystem_error& e) {
  std::string path = e.path1().string();
  if (const size_t tmp = path.rfind(".tmp-"); tmp != std::string::npos) {
    const size_t end = path.find('/', tmp);
    path.erase(tmp, end == std::string::npos ? std::string::npos : end - tmp);
  }
  const std::string reason = e.code().message();
  return path.empty() ? reason : path + ": " + reason;
}

std::string read_text_file(const std::filesystem::path& p) { return read_file_contents(p); }

void print_json(const nlohmann::json& j) {
  const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

void set_threads(int threads) {
  // OpenMP sizes per-team arrays on the stack and starts every thread at the first parallel
  // region: 10^5 threads overflow the stack, 2^31 exhaust memory. The dashboard's request
  // threads have the same bound (sparsa/serve.h).
  constexpr int kMaxThreads = 1024;
  if (threads < 0 || threads > kMaxThreads)
    bad_input("--threads must be between 0 (all cores) and {}, got {}", kMaxThreads, threads);
  if (threads > 0) omp_set_num_threads(threads);
}

DeviceOptions DeviceArgs::options() const {
  DeviceOptions o;
  o.device = parse_device(device);
  o.precision = parse_gpu_precision(precision);
  if (chunk_tokens < 1) bad_input("--chunk-tokens must be at least 1, got {}", chunk_tokens);
  o.chunk_tokens = chunk_tokens;
  o.devices = gpus;
  if (gpus < 1) bad_input("--gpus must be at least 1, got {}", gpus);
  if (gpus > 1 && !cuda()) bad_input("--gpus {} needs --device cuda", gpus);
  if (cuda() && cuda_device_count() == 0) runtime_failure("--device cuda: no CUDA device is available on this machine");
  return o;
}

nlohmann::json DeviceArgs::describe() const {
  if (!cuda()) return {{"device", device}};
  return {{"device", device},
          {"gpu", {{"name", cuda_device_name(0)}, {"precision", precision}, {"chunk_tokens", chunk_tokens}, {"gpus", gpus},
                   {"peak_allocated_bytes", gpu_peak_allocated()}}}};
}

std::string DeviceArgs::run_options() const {
  return cuda() && precision != "fp32" ? "gpu_precision=" + precision : "";
}

void add_device_options(CLI::App* cmd, DeviceArgs& args) {
  cmd->add_option("--device", args.device, "cpu, or cuda (the first GPU; every family for eval, prune, acts and study; the LLaMA family, Mistral and Qwen2/3 for generate)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--gpu-precision", args.precision,
                  "with --device cuda: fp32 (weights and GEMMs in fp32, TF32 off: closest to the CPU path) or "
                  "bf16 / fp16 (weights stored and linear inputs rounded to it, fp32 accumulation: the fast mode)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  cmd->add_option("--chunk-tokens", args.chunk_tokens,
                  "with --device cuda: tokens per forward chunk (whole windows); bounds the activation memory")
      ->capture_default_str();
}

void add_multi_gpu_option(CLI::App* cmd, DeviceArgs& args) {
  cmd->add_option("--gpus", args.gpus,
                  "with --device cuda: calibrate data-parallel over GPUs 0..N-1 (samples split, statistics "
                  "all-reduced, a block's linears pruned in parallel; needs NCCL at run time)")
      ->capture_default_str();
}

void add_db_option(CLI::App* cmd, std::string& db, std::string_view what) {
  cmd->add_option("--db", db,
                  fmt::format("study database (DuckDB file, created when absent; the tables `sparsa study` writes) "
                              "to add this command's result to. It adds {}. A result the database already holds is "
                              "not recomputed: one line on stderr names the run that holds it (exit 0)",
                              what));
}

std::unique_ptr<Store> open_db(const std::string& db) {
  if (db.empty()) return nullptr;
  return Store::open(db, Store::Mode::kReadWrite);
}

nlohmann::json stored_rows(const Store& store, const std::string& sql) {
  return store.query_json(sql, {.max_rows = 1000000, .max_seconds = 60.0})["rows"];
}

std::string sql_string(std::string_view s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

void note_db_run(std::string_view command, const Store& store, int64_t run_id, bool added) {
  if (added)
    std::fprintf(stderr, "%.*s: added run %lld to %s\n", static_cast<int>(command.size()), command.data(),
                 static_cast<long long>(run_id), store.path().string().c_str());
  else
    std::fprintf(stderr, "%.*s: run %lld of %s already holds this result; nothing added\n",
                 static_cast<int>(command.size()), command.data(), static_cast<long long>(run_id),
                 store.path().string().c_str());
}

}  // namespace sparsa::cli
