// Bit-sliced all-pairs Hamming distances (see hamming_bitsliced.h), in two instruction sets:
// AVX-512 (512-bit carry-save adders with VPTERNLOG; masked adds turn the bit planes back into
// integers) and AVX2 (two 256-bit halves, five logic operations an adder; the planes turned back
// into integers by 8 x 8 bit transposes). The column sums are written once
// (hamming_bitsliced_sum.inc) and compiled for each.
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

}  // namespace

// ---- AVX-512 F/VL/BW --------------------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw")
namespace {
namespace avx512 {

using V = __m512i;
inline V vzero() { return _mm512_setzero_si512(); }
inline V vload(const uint64_t* p) { return _mm512_load_si512(p); }
inline V vand(V a, V b) { return _mm512_and_si512(a, b); }
inline V vxor(V a, V b) { return _mm512_xor_si512(a, b); }
inline void csa(V& h, V& l, V a, V b, V c) {
  h = _mm512_ternarylogic_epi64(a, b, c, 0xE8);  // majority
  l = _mm512_ternarylogic_epi64(a, b, c, 0x96);  // parity
}

#include "analysis/hamming_bitsliced_sum.inc"

// The set columns of one row, 16 columns a step with VPCOMPRESSD (see row_set_columns).
int64_t row_set_columns_avx512(const uint64_t* row, int64_t nw, uint32_t* out) {
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

// acc[g] lane j += weight for every set bit 16 g + j of the plane's 256 bits from `half`.
inline void add_plane(__m512i acc[16], const __m512i& plane, int half, int32_t weight) {
  alignas(64) uint16_t bits[32];
  _mm512_store_si512(bits, plane);
  const __m512i w = _mm512_set1_epi32(weight);
  for (int g = 0; g < 16; ++g) acc[g] = _mm512_mask_add_epi32(acc[g], bits[16 * half + g], acc[g], w);
}

// Distances from row a to the features [b0, b0 + nb) of one chunk, written to out[0, nb): the
// counts decoded from the bit planes 256 features at a time (16 registers of 16 lanes).
void chunk_distances(const SlicedCounts& s, int32_t count_a, const int32_t* count_b, int64_t nb,
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
inline void transpose16(__m512i r[16]) {
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
void mirror_rows(int32_t* out, int64_t n, int64_t a0, int64_t na, int64_t b0, int64_t nb) {
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

}  // namespace avx512
}  // namespace
#pragma GCC pop_options

// ---- AVX2 -------------------------------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx2")
namespace {
namespace avx2 {

struct V {
  __m256i lo, hi;  // words 0-3 and 4-7 of the column
};
inline V vzero() { return {_mm256_setzero_si256(), _mm256_setzero_si256()}; }
inline V vload(const uint64_t* p) {
  return {_mm256_load_si256(reinterpret_cast<const __m256i*>(p)), _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 4))};
}
inline V vand(V a, V b) { return {_mm256_and_si256(a.lo, b.lo), _mm256_and_si256(a.hi, b.hi)}; }
inline V vxor(V a, V b) { return {_mm256_xor_si256(a.lo, b.lo), _mm256_xor_si256(a.hi, b.hi)}; }
inline void csa_half(__m256i& h, __m256i& l, __m256i a, __m256i b, __m256i c) {
  const __m256i u = _mm256_xor_si256(a, b);
  l = _mm256_xor_si256(u, c);
  h = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));  // majority
}
inline void csa(V& h, V& l, V a, V b, V c) {
  csa_half(h.lo, l.lo, a.lo, b.lo, c.lo);
  csa_half(h.hi, l.hi, a.hi, b.hi, c.hi);
}

#include "analysis/hamming_bitsliced_sum.inc"

// Transposes the 8 x 8 bit block in each 64-bit lane: byte i bit k goes to byte k bit i.
inline __m256i transpose8(__m256i x) {
  const auto swap = [](__m256i v, int shift, uint64_t mask) {
    const __m256i t = _mm256_and_si256(_mm256_xor_si256(v, _mm256_srli_epi64(v, shift)), _mm256_set1_epi64x(static_cast<int64_t>(mask)));
    return _mm256_xor_si256(v, _mm256_xor_si256(t, _mm256_slli_epi64(t, shift)));
  };
  x = swap(x, 7, 0x00AA00AA00AA00AAull);
  x = swap(x, 14, 0x0000CCCC0000CCCCull);
  return swap(x, 28, 0x00000000F0F0F0F0ull);
}

// Eight planes' halves (256 features each) to bytes: out[j] byte k holds bit i of feature 8 j + k
// from plane i. Bytes j of the planes are interleaved into 64-bit lanes in three unpack rounds,
// then each lane is bit-transposed. [32] 64-bit words.
inline void planes_to_bytes(const __m256i p[8], uint64_t out[32]) {
  __m256i a[8], b[8];
  for (int i = 0; i < 4; ++i) {  // a[2 i], a[2 i + 1]: planes 2 i, 2 i + 1 for bytes 0-7, 8-15 of each 128-bit lane
    a[2 * i] = _mm256_unpacklo_epi8(p[2 * i], p[2 * i + 1]);
    a[2 * i + 1] = _mm256_unpackhi_epi8(p[2 * i], p[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h)  // b[4 h + q]: planes 4 h ... 4 h + 3 for bytes 4 q ... 4 q + 3 of each lane
    for (int q = 0; q < 4; ++q)
      b[4 * h + q] = q % 2 == 0 ? _mm256_unpacklo_epi16(a[4 * h + q / 2], a[4 * h + 2 + q / 2])
                                : _mm256_unpackhi_epi16(a[4 * h + q / 2], a[4 * h + 2 + q / 2]);
  for (int m = 0; m < 8; ++m) {  // bytes 2 m, 2 m + 1 of each lane, all eight planes
    const __m256i c = m % 2 == 0 ? _mm256_unpacklo_epi32(b[m / 2], b[4 + m / 2]) : _mm256_unpackhi_epi32(b[m / 2], b[4 + m / 2]);
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), transpose8(c));
    out[2 * m] = lanes[0], out[2 * m + 1] = lanes[1], out[16 + 2 * m] = lanes[2], out[17 + 2 * m] = lanes[3];
  }
}

inline __m256i first_lanes(int64_t n) {  // all ones in the first n of 8 int32 lanes
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The planes back into integers 256 features at a time: eight planes of weights 2^(8 g) ...
// 2^(8 g + 7) give one byte per feature (planes_to_bytes), widened and shifted into place.
void chunk_distances(const SlicedCounts& s, int32_t count_a, const int32_t* count_b, int64_t nb, int32_t* out) {
  const int groups = 1 + (s.high_used + 7) / 8;
  const __m256i ca = _mm256_set1_epi32(count_a);
  for (int half = 0; half * 256 < nb; ++half) {
    uint64_t bytes[1 + kMaxHigh / 8][32];
    for (int g = 0; g < groups; ++g) {
      __m256i p[8];
      for (int i = 0; i < 8; ++i) {
        const int h = 8 * g + i - 8;  // index into the high planes
        const V& plane = g == 0 ? s.low[i] : h < s.high_used ? s.high[h] : V{};
        p[i] = half == 0 ? plane.lo : plane.hi;
      }
      planes_to_bytes(p, bytes[g]);
    }
    for (int64_t j = 0; j < 32 && half * 256 + 8 * j < nb; ++j) {
      __m256i count = _mm256_setzero_si256();
      for (int g = 0; g < groups; ++g) {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(&bytes[g][j])));
        count = _mm256_add_epi32(count, _mm256_sllv_epi32(v, _mm256_set1_epi32(8 * g)));
      }
      const int64_t at = half * 256 + 8 * j;
      const __m256i live = first_lanes(std::min<int64_t>(8, nb - at));
      const __m256i cb = _mm256_maskload_epi32(count_b + at, live);
      const __m256i d = _mm256_sub_epi32(_mm256_add_epi32(ca, cb), _mm256_add_epi32(count, count));
      _mm256_maskstore_epi32(out + at, live, d);
    }
  }
}

// Transposes 8 x 8 int32 in registers: afterwards r[j] lane i is what r[i] lane j was.
inline void transpose8x8(__m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {  // u[4 i + k]: columns k and 4 + k of rows 4 i ... 4 i + 3
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
    r[4 + k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
  }
}

// 8 x 8 blocks transposed in registers, one 32-byte (masked) store per b.
void mirror_rows(int32_t* out, int64_t n, int64_t a0, int64_t na, int64_t b0, int64_t nb) {
  for (int64_t i0 = 0; i0 < na; i0 += 8) {
    const int64_t rows = std::min<int64_t>(8, na - i0);
    const __m256i rows_live = first_lanes(rows);
    for (int64_t j = 0; j < nb; j += 8) {
      const __m256i cols_live = first_lanes(std::min<int64_t>(8, nb - j));
      __m256i r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = i < rows ? _mm256_maskload_epi32(out + (a0 + i0 + i) * n + b0 + j, cols_live) : _mm256_setzero_si256();
      transpose8x8(r);
      for (int64_t k = 0; k < 8 && j + k < nb; ++k) _mm256_maskstore_epi32(out + (b0 + j + k) * n + a0 + i0, rows_live, r[k]);
    }
  }
}

}  // namespace avx2
}  // namespace
#pragma GCC pop_options

