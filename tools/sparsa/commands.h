// The sparsa CLI: each subcommand lives in its own cmd_<name>.cpp and registers itself with
// SPARSA_COMMAND(order, register_fn); main() adds them to the app sorted by `order` (the
// order --help lists them in). A command's callback throws sparsa::Error for expected
// failures; main() turns that into one line on stderr and the exit code (2 bad input / usage,
// 1 runtime failure).
#pragma once

#include <vector>

#include <CLI/CLI.hpp>

namespace sparsa::cli {

using RegisterFn = void (*)(CLI::App& app);

struct CommandEntry {
  int order;
  RegisterFn add;
};

// Every command registered so far (static initialisation of the cmd_*.cpp files).
std::vector<CommandEntry>& command_registry();

// `sparsa --list-options` (not in --help): prints {"commands": [{"command": "plot spy", "options":
// [{"name", "names", "positional", "flag", "type", "validators", "max_values", "required", "default",
// "excludes", "description"}], "renamed": [{"old", "new"}]}]} as one JSON line on stdout, from the
// parser's own table ("renamed": the old spellings still accepted, cli_common.h rename_option).
void print_option_table(const CLI::App& app);

struct CommandRegistration {
  CommandRegistration(int order, RegisterFn fn) { command_registry().push_back({order, fn}); }
};

}  // namespace sparsa::cli

#define SPARSA_COMMAND_CAT2(a, b) a##b
#define SPARSA_COMMAND_CAT(a, b) SPARSA_COMMAND_CAT2(a, b)
// Registers `fn` as a subcommand; use once at namespace scope in a cmd_<name>.cpp. Named after
// `fn`, which is unique, so the commands stay distinct when a unity build joins their files.
#define SPARSA_COMMAND(order, fn) \
  static const ::sparsa::cli::CommandRegistration SPARSA_COMMAND_CAT(sparsa_command_, fn){order, fn}
