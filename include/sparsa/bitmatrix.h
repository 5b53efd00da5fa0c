// sparsa/bitmatrix.h — a bit-packed boolean matrix, one row per feature.
//
// The common currency of the analysis: activation bitsets (features × tokens: bit = |x| > t)
// and pruning masks viewed feature by feature (rows × cols: bit = pruned). Each row is packed
// into 64-bit words, least significant bit first (bit c of a row is word c / 64, bit c % 64);
// the unused high bits of a row's last word are always zero, so popcounts over whole words are
// exact. Not thread-safe for concurrent writes to the same row; concurrent reads are fine.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sparsa {

class BitMatrix {
 public:
  BitMatrix() = default;
  BitMatrix(int64_t rows, int64_t cols)
      : rows_(rows), cols_(cols), words_per_row_((cols + 63) / 64),
        words_(static_cast<size_t>(rows * ((cols + 63) / 64)), 0) {}

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t words_per_row() const { return words_per_row_; }

  bool get(int64_t r, int64_t c) const { return (row(r)[c >> 6] >> (c & 63)) & 1u; }
  void set(int64_t r, int64_t c, bool v = true) {
    uint64_t bit = uint64_t{1} << (c & 63);
    uint64_t& w = row(r)[c >> 6];
    w = v ? (w | bit) : (w & ~bit);
  }
  uint64_t* row(int64_t r) { return words_.data() + r * words_per_row_; }
  const uint64_t* row(int64_t r) const { return words_.data() + r * words_per_row_; }
  int64_t row_count(int64_t r) const {  // number of set bits in row r
    const uint64_t* p = row(r);
    int64_t n = 0;
    for (int64_t i = 0; i < words_per_row_; ++i) n += std::popcount(p[i]);
    return n;
  }
  const std::vector<uint64_t>& words() const { return words_; }  // [rows, words_per_row]

 private:
  int64_t rows_ = 0, cols_ = 0, words_per_row_ = 0;
  std::vector<uint64_t> words_;
};

}  // namespace sparsa
