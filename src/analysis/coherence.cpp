// MMM block coherence: how often a whole block of features is silent at a column.
#include <algorithm>
#include <bit>
#include <numeric>

#include "analysis/coactivation_common.h"
#include "sparsa/coactivation.h"

namespace sparsa {

double block_coherence(const BitMatrix& m, std::span<const int64_t> order, int64_t block_size) {
  coact::check_matrix(m, "block coherence");
  if (block_size < 1) bad_input("block coherence: block size B = {} must be at least 1", block_size);
  if (static_cast<int64_t>(order.size()) != m.rows())
    bad_input("block coherence: the order lists {} features, the matrix has {}", order.size(), m.rows());
  std::vector<char> seen(static_cast<size_t>(m.rows()), 0);
  for (int64_t f : order) {
    coact::check_feature(m, f, "block coherence: order");
    if (seen[f]++) bad_input("block coherence: feature {} appears twice in the order", f);
  }
  const int64_t n = m.rows(), nw = m.words_per_row(), blocks = (n + block_size - 1) / block_size;
  int64_t active = 0;  // (column, block) cells with at least one feature set
  std::vector<uint64_t> any(static_cast<size_t>(nw));  // [words_per_row] OR of the block's rows
  for (int64_t b = 0; b < blocks; ++b) {
    std::fill(any.begin(), any.end(), 0);
    for (int64_t i = b * block_size; i < std::min(n, (b + 1) * block_size); ++i)
      for (int64_t w = 0; w < nw; ++w) any[w] |= m.row(order[i])[w];
    for (uint64_t w : any) active += std::popcount(w);
  }
  const double cells = static_cast<double>(blocks) * static_cast<double>(m.cols());
  return (cells - static_cast<double>(active)) / cells;
}

std::vector<int64_t> natural_order(int64_t rows) {
  std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(rows, 0)));
  std::iota(order.begin(), order.end(), 0);
  return order;
}

}  // namespace sparsa
