// Masks, targets and the shared selection helpers.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "prune/select.h"
#include "sparsa/error.h"
#include "sparsa/parallel.h"
#include "sparsa/prune.h"

namespace sparsa {

std::string_view prune_method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::kMagnitude: return "magnitude";
    case PruneMethod::kWanda: return "wanda";
    case PruneMethod::kSparseGPT: return "sparsegpt";
  }
  SPARSA_ASSERT(false);
  return {};
}

PruneMethod parse_prune_method(std::string_view s) {
  for (auto m : {PruneMethod::kMagnitude, PruneMethod::kWanda, PruneMethod::kSparseGPT})
    if (prune_method_name(m) == s) return m;
  bad_input("pruning method '{}' is not one of magnitude, wanda, sparsegpt", s);
}

std::string SparsityTarget::label() const {
  if (is_nm()) return fmt::format("{}-{}", n, m);
  return fmt::format("u{:g}", ratio * 100.0);
}

SparsityTarget parse_sparsity(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !(v > 0.0 && v < 1.0))
    bad_input("sparsity '{}' must be a number in (0, 1)", s);
  SparsityTarget t;
  t.ratio = v;
  return t;
}

SparsityTarget parse_nm(std::string_view s) {
  const auto colon = s.find(':');
  int n = 0, m = 0;
  bool ok = colon != std::string_view::npos;
  if (ok) {
    const auto a = std::from_chars(s.data(), s.data() + colon, n);
    const auto b = std::from_chars(s.data() + colon + 1, s.data() + s.size(), m);
    ok = a.ec == std::errc() && a.ptr == s.data() + colon && b.ec == std::errc() && b.ptr == s.data() + s.size();
  }
  if (!ok || !(n > 0 && n < m)) bad_input("N:M target '{}' must be N:M with 0 < N < M (e.g. 2:4)", s);
  SparsityTarget t;
  t.n = n;
  t.m = m;
  return t;
}

namespace {

// "50" -> 0.5 (snapped to the ratio label() prints, as parse_sparsity would read it); nullopt
// unless a number in (0, 100).
std::optional<SparsityTarget> unstructured_from_percent(std::string_view digits) {
  double percent = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), percent);
  if (ec != std::errc() || end != digits.data() + digits.size() || !(percent > 0.0 && percent < 100.0))
    return std::nullopt;
  const std::string ratio = fmt::format("{:g}", percent / 100.0);
  SparsityTarget t;
  std::from_chars(ratio.data(), ratio.data() + ratio.size(), t.ratio);
  return t;
}

// "2-4" -> 2:4; nullopt unless two integers with 0 < n < m.
std::optional<SparsityTarget> nm_from_label(std::string_view label, size_t dash) {
  SparsityTarget t;
  const auto a = std::from_chars(label.data(), label.data() + dash, t.n);
  const auto b = std::from_chars(label.data() + dash + 1, label.data() + label.size(), t.m);
  const bool ok = a.ec == std::errc() && a.ptr == label.data() + dash && b.ec == std::errc() &&
                  b.ptr == label.data() + label.size() && t.n > 0 && t.n < t.m;
  return ok ? std::optional<SparsityTarget>(t) : std::nullopt;
}

}  // namespace

SparsityTarget parse_target_label(std::string_view label) {
  std::optional<SparsityTarget> t;
  if (label.size() > 1 && label[0] == 'u') {
    t = unstructured_from_percent(label.substr(1));
  } else if (const size_t dash = label.find('-'); dash != std::string_view::npos) {
    t = nm_from_label(label, dash);
  }
  if (!t || t->label() != label)
    bad_input("'{}' is not a target label (u50 for 50 % unstructured, 2-4 for 2:4)", label);
  return *t;
}

int64_t Mask::count() const {
  int64_t c = 0;
  for (uint8_t b : pruned) c += b;
  return c;
}

std::vector<uint8_t> pack_mask(const Mask& m) {
  const int64_t bytes_per_row = (m.cols + 7) / 8;
  std::vector<uint8_t> out(static_cast<size_t>(m.rows * bytes_per_row), 0);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      if (m.at(r, c)) out[r * bytes_per_row + c / 8] |= static_cast<uint8_t>(0x80u >> (c % 8));
  return out;
}