namespace {

template <typename Index>
void all_pairs(const BitMatrix& m, const std::vector<int32_t>& counts, SlicedIsa isa, int32_t* out) {
  const ChunkColumns columns = transpose_chunks(m);
  const SetColumns<Index> sets = set_columns<Index>(m, counts);
  const int high_planes = std::max(1, static_cast<int>(std::bit_width(static_cast<uint64_t>(m.cols()) / 256)));
  std::vector<std::pair<int64_t, int64_t>> units;  // (row chunk, column chunk), upper triangle, by column chunk
  for (int64_t c = 0; c < columns.chunks; ++c)
    for (int64_t r = 0; r <= c; ++r) units.emplace_back(r, c);
  const auto unit = isa == SlicedIsa::kAvx512 ? avx512::chunk_pair<Index> : avx2::chunk_pair<Index>;
#pragma omp parallel for schedule(dynamic)
  for (size_t u = 0; u < units.size(); ++u) unit(columns, sets, counts, high_planes, units[u].first, units[u].second, out);
}

bool cpu_has_avx512_fvlbw() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}

}  // namespace

SlicedIsa bitsliced_isa_of_cpu() {
  if (cpu_has_avx512_fvlbw()) return SlicedIsa::kAvx512;
  return __builtin_cpu_supports("avx2") ? SlicedIsa::kAvx2 : SlicedIsa::kNone;
}

