// sparsa — native toolkit for studying sparsity in transformer language models.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli_common.h"
#include "commands.h"
#include "sparsa/error.h"

namespace sparsa::cli {
std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> registry;
  return registry;
}
}  // namespace sparsa::cli

namespace {

// The one stderr line of a usage error. CLI11 words an option given twice as "--key: At Most 1
// required but received 2"; that case says so plainly.
std::string usage_message(const CLI::ParseError& e) {
  const std::string what = e.what();
  const std::string at_most = ": At Most 1 required but received ";
  const auto pos = what.find(at_most);
  if (pos == std::string::npos || !what.starts_with("-")) return what;
  return what.substr(0, pos) + " takes one value and was given " + what.substr(pos + at_most.size()) +
         " (pass it once)";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sparsa " SPARSA_VERSION
               " — prune, evaluate and analyse sparsity in transformer language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sparsa " SPARSA_VERSION);
  auto commands = sparsa::cli::command_registry();
  std::stable_sort(commands.begin(), commands.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  for (const auto& c : commands) c.add(app);
  if (argc == 2 && std::string(argv[1]) == "--list-options") {
    sparsa::cli::print_option_table(app);
    return 0;
  }
  try {
    // CLI11 reports a mistyped command only as "a subcommand is required": name it instead.
    const auto subcommands = app.get_subcommands([](const CLI::App*) { return true; });
    const auto is_command = [&](const char* name) {
      for (const auto* sub : subcommands)
        if (sub->get_name() == name) return true;
      return false;
    };
    if (argc > 1 && argv[1][0] != '-' && !is_command(argv[1])) {
      std::string known;
      for (const auto* sub : subcommands) known += (known.empty() ? "" : ", ") + sub->get_name();
      std::fprintf(stderr, "sparsa: unknown command '%s' (commands: %s; see --help)\n", argv[1], known.c_str());
      return 2;
    }
    // Old spellings of renamed options become the new ones (one stderr line each) before CLI11 sees them.
    std::vector<std::string> args = sparsa::cli::spell_renamed_options(app, argc, argv);
    std::vector<char*> spelled = {argv[0]};
    for (std::string& a : args) spelled.push_back(a.data());
    app.parse(static_cast<int>(spelled.size()), spelled.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "sparsa: %s (see --help)\n", usage_message(e).c_str());
    return 2;
  } catch (const sparsa::Error& e) {
    std::fprintf(stderr, "sparsa: %s\n", e.what());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "sparsa: out of memory\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "sparsa: %s\n", sparsa::cli::filesystem_message(e).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparsa: %s\n", e.what());
    return 1;
  }
  return 0;
}