Mask unpack_mask(const uint8_t* packed, int64_t rows, int64_t cols) {
  const int64_t bytes_per_row = (cols + 7) / 8;
  Mask m(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m.pruned[r * cols + c] = (packed[r * bytes_per_row + c / 8] >> (7 - c % 8)) & 1u;
  return m;
}

void apply_mask(Tensor& w, const Mask& m) {
  SPARSA_ASSERT(w.numel() == m.pruned.size());
  const auto n = static_cast<int64_t>(w.numel());
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    if (m.pruned[static_cast<size_t>(i)]) w.data[static_cast<size_t>(i)] = 0.0f;
}

bool mask_is_nm(const Mask& mask, int n, int m) {
  for (int64_t r = 0; r < mask.rows; ++r)
    for (int64_t g = 0; g + m <= mask.cols; g += m) {
      int c = 0;
      for (int j = 0; j < m; ++j) c += mask.at(r, g + j);
      if (c != n) return false;
    }
  return true;
}

void check_mask_target(const Mask& mask, const SparsityTarget& t, std::string_view name) {
  if (t.is_nm() && !mask_is_nm(mask, t.n, t.m))
    runtime_failure("{}: the mask [{}, {}] is not {}:{} (some group of {} columns does not have exactly {} pruned); "
                    "it is not written under that label", name, mask.rows, mask.cols, t.n, t.m, t.m, t.n);
}

void check_sparsegpt_blocksize(int64_t blocksize, const SparsityTarget& t) {
  if (blocksize < 1) bad_input("SparseGPT blocksize must be positive, got {}", blocksize);
  if (t.is_nm() && blocksize % t.m != 0)
    bad_input("SparseGPT blocksize {} is not a multiple of M = {}: {}:{} groups would straddle the lazy-update blocks "
              "and the masks would not be {}:{}", blocksize, t.m, t.n, t.m, t.n, t.m);
}

void check_finite_scores(const float* v, size_t n, int64_t cols, std::string_view what) {
  const int64_t i = first_non_finite(v, n);
  if (i >= 0)
    bad_input("{} holds {} at [{}, {}]; pruning needs finite weights", what, v[i], i / cols, i % cols);
}

void mark_lowest(const float* scores, int64_t count, int64_t k, uint8_t* mask, std::vector<int32_t>& scratch) {
  if (k <= 0) return;
  if (k >= count) {
    std::fill(mask, mask + count, uint8_t{1});
    return;
  }
  scratch.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) scratch[i] = static_cast<int32_t>(i);
  // (score, index) order: the k lowest scores, ties towards the lower index, as a stable sort.
  std::nth_element(scratch.begin(), scratch.begin() + k - 1, scratch.end(), [&](int32_t a, int32_t b) {
    return scores[a] < scores[b] || (scores[a] == scores[b] && a < b);
  });
  for (int64_t i = 0; i < k; ++i) mask[scratch[i]] = 1;
}

Mask nm_mask_from_scores(const float* scores, int64_t rows, int64_t cols, int n, int m) {
  Mask mask(rows, cols);
  ParallelFailure failure;
#pragma omp parallel
  {
    std::vector<int32_t> scratch;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      failure.run([&] {
        for (int64_t g = 0; g < cols; g += m) {
          const int64_t width = std::min<int64_t>(m, cols - g);
          mark_lowest(scores + r * cols + g, width, std::min<int64_t>(n, width), mask.pruned.data() + r * cols + g, scratch);
        }
      });
  }
  failure.rethrow_if_any([&] { return fmt::format("selecting the {}:{} mask of a [{}, {}] matrix", n, m, rows, cols); });
  return mask;
}

Mask row_lowest_mask(const float* scores, int64_t rows, int64_t cols, int64_t k) {
  Mask mask(rows, cols);
  ParallelFailure failure;
#pragma omp parallel
  {
    std::vector<int32_t> scratch;  // [cols]
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      failure.run([&] { mark_lowest(scores + r * cols, cols, k, mask.pruned.data() + r * cols, scratch); });
  }
  failure.rethrow_if_any([&] { return fmt::format("selecting the per-row mask of a [{}, {}] matrix", rows, cols); });
  return mask;
}

float kth_smallest(std::vector<float> values, int64_t k) {
  SPARSA_ASSERT(k >= 0 && k < static_cast<int64_t>(values.size()));
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[static_cast<size_t>(k)];
}

}  // namespace sparsa
