// What machine a benchmark ran on, for the tables it prints.
#pragma once

#include <fstream>
#include <string>

namespace sparsa::bench {

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace sparsa::bench
