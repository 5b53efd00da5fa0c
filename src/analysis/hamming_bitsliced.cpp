// Bit-sliced all-pairs Hamming distances (see hamming_bitsliced.h). AVX-512 only: 512-bit
// carry-save adders with VPTERNLOG and masked adds to turn the bit planes back into
// integers (AVX-512BW masks).
#include "analysis/hamming_bitsliced.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <utility>

#include "sparsa/error.h"
#include "sparsa/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SPARSA_BITSLICED 1
#endif

namespace sparsa::coact {

#ifdef SPARSA_BITSLICED
namespace {

constexpr int64_t kChunk = 512;  // features per chunk: one bit each in a 512-bit column
constexpr int64_t kWords = kChunk / 64;
constexpr int64_t kRound = 16;   // columns per carry-save round
constexpr int kMaxHigh = 24;     // planes of the high counter: counts below 256 * 2^24

// 512 bits in memory, on a cache line of their own.
struct alignas(64) Plane {
  uint64_t w[kWords];
};

// The matrix by columns, chunk by chunk: column t of chunk c holds bit (f - 512 c) for every
// feature f of the chunk set at column t. Each chunk has one extra all-zero column (index
// `cols`), the target of the padding in the index lists. Cache-line aligned: a column load that
// straddles two lines costs about twice as much (measured). [chunks, cols + 1] columns.
struct ChunkColumns {
  int64_t cols = 0, chunks = 0;
  std::vector<Plane> columns;
  const uint64_t* chunk(int64_t c) const { return columns[static_cast<size_t>(c * (cols + 1))].w; }
};

// Transposes a 64 x 64 bit block in place, bits least significant first: afterwards bit i of
// a[j] is what bit j of a[i] was. Six rounds of swapping j x j sub-blocks (j = 32, 16, ..., 1).
void transpose64(uint64_t a[64]) {
  uint64_t mask = 0x00000000ffffffffull;
  for (int j = 32; j != 0; j >>= 1, mask ^= mask << j)
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & mask;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
}

// 64 rows x 64 columns at a time: the rows' word w, transposed, gives word `lane block` of 64
// columns.
ChunkColumns transpose_chunks(const BitMatrix& m) {
  ChunkColumns t;
  t.cols = m.cols();
  t.chunks = (m.rows() + kChunk - 1) / kChunk;
  t.columns.assign(static_cast<size_t>(t.chunks * (t.cols + 1)), Plane{});
  const int64_t blocks = (m.rows() + 63) / 64;  // of 64 features
#pragma omp parallel for schedule(static)
  for (int64_t fb = 0; fb < blocks; ++fb) {
    Plane* out = &t.columns[static_cast<size_t>(fb / kWords * (t.cols + 1))];
    const int64_t lanes = std::min<int64_t>(64, m.rows() - fb * 64);
    for (int64_t w = 0; w < m.words_per_row(); ++w) {
      uint64_t block[64] = {};
      for (int64_t i = 0; i < lanes; ++i) block[i] = m.row(fb * 64 + i)[w];
      transpose64(block);
      for (int64_t j = 0; j < std::min<int64_t>(64, t.cols - w * 64); ++j) out[w * 64 + j].w[fb % kWords] = block[j];
    }
  }
  return t;
}

// Each row's set columns, padded with `cols` (the zero column) to a multiple of kRound. Index:
// uint16_t when cols < 2^16 (half the bytes streamed through the caches per column added), else
// uint32_t.
template <typename Index>
struct SetColumns {
  std::vector<int64_t> offset;  // [rows + 1]
  std::vector<Index> index;
};

#define SPARSA_TARGET __attribute__((target("avx512f,avx512vl,avx512bw")))

// The set columns of one row, 16 columns a step with VPCOMPRESSD (see row_set_columns).
SPARSA_TARGET int64_t row_set_columns_avx512(const uint64_t* row, int64_t nw, uint32_t* out) {
  const __m512i step = _mm512_set1_epi32(16);
  __m512i col = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  uint32_t* at = out;
  for (int64_t w = 0; w < nw; ++w)
    for (int q = 0; q < 4; ++q, col = _mm512_add_epi32(col, step)) {
      const auto bits = static_cast<__mmask16>(row[w] >> (16 * q));
      _mm512_storeu_si512(at, _mm512_maskz_compress_epi32(bits, col));
      at += std::popcount(static_cast<unsigned>(bits));
    }
  return at - out;
}

template <typename Index>
SetColumns<Index> set_columns(const BitMatrix& m, const std::vector<int32_t>& counts) {
  SetColumns<Index> s;
  s.offset.resize(static_cast<size_t>(m.rows() + 1), 0);
  for (int64_t r = 0; r < m.rows(); ++r)
    s.offset[r + 1] = s.offset[r] + (counts[r] + kRound - 1) / kRound * kRound;
  s.index.resize(static_cast<size_t>(s.offset.back()));
  ParallelFailure failure;
#pragma omp parallel
  {
    std::vector<uint32_t> scratch;  // [cols + 16]
    failure.run([&] { scratch.resize(static_cast<size_t>(m.cols() + 16)); });
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m.rows(); ++r) {
      if (failure.failed()) continue;
      row_set_columns(m.row(r), m.words_per_row(), scratch.data());  // = counts[r]
      Index* out = s.index.data() + s.offset[r];
      std::copy_n(scratch.data(), counts[r], out);
      std::fill(out + counts[r], s.index.data() + s.offset[r + 1], static_cast<Index>(m.cols()));
    }
  }
  failure.rethrow_if_any([&] { return fmt::format("listing the set columns of a [{}, {}] bit matrix", m.rows(), m.cols()); });
  return s;
}

// Carry-save adder: h:l = a + b + c, bit by bit (h = majority, l = parity).
SPARSA_TARGET inline void csa(__m512i& h, __m512i& l, __m512i a, __m512i b, __m512i c) {
  h = _mm512_ternarylogic_epi64(a, b, c, 0xE8);
  l = _mm512_ternarylogic_epi64(a, b, c, 0x96);
}

// Adds 16 vectors, v(0) ... v(15), into the 4-plane carry-save counter (ones, twos, fours,
// eights) and returns the carry out of it, worth 16 per bit (Harley-Seal: 15 adders).
template <typename Load>
SPARSA_TARGET inline __m512i add16(__m512i& ones, __m512i& twos, __m512i& fours, __m512i& eights, Load v) {
  __m512i twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens;
  csa(twos_a, ones, ones, v(0), v(1));
  csa(twos_b, ones, ones, v(2), v(3));
  csa(fours_a, twos, twos, twos_a, twos_b);
  csa(twos_a, ones, ones, v(4), v(5));
  csa(twos_b, ones, ones, v(6), v(7));
  csa(fours_b, twos, twos, twos_a, twos_b);
  csa(eights_a, fours, fours, fours_a, fours_b);
  csa(twos_a, ones, ones, v(8), v(9));
  csa(twos_b, ones, ones, v(10), v(11));
  csa(fours_a, twos, twos, twos_a, twos_b);
  csa(twos_a, ones, ones, v(12), v(13));
  csa(twos_b, ones, ones, v(14), v(15));
  csa(fours_b, twos, twos, twos_a, twos_b);
  csa(eights_b, fours, fours, fours_a, fours_b);
  csa(sixteens, eights, eights, eights_a, eights_b);
  return sixteens;
}

// The 512 counts of one row against one chunk, bit-sliced in two carry-save levels and a ripple
// counter: count = sum over p < 8 of 2^p low[p] + sum over p of 256 * 2^p high[p] (bits).
// alignas: it lives in code compiled for AVX2, where __m512i is only 32-byte aligned, and the
// AVX-512 functions access it with aligned 64-byte moves.
struct alignas(64) SlicedCounts {
  __m512i low[8];  // weights 1, 2, ..., 128
  __m512i high[kMaxHigh];
  int high_used = 0;
};

// The inputs of add16: chunk columns by index, or the first n of a buffer (zeros after).
template <typename Index>
struct ColumnsAt {
  const uint64_t* columns;
  const Index* index;
  SPARSA_TARGET __m512i operator()(int j) const { return _mm512_load_si512(columns + size_t{index[j]} * kWords); }
};
struct Buffered {
  const __m512i* v;
  int n;
  SPARSA_TARGET __m512i operator()(int j) const { return j < n ? v[j] : _mm512_setzero_si512(); }
};

// Adds the n buffered level-1 carries into level 2 and ripples its carry into the high planes.
SPARSA_TARGET void level2_add(__m512i l2[4], const __m512i* carries, int n, SlicedCounts& s) {
  __m512i carry = add16(l2[0], l2[1], l2[2], l2[3], Buffered{carries, n});
  for (int p = 0; p < s.high_used; ++p) {
    const __m512i next = _mm512_and_si512(s.high[p], carry);
    s.high[p] = _mm512_xor_si512(s.high[p], carry);
    carry = next;
  }
}

// Sums the chunk columns listed in idx[0, n) (n a multiple of kRound) into s. Level 1 adds the
// columns 16 at a time; its carries (worth 16) are kept and added 16 at a time by level 2, whose
// carries (worth 256) ripple into the high planes: no data-dependent branch in the loop.
template <typename Index>
SPARSA_TARGET void accumulate(const uint64_t* columns, const Index* idx, int64_t n, int high_planes, SlicedCounts& s) {
  const __m512i z = _mm512_setzero_si512();
  __m512i l1[4] = {z, z, z, z}, l2[4] = {z, z, z, z};
  alignas(64) __m512i carries[kRound];
  int pending = 0;
  for (int p = 0; p < high_planes; ++p) s.high[p] = z;
  s.high_used = high_planes;
  for (int64_t i = 0; i < n; i += kRound) {
    carries[pending++] = add16(l1[0], l1[1], l1[2], l1[3], ColumnsAt<Index>{columns, idx + i});
    if (pending == kRound) level2_add(l2, carries, pending, s), pending = 0;
  }
  if (pending) level2_add(l2, carries, pending, s);
  for (int p = 0; p < 4; ++p) s.low[p] = l1[p], s.low[4 + p] = l2[p];
}

// acc[g] lane j += weight for every set bit 16 g + j of the plane's 256 bits from `half`.
SPARSA_TARGET inline void add_plane(__m512i acc[16], const __m512i& plane, int half, int32_t weight) {
  alignas(64) uint16_t bits[32];
  _mm512_store_si512(bits, plane);
  const __m512i w = _mm512_set1_epi32(weight);
  for (int g = 0; g < 16; ++g) acc[g] = _mm512_mask_add_epi32(acc[g], bits[16 * half + g], acc[g], w);
}

// Distances from row a to the features [b0, b0 + nb) of one chunk, written to out[0, nb): the
// counts decoded from the bit planes 256 features at a time (16 registers of 16 lanes).
SPARSA_TARGET void chunk_distances(const SlicedCounts& s, int32_t count_a, const int32_t* count_b, int64_t nb,
                                   int32_t* out) {
  const __m512i ca = _mm512_set1_epi32(count_a);
  for (int half = 0; half * 256 < nb; ++half) {
    __m512i acc[16];
    for (__m512i& v : acc) v = _mm512_setzero_si512();
    for (int p = 0; p < 8; ++p) add_plane(acc, s.low[p], half, 1 << p);
    for (int p = 0; p < s.high_used; ++p) add_plane(acc, s.high[p], half, 256 << p);
    for (int64_t g = 0; g < 16 && half * 256 + g * 16 < nb; ++g) {
      const int64_t at = half * 256 + g * 16;
      const __mmask16 live = nb - at >= 16 ? __mmask16(0xffff) : __mmask16((1u << (nb - at)) - 1);
      const __m512i cb = _mm512_maskz_loadu_epi32(live, count_b + at);
      const __m512i d = _mm512_sub_epi32(_mm512_add_epi32(ca, cb), _mm512_add_epi32(acc[g], acc[g]));
      _mm512_mask_storeu_epi32(out + at, live, d);
    }
  }
}

// Transposes 16 x 16 int32 in registers: afterwards r[j] lane i is what r[i] lane j was.
// (GCC 12 warns about the _mm512_undefined_epi32() inside its unpack intrinsics: a false positive.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
SPARSA_TARGET inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // within 128-bit lanes: pairs of rows interleaved
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // u[4 i + k], 128-bit lane l: column 4 l + k of rows 4 i ... 4 i + 3
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; ++k) {  // gather lane l of u[k], u[4 + k], u[8 + k], u[12 + k] into column 4 l + k
    const __m512i even_lo = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x88), odd_lo = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xdd);
    const __m512i even_hi = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x88);
    const __m512i odd_hi = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xdd);
    r[k] = _mm512_shuffle_i32x4(even_lo, even_hi, 0x88);
    r[8 + k] = _mm512_shuffle_i32x4(even_lo, even_hi, 0xdd);
    r[4 + k] = _mm512_shuffle_i32x4(odd_lo, odd_hi, 0x88);
    r[12 + k] = _mm512_shuffle_i32x4(odd_lo, odd_hi, 0xdd);
  }
}
#pragma GCC diagnostic pop

