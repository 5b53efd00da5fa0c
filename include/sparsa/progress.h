// sparsa/progress.h — a progress bar on stderr for long steps.
//
// Drawn only when stderr is a terminal (a CI log gets one summary line at finish() instead);
// SPARSA_PROGRESS=0 silences it, SPARSA_PROGRESS=1 forces it on. update() is cheap and
// redraws at most ~10 times a second; not thread-safe (callers serialise updates). Also the
// one stopwatch helper of the code base, seconds_since().
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sparsa {

// Wall seconds from `start` (a steady_clock reading) to now.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();  // finishes if the caller did not
  void update(int64_t done);
  void finish();

 private:
  void draw(bool final_line);
  std::string label_;
  int64_t total_, done_ = 0;
  bool interactive_, quiet_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace sparsa
