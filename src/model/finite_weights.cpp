// Non-finite values in weights: found once, at load time, and named.
#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sparsa/error.h"
#include "sparsa/model.h"

namespace sparsa {
namespace {

// NaN and ±Inf are the floats whose exponent bits are all ones.
bool is_non_finite(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x7f800000u) == 0x7f800000u;
}

std::string index_text(const std::vector<int64_t>& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

}  // namespace

int64_t first_non_finite(const float* v, size_t n) {
  auto first = std::numeric_limits<int64_t>::max();
  const auto count = static_cast<int64_t>(n);
#pragma omp parallel for schedule(static) reduction(min : first) if (count > (1 << 20))
  for (int64_t i = 0; i < count; ++i)
    if (is_non_finite(v[i])) first = std::min(first, i);
  return first == std::numeric_limits<int64_t>::max() ? -1 : first;
}

std::string non_finite_where(const std::string& name, const Tensor& t) {
  const int64_t i = first_non_finite(t.ptr(), t.numel());
  if (i < 0) return "";
  return fmt::format("'{}' holds {} at {}", name, t.data[static_cast<size_t>(i)], index_text(t.shape, i));
}

void check_finite_weights(const Model& m) {
  for (const HfConstTensor& t : hf_tensors(m))
    if (const std::string where = non_finite_where(t.name, *t.tensor); !where.empty())
      bad_input("{}: tensor {}; a checkpoint's weights must be finite", m.source.string(), where);
}

}  // namespace sparsa