// Copies out[a, b] to out[b, a] for a in [a0, a0 + na) (na <= 16) and b in [b0, b0 + nb) of the
// [n, n] matrix: 16 x 16 blocks transposed in registers, one 64-byte (masked) store per b.
SPARSA_TARGET void mirror_rows(int32_t* out, int64_t n, int64_t a0, int64_t na, int64_t b0, int64_t nb) {
  const __mmask16 rows_live = na >= 16 ? __mmask16(0xffff) : __mmask16((1u << na) - 1);
  for (int64_t j = 0; j < nb; j += 16) {
    const __mmask16 cols_live = nb - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (nb - j)) - 1);
    __m512i r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < na ? _mm512_maskz_loadu_epi32(cols_live, out + (a0 + i) * n + b0 + j) : _mm512_setzero_si512();
    transpose16(r);
    for (int k = 0; k < 16 && j + k < nb; ++k) _mm512_mask_storeu_epi32(out + (b0 + j + k) * n + a0, rows_live, r[k]);
  }
}

}  // namespace

bool bitsliced_supported() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}

namespace {

template <typename Index>
void all_pairs(const BitMatrix& m, const std::vector<int32_t>& counts, int32_t* out) {
  const int64_t n = m.rows();
  const ChunkColumns columns = transpose_chunks(m);
  const SetColumns<Index> sets = set_columns<Index>(m, counts);
  const int high_planes = std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(m.cols()) / 256)));
  std::vector<std::pair<int64_t, int64_t>> units;  // (row chunk, column chunk), upper triangle, by column chunk
  for (int64_t c = 0; c < columns.chunks; ++c)
    for (int64_t r = 0; r <= c; ++r) units.emplace_back(r, c);