void hamming_all_pairs_bitsliced(const BitMatrix& m, const std::vector<int32_t>& counts, SlicedIsa isa, int32_t* out) {
  if (isa == SlicedIsa::kNone || (isa == SlicedIsa::kAvx512 && !cpu_has_avx512_fvlbw()) ||
      !__builtin_cpu_supports("avx2"))
    bad_input("hamming: this CPU cannot run the bit-sliced kernel's {} version", isa == SlicedIsa::kAvx512 ? "AVX-512" : "AVX2");
  if (m.cols() >= (int64_t{256} << kMaxHigh))
    bad_input("hamming: {} columns is too many for the bit-sliced kernel", m.cols());
  if (m.cols() <= UINT16_MAX) return all_pairs<uint16_t>(m, counts, isa, out);  // the zero column `cols` fits too
  all_pairs<uint32_t>(m, counts, isa, out);
}

#else

SlicedIsa bitsliced_isa_of_cpu() { return SlicedIsa::kNone; }

void hamming_all_pairs_bitsliced(const BitMatrix&, const std::vector<int32_t>&, SlicedIsa, int32_t*) {
  bad_input("hamming: the bit-sliced kernel needs an x86-64 CPU with AVX2 or AVX-512");
}

#endif

int64_t row_set_columns(const uint64_t* row, int64_t nw, uint32_t* out) {
#ifdef SPARSA_BITSLICED
  static const bool avx512 = cpu_has_avx512_fvlbw();
  if (avx512) return avx512::row_set_columns_avx512(row, nw, out);
#endif
  uint32_t* at = out;
  for (int64_t w = 0; w < nw; ++w)
    for (uint64_t bits = row[w]; bits; bits &= bits - 1) *at++ = static_cast<uint32_t>(w * 64 + std::countr_zero(bits));
  return at - out;
}

}  // namespace sparsa::coact
