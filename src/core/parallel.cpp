#include "sparsa/parallel.h"

#include <fmt/format.h>

namespace sparsa {

OutOfMemory::OutOfMemory(std::string_view what) : Error(ErrorKind::kRuntime, fmt::format("out of memory while {}", what)) {}

void ParallelFailure::record(std::exception_ptr e) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (first_) return;
  first_ = std::move(e);
  failed_.store(true, std::memory_order_release);
}

}  // namespace sparsa