#pragma omp parallel for schedule(dynamic)
  for (size_t u = 0; u < units.size(); ++u) {
    const auto [r, c] = units[u];
    const int64_t a0 = r * kChunk, a1 = std::min(n, a0 + kChunk);
    const int64_t b0 = c * kChunk, nb = std::min(n, b0 + kChunk) - b0;
    SlicedCounts s;
    for (int64_t g = a0; g < a1; g += 16) {  // 16 rows, then their mirror image below the diagonal
      for (int64_t a = g; a < std::min(a1, g + 16); ++a) {
        accumulate(columns.chunk(c), sets.index.data() + sets.offset[a], sets.offset[a + 1] - sets.offset[a],
                   high_planes, s);
        chunk_distances(s, counts[a], counts.data() + b0, nb, out + a * n + b0);
      }
      if (r != c) mirror_rows(out, n, g, std::min<int64_t>(16, a1 - g), b0, nb);
    }
  }
}

}  // namespace

void hamming_all_pairs_bitsliced(const BitMatrix& m, const std::vector<int32_t>& counts, int32_t* out) {
  if (!bitsliced_supported()) bad_input("hamming: the bit-sliced kernel needs AVX-512 (F, VL, BW)");
  if (m.cols() >= (int64_t{256} << kMaxHigh))
    bad_input("hamming: {} columns is too many for the bit-sliced kernel", m.cols());
  if (m.cols() <= UINT16_MAX) return all_pairs<uint16_t>(m, counts, out);  // the zero column `cols` fits too
  all_pairs<uint32_t>(m, counts, out);
}

#else

bool bitsliced_supported() { return false; }

void hamming_all_pairs_bitsliced(const BitMatrix&, const std::vector<int32_t>&, int32_t*) {
  bad_input("hamming: the bit-sliced kernel needs an x86-64 CPU with AVX-512");
}

#endif

int64_t row_set_columns(const uint64_t* row, int64_t nw, uint32_t* out) {
#ifdef SPARSA_BITSLICED
  static const bool avx512 = bitsliced_supported();
  if (avx512) return row_set_columns_avx512(row, nw, out);
#endif
  uint32_t* at = out;
  for (int64_t w = 0; w < nw; ++w)
    for (uint64_t bits = row[w]; bits; bits &= bits - 1) *at++ = static_cast<uint32_t>(w * 64 + std::countr_zero(bits));
  return at - out;
}

}  // namespace sparsa::coact
