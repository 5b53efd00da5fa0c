// The state behind sparsa::Store, shared by the files of src/store/.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "sparsa/store.h"
#include "store/database.h"

namespace sparsa {

struct Store::Impl {
  Impl(const std::filesystem::path& p, Mode m, const std::vector<std::pair<std::string, std::string>>& config)
      : path(p), mode(m), db(p.string(), config) {}

  std::filesystem::path path;
  Mode mode;
  store::Database db;
  int version = 0;
};

}  // namespace sparsa
