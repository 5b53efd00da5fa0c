// sparsa/parallel.h — exceptions out of OpenMP parallel regions, and out-of-memory errors that
// say what the program was doing.
//
// An exception may not leave an OpenMP parallel region: one that does ends the program in
// std::terminate. Work inside a region runs through ParallelFailure::run, which captures the
// first exception; the thread that started the region rethrows it after the region ends:
//
//   ParallelFailure failure;
//   #pragma omp parallel for
//   for (int64_t i = 0; i < n; ++i)
//     failure.run([&] { work(i); });            // never throws
//   failure.rethrow_if_any([&] { return fmt::format("doing X over [{}, {}]", n, d); });
//
// Once a piece of work has failed, later run() calls skip theirs, so a region ends soon after a
// failure. Every thread of the region still reaches each worksharing construct (run() returns
// normally), so code of the form "allocate in the region, then `omp for`" is safe when both parts
// go through run().
//
// Thread safety: run() and failed() may be called from any thread of the region; rethrow_if_any
// from the thread that started it, after the region.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>

#include "sparsa/error.h"

namespace sparsa {

// Error(kRuntime) for an allocation that failed: "out of memory while <what>". A caller that
// knows which settings set the sizes (the CLI's flags) catches it to say so.
class OutOfMemory : public Error {
 public:
  explicit OutOfMemory(std::string_view what);
};

// Runs `work` and returns its result; std::bad_alloc from it becomes OutOfMemory(describe()).
// `describe` (returning std::string) is called only on failure.
template <typename Work, typename Describe>
auto describe_out_of_memory(Describe&& describe, Work&& work) -> decltype(work()) {
  try {
    return work();
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(describe());
  }
}

class ParallelFailure {
 public:
  // Runs `work` unless an earlier piece of work failed; captures what it throws (the first
  // exception of all threads is kept).
  template <typename Work>
  void run(Work&& work) noexcept {
    if (failed()) return;
    try {
      work();
    } catch (...) {
      record(std::current_exception());
    }
  }
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }

  // After the region: rethrows the captured exception, std::bad_alloc as
  // OutOfMemory(describe()) (describe() returns a std::string and is called only then); returns
  // when nothing failed.
  template <typename Describe>
  void rethrow_if_any(Describe&& describe) const {
    if (!failed()) return;
    try {
      std::rethrow_exception(first_);
    } catch (const std::bad_alloc&) {
      throw OutOfMemory(describe());
    }
  }

 private:
  void record(std::exception_ptr e) noexcept;
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace sparsa
