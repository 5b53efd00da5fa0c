// Internal to the analysis: all-pairs AND counts of sparse bit rows by bit-sliced counting.
//
// For a feature a and a chunk of 512 other features, |a AND b| for all 512 b at once is the
// number of a's set columns t in which b is set: the sum, over t in a's set columns, of the
// chunk's 512-bit column t. The sums are kept bit-sliced (plane p holds bit p of all 512 counts)
// and added with carry-save adders (Harley-Seal, 16 columns a round), so the work per pair is
// proportional to the density of a instead of to the number of columns: at 15 % density about a
// fifth of the popcount kernel's instructions.
#pragma once

#include <cstdint>
#include <vector>

#include "sparsa/bitmatrix.h"

namespace sparsa::coact {

// The kernel's two versions: 512-bit columns in one AVX-512 register (F, VL, BW) or in two AVX2
// ones. Both give identical integers.
enum class SlicedIsa { kNone, kAvx2, kAvx512 };
// The widest version this CPU runs (kNone: neither, or not x86-64).
SlicedIsa bitsliced_isa_of_cpu();

// The set columns of a row of nw words, ascending, written to out; returns how many. out needs
// room for 16 more than that (whole vectors are stored on AVX-512 CPUs). Any CPU.
int64_t row_set_columns(const uint64_t* row, int64_t nw, uint32_t* out);

// out[a * rows + b] = counts[a] + counts[b] - 2 |a AND b| for every pair: the full symmetric
// [rows, rows] matrix. counts[r] = set bits of row r. kBadInput when this CPU cannot run `isa`.
// OpenMP across (row chunk, column chunk) pairs of the upper triangle; the lower one is mirrored.
void hamming_all_pairs_bitsliced(const BitMatrix& m, const std::vector<int32_t>& counts, SlicedIsa isa, int32_t* out);

}  // namespace sparsa::coact
