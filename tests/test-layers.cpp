// The build's layers (cmake/Layers.cmake) hold in the code: every #include in src/<subsystem>/
// names only its own subsystem's files, public headers of the subsystems it depends on (directly
// or through them), or internal headers (src/<dep>/...) of those; benchmark programs use public
// headers only. The table comes from the build (layers.txt: "name:dep,dep:header,header" lines).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Layers {
  std::map<std::string, std::vector<std::string>> deps;  // subsystem -> direct deps
  std::map<std::string, std::string> owner;              // public header stem -> subsystem
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

Layers read_layers() {
  Layers l;
  std::ifstream in(SPARSA_LAYERS_FILE);
  EXPECT_TRUE(in) << "cannot read " << SPARSA_LAYERS_FILE;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto a = line.find(':'), b = line.find(':', a + 1);
    const std::string name = line.substr(0, a);
    l.deps[name] = split(line.substr(a + 1, b - a - 1), ',');
    for (const std::string& h : split(line.substr(b + 1), ',')) {
      EXPECT_FALSE(l.owner.count(h)) << "sparsa/" << h << ".h is claimed by " << l.owner[h] << " and " << name;
      l.owner[h] = name;
    }
  }
  return l;
}

// The subsystem and everything below it.
std::set<std::string> reachable(const Layers& l, const std::string& from) {
  std::set<std::string> seen;
  std::vector<std::string> todo{from};
  while (!todo.empty()) {
    const std::string s = todo.back();
    todo.pop_back();
    if (!seen.insert(s).second) continue;
    const auto it = l.deps.find(s);
    if (it != l.deps.end()) todo.insert(todo.end(), it->second.begin(), it->second.end());
  }
  return seen;
}

// The quoted includes of a file: "sparsa/x.h", "dir/x.h", "x.h".
std::vector<std::string> quoted_includes(const fs::path& file) {
  static const std::regex include_re(R"re(^\s*#\s*include\s*"([^"]+)")re");
  std::vector<std::string> out;
  std::ifstream in(file);
  std::smatch m;
  for (std::string line; std::getline(in, line);)
    if (std::regex_search(line, m, include_re)) out.push_back(m[1]);
  return out;
}

bool is_source(const fs::path& p) {
  const std::string e = p.extension().string();
  return e == ".cpp" || e == ".h" || e == ".cu" || e == ".cuh";
}

const fs::path kRoot = SPARSA_SOURCE_DIR;

TEST(Layers, EveryFolderOfSrcIsASubsystemAndEveryPublicHeaderHasAnOwner) {
  const Layers l = read_layers();
  for (const auto& e : fs::directory_iterator(kRoot / "src"))
    if (e.is_directory()) EXPECT_TRUE(l.deps.count(e.path().filename().string())) << e.path() << " is in no layer";
  for (const auto& e : fs::directory_iterator(kRoot / "include/sparsa"))
    EXPECT_TRUE(l.owner.count(e.path().stem().string()))
        << e.path() << " is implemented by no subsystem (add it to HEADERS in cmake/Layers.cmake)";
}

TEST(Layers, SourcesIncludeOnlyTheirOwnLayerAndTheLayersBelow) {
  const Layers l = read_layers();
  for (const auto& [sub, deps] : l.deps) {
    const std::set<std::string> allowed = reachable(l, sub);
    const fs::path dir = kRoot / "src" / sub;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!is_source(e.path())) continue;
      for (const std::string& inc : quoted_includes(e.path())) {
        const auto slash = inc.find('/');
        if (slash == std::string::npos) continue;  // a file of the same folder
        const std::string top = inc.substr(0, slash);
        std::string used;
        if (top == "sparsa") {
          const std::string stem = fs::path(inc).stem().string();
          ASSERT_TRUE(l.owner.count(stem)) << e.path() << " includes " << inc << ", which no subsystem owns";
          used = l.owner.at(stem);
        } else {
          ASSERT_TRUE(l.deps.count(top)) << e.path() << " includes " << inc << " from outside src/'s subsystems";
          used = top;
        }
        EXPECT_TRUE(allowed.count(used)) << e.path().lexically_relative(kRoot) << " (" << sub << ") includes " << inc
                                         << " of " << used << ", which is not below it in cmake/Layers.cmake";
      }
    }
  }
}

TEST(Layers, BenchmarksUsePublicHeadersOnly) {
  const Layers l = read_layers();
  for (const auto& e : fs::directory_iterator(kRoot / "bench")) {
    if (!is_source(e.path())) continue;
    for (const std::string& inc : quoted_includes(e.path())) {
      const auto slash = inc.find('/');
      if (slash == std::string::npos) continue;  // the benchmarks' own helpers beside them
      EXPECT_FALSE(l.deps.count(inc.substr(0, slash)))
          << e.path().lexically_relative(kRoot) << " includes the internal header " << inc;
    }
  }
}

}  // namespace
