// The sparsa CLI: one register_* per subcommand, each in its own cmd_<name>.cpp.
// A command's callback throws sparsa::Error for expected failures; main() turns that into
// one line on stderr and the exit code (2 bad input / usage, 1 runtime failure).
#pragma once

#include <CLI/CLI.hpp>

namespace sparsa::cli {

void register_eval(CLI::App& app);
void register_generate(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_prune(CLI::App& app);

}  // namespace sparsa::cli
