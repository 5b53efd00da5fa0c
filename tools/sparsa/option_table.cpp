// `sparsa --list-options`: every command's options as JSON, for the CLI option fuzzer
// (fuzz/cli_options.py) and other tools that must not scrape --help.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"

namespace sparsa::cli {
namespace {

using json = nlohmann::ordered_json;

// The option's validators, one description each ("{cpu,cuda}", "POSITIVE", "FLOAT in [0 - 1]").
json validators_of(const CLI::Option& o) {
  // get_type_name() is the base type followed by ":<description>" per validator.
  const std::string full = o.get_type_name();
  json out = json::array();
  std::size_t pos = full.find(':');
  while (pos != std::string::npos) {
    const std::size_t next = full.find(':', pos + 1);
    out.push_back(full.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1));
    pos = next;
  }
  return out;
}

json option_json(const CLI::Option& o) {
  const std::string full = o.get_type_name();
  json names = json::array();
  for (const auto& n : o.get_lnames()) names.push_back("--" + n);
  for (const auto& n : o.get_snames()) names.push_back("-" + n);
  json excludes = json::array();
  for (const auto* other : o.get_excludes()) excludes.push_back(other->get_name());
  const bool flag = o.get_expected_max() == 0;  // a flag takes no value
  return {{"name", o.get_name()},
          {"names", names},
          {"positional", o.get_positional()},
          {"flag", flag},
          {"type", flag ? "FLAG" : full.substr(0, full.find(':'))},
          {"validators", validators_of(o)},
          {"max_values", o.get_expected_max()},
          {"required", o.get_required()},
          {"default", o.get_default_str()},
          {"excludes", excludes},
          {"description", o.get_description()}};
}

// One entry per runnable command, nested ones ("plot spy") by their full path.
void add_commands(const CLI::App& app, const std::string& prefix, json& out) {
  for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    const std::string path = prefix.empty() ? sub->get_name() : prefix + " " + sub->get_name();
    const auto nested = sub->get_subcommands([](const CLI::App*) { return true; });
    if (!nested.empty()) {
      add_commands(*sub, path, out);
      continue;
    }
    json options = json::array();
    for (const auto* o : sub->get_options())
      if (o != sub->get_help_ptr() && o != sub->get_help_all_ptr()) options.push_back(option_json(*o));
    json renamed = json::array();
    for (const RenamedOption& r : renamed_options(sub)) renamed.push_back({{"old", r.old_name}, {"new", r.new_name}});
    out.push_back({{"command", path}, {"options", options}, {"renamed", renamed}});
  }
}

}  // namespace

void print_option_table(const CLI::App& app) {
  json commands = json::array();
  add_commands(app, "", commands);
  print_json(nlohmann::json(json{{"commands", commands}}));
}

}  // namespace sparsa::cli
