// sparsa — native toolkit for studying sparsity in transformer language models.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "sparsa/error.h"

int main(int argc, char** argv) {
  CLI::App app{"sparsa " SPARSA_VERSION
               " — prune, evaluate and analyse sparsity in transformer language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sparsa " SPARSA_VERSION);
  sparsa::cli::register_eval(app);
  sparsa::cli::register_generate(app);
  sparsa::cli::register_tokenize(app);
  sparsa::cli::register_prune(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "sparsa: %s (see --help)\n", e.what());
    return 2;
  } catch (const sparsa::Error& e) {
    std::fprintf(stderr, "sparsa: %s\n", e.what());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "sparsa: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparsa: %s\n", e.what());
    return 1;
  }
  return 0;
}
