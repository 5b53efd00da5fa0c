#include "sparsa/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace sparsa {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), start_(std::chrono::steady_clock::now()), last_draw_() {
  const char* env = std::getenv("SPARSA_PROGRESS");
  quiet_ = env && std::strcmp(env, "0") == 0;
  interactive_ = !quiet_ && ((env && std::strcmp(env, "1") == 0) || isatty(STDERR_FILENO));
}

// A bar destroyed while an exception unwinds belongs to failed work: no "done" line, so the
// error stays the only line on stderr.
Progress::~Progress() {
  if (std::uncaught_exceptions() == 0) finish();
}

void Progress::update(int64_t done) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  if (interactive_ && (now - last_draw_ > std::chrono::milliseconds(100) || done == total_)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!quiet_) draw(true);
}

void Progress::draw(bool final_line) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(frac * kWidth);
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  const double eta = frac > 0 && frac < 1 ? secs / frac * (1 - frac) : 0.0;
  if (final_line) {
    std::fprintf(stderr, "%s%s: %lld/%lld done in %.1fs\n", interactive_ ? "\r\033[K" : "", label_.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), secs);
  } else {
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %.0fs (eta %.0fs)", label_.c_str(), bar,
                 static_cast<long long>(done_), static_cast<long long>(total_), secs, eta);
  }
  std::fflush(stderr);
}

}  // namespace sparsa
