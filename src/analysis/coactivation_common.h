// Pieces shared by the co-activation sources: argument checks and the documented random numbers.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "sparsa/bitmatrix.h"
#include "sparsa/error.h"

namespace sparsa::coact {

// Bad input unless m has at least one feature and one column.
inline void check_matrix(const BitMatrix& m, const char* what) {
  if (m.rows() == 0 || m.cols() == 0)
    bad_input("{}: the matrix is empty ({} features x {} columns)", what, m.rows(), m.cols());
  if (m.cols() > INT32_MAX / 2) bad_input("{}: {} columns is too many (at most {})", what, m.cols(), INT32_MAX / 2);
}

inline void check_feature(const BitMatrix& m, int64_t f, const char* what) {
  if (f < 0 || f >= m.rows()) bad_input("{}: feature {} is out of range [0, {})", what, f, m.rows());
}

// |a_i AND b_j| for every row i of a and j of b (same number of columns), with the popcount
// kernel of hamming.cpp; OpenMP across rows of a. [a.rows, b.rows]
std::vector<int32_t> and_counts(const BitMatrix& a, const BitMatrix& b);

// mt19937_64 with machine-independent uniforms and normals (see sparsa/coactivation.h).
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  int64_t below(int64_t n) {  // uniform in [0, n)
    const auto v = static_cast<int64_t>(uniform() * static_cast<double>(n));
    return v < n ? v : n - 1;
  }
  double normal() {  // Box-Muller, one value per call
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace sparsa::coact
