// spread_labels: labels along a line pushed apart until none overlaps (isotonic regression).
#include <algorithm>
#include <numeric>

#include "sparsa/error.h"
#include "sparsa/viz.h"

namespace sparsa::viz {

// With the labels in order and o_i the least distance from label 0's centre to label i's,
// centre p_i = q_i + o_i turns "no overlap" into q non-decreasing: the closest such q to
// want_i - o_i is their isotonic regression (pool adjacent violators), and for a bound that is
// the same for every q_i, clamping that regression is optimal.
std::vector<double> spread_labels(const std::vector<double>& want, const std::vector<double>& width, double lo,
                                  double hi, double gap) {
  SPARSA_ASSERT(want.size() == width.size());
  const size_t n = want.size();
  if (n == 0) return {};
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return want[a] < want[b]; });
  std::vector<double> offset(n, 0.0);  // o_i, in sorted order
  for (size_t i = 1; i < n; ++i) offset[i] = offset[i - 1] + (width[order[i - 1]] + width[order[i]]) / 2 + gap;
  struct Block {
    double sum = 0;
    size_t count = 0;
    double mean() const { return sum / static_cast<double>(count); }
  };
  std::vector<Block> blocks;
  for (size_t i = 0; i < n; ++i) {
    blocks.push_back({want[order[i]] - offset[i], 1});
    while (blocks.size() > 1 && blocks[blocks.size() - 2].mean() > blocks.back().mean()) {
      blocks[blocks.size() - 2].sum += blocks.back().sum;
      blocks[blocks.size() - 2].count += blocks.back().count;
      blocks.pop_back();
    }
  }
  const double q_lo = lo + width[order.front()] / 2;
  const double q_hi = hi - width[order.back()] / 2 - offset.back();
  std::vector<double> centre(n);
  size_t i = 0;
  for (const Block& b : blocks)
    for (size_t k = 0; k < b.count; ++k, ++i) {
      const double q = q_lo <= q_hi ? std::clamp(b.mean(), q_lo, q_hi) : (q_lo + q_hi) / 2;
      centre[order[i]] = q + offset[i];
    }
  return centre;
}

}  // namespace sparsa::viz
