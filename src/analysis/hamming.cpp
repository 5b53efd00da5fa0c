// Hamming distances between bit-packed features: popcount of (a AND b) per pair, with
// hamming(a, b) = |a| + |b| - 2 |a AND b|. The inner kernel handles four rows against four, in an
// AVX-512 VPOPCNTDQ version and an AVX2 nibble-lookup version chosen at run time from CPUID.
// All pairs of sparse rows go to the bit-sliced kernel (hamming_bitsliced.h) instead.
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <numeric>

#include "sparsa/coactivation.h"
#include "sparsa/error.h"
#include "analysis/coactivation_common.h"
#include "analysis/hamming_bitsliced.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SPARSA_X86_KERNELS 1
#endif

namespace sparsa {
using coact::check_feature;
using coact::check_matrix;
namespace {

// out[4 q + r] = popcount(a[q] AND b[r]) over nw words, for four rows a and four rows b.
using AndCount4x4 = void (*)(const uint64_t* const a[4], const uint64_t* const b[4], int64_t nw, int32_t out[16]);

#ifdef SPARSA_X86_KERNELS
// 16 accumulators as named locals (GCC keeps an array of them in memory): each loaded vector
// serves four pairs. SPARSA_AND4 adds the counts of row a[q] against the four b vectors.
#define SPARSA_AND4(q)                                                                          \
  {                                                                                             \
    const __m512i va = _mm512_maskz_loadu_epi64(live, a[q] + w);                                \
    c##q##0 = _mm512_add_epi64(c##q##0, _mm512_popcnt_epi64(_mm512_and_si512(va, b0)));         \
    c##q##1 = _mm512_add_epi64(c##q##1, _mm512_popcnt_epi64(_mm512_and_si512(va, b1)));         \
    c##q##2 = _mm512_add_epi64(c##q##2, _mm512_popcnt_epi64(_mm512_and_si512(va, b2)));         \
    c##q##3 = _mm512_add_epi64(c##q##3, _mm512_popcnt_epi64(_mm512_and_si512(va, b3)));         \
  }

__attribute__((target("avx512f,avx512vpopcntdq"))) void and_count4x4_avx512(
    const uint64_t* const a[4], const uint64_t* const b[4], int64_t nw, int32_t out[16]) {
  const __m512i z = _mm512_setzero_si512();
  __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
  __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
  for (int64_t w = 0; w < nw; w += 8) {
    const __mmask8 live = nw - w >= 8 ? __mmask8(0xff) : __mmask8((1u << (nw - w)) - 1);
    const __m512i b0 = _mm512_maskz_loadu_epi64(live, b[0] + w), b1 = _mm512_maskz_loadu_epi64(live, b[1] + w);
    const __m512i b2 = _mm512_maskz_loadu_epi64(live, b[2] + w), b3 = _mm512_maskz_loadu_epi64(live, b[3] + w);
    SPARSA_AND4(0) SPARSA_AND4(1) SPARSA_AND4(2) SPARSA_AND4(3)
  }
  const __m512i acc[16] = {c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33};
  for (int t = 0; t < 16; ++t) {
    alignas(64) int64_t lanes[8];
    _mm512_store_si512(lanes, acc[t]);
    out[t] = static_cast<int32_t>(lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7]);
  }
}
#undef SPARSA_AND4

// Byte-wise popcount of a 256-bit vector summed into four 64-bit lanes (nibble table lookup).
__attribute__((target("avx2"))) inline __m256i popcount_lanes_avx2(__m256i v) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, nibble));
  const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
  return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
}

__attribute__((target("avx2"))) int64_t hsum_avx2(__m256i v) {
  alignas(32) int64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// One row of a against four rows of b (16 ymm registers do not hold a 4 x 4 block).
__attribute__((target("avx2,popcnt"))) void and_count1x4_avx2(const uint64_t* a, const uint64_t* const b[4], int64_t nw,
                                                              int32_t out[4]) {
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  int64_t w = 0;
  for (; w + 4 <= nw; w += 4) {
    const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + w));
    for (int r = 0; r < 4; ++r) {
      const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[r] + w));
      acc[r] = _mm256_add_epi64(acc[r], popcount_lanes_avx2(_mm256_and_si256(va, vb)));
    }
  }
  for (int r = 0; r < 4; ++r) {
    int64_t n = hsum_avx2(acc[r]);
    for (int64_t t = w; t < nw; ++t) n += std::popcount(a[t] & b[r][t]);
    out[r] = static_cast<int32_t>(n);
  }
}

void and_count4x4_avx2(const uint64_t* const a[4], const uint64_t* const b[4], int64_t nw, int32_t out[16]) {
  for (int q = 0; q < 4; ++q) and_count1x4_avx2(a[q], b, nw, out + 4 * q);
}
#endif

void and_count4x4_portable(const uint64_t* const a[4], const uint64_t* const b[4], int64_t nw, int32_t out[16]) {
  for (int q = 0; q < 4; ++q)
    for (int r = 0; r < 4; ++r) {
      int64_t n = 0;
      for (int64_t w = 0; w < nw; ++w) n += std::popcount(a[q][w] & b[r][w]);
      out[4 * q + r] = static_cast<int32_t>(n);
    }
}

#ifdef SPARSA_X86_KERNELS
bool cpu_has_avx512_popcount() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt"); }
#endif

struct Kernel {
  const char* name;
  AndCount4x4 fn;
};

Kernel best_kernel() {
#ifdef SPARSA_X86_KERNELS
  if (cpu_has_avx512_popcount()) return {"AVX-512 VPOPCNTDQ", and_count4x4_avx512};
  if (cpu_has_avx2()) return {"AVX2", and_count4x4_avx2};
#endif
  return {"portable", and_count4x4_portable};  // same integers, no vector units needed
}

Kernel g_kernel = best_kernel();
coact::SlicedIsa g_sliced = coact::bitsliced_isa_of_cpu();

constexpr int64_t kTile = 64;  // rows per tile: two tiles of 2 KiB rows stay in L2

// For the rows a[0..na) and j in [j0, j1): dist(a[t], j) written to out[t * ld + (j - j0)].
// Works in 4 x 4 blocks; a ragged edge repeats its last row and drops the repeats.
void hamming_tile(const BitMatrix& m, const std::vector<int32_t>& counts, const int64_t* a, int64_t na, int64_t j0,
                  int64_t j1, int32_t* out, int64_t ld) {
  const int64_t nw = m.words_per_row();
  for (int64_t t = 0; t < na; t += 4) {
    int64_t i[4];
    const uint64_t* pa[4];
    for (int q = 0; q < 4; ++q) i[q] = a[std::min(t + q, na - 1)], pa[q] = m.row(i[q]);
    for (int64_t j = j0; j < j1; j += 4) {
      const uint64_t* pb[4];
      for (int r = 0; r < 4; ++r) pb[r] = m.row(std::min(j + r, j1 - 1));
      int32_t both[16];
      g_kernel.fn(pa, pb, nw, both);
      for (int q = 0; q < 4 && t + q < na; ++q)
        for (int r = 0; r < 4 && j + r < j1; ++r)
          out[(t + q) * ld + (j + r - j0)] = counts[i[q]] + counts[j + r] - 2 * both[4 * q + r];
    }
  }
}

// Faults in the pages of a large output buffer up front, both threads' share in parallel, with
// madvise(MADV_POPULATE_WRITE): one call per slice instead of one page-fault trap per 4 KiB page
// (the traps dominated first-touch cost, ~25 % of an all-pairs run). Only a hint: a kernel without
// it (before Linux 5.14) leaves the pages to fault in on first write as before.
void prefault(void* p, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  constexpr size_t kSlice = size_t{8} << 20;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (end <= begin + kSlice) return;
#ifdef MADV_HUGEPAGE
  // Transparent huge pages where the system allows them on request: a fault per 2 MiB instead
  // of per 4 KiB.
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t huge_begin = (begin + kHuge - 1) & ~(kHuge - 1), huge_end = end & ~(kHuge - 1);
  if (huge_end > huge_begin) madvise(reinterpret_cast<void*>(huge_begin), huge_end - huge_begin, MADV_HUGEPAGE);
#endif
  const int64_t slices = static_cast<int64_t>((end - begin + kSlice - 1) / kSlice);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < slices; ++i) {
    const uintptr_t a = begin + static_cast<uintptr_t>(i) * kSlice;
    madvise(reinterpret_cast<void*>(a), std::min<uintptr_t>(kSlice, end - a), MADV_POPULATE_WRITE);
  }
#endif
}

std::vector<int32_t> row_counts(const BitMatrix& m) {
  std::vector<int32_t> counts(static_cast<size_t>(m.rows()));
  for (int64_t r = 0; r < m.rows(); ++r) counts[r] = static_cast<int32_t>(m.row_count(r));
  return counts;
}

}  // namespace

void force_kernel_isa(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAuto:
      g_kernel = best_kernel();
      g_sliced = coact::bitsliced_isa_of_cpu();
      return;
#ifdef SPARSA_X86_KERNELS
    case KernelIsa::kAvx512:
      if (!cpu_has_avx512_popcount() || coact::bitsliced_isa_of_cpu() != coact::SlicedIsa::kAvx512)
        bad_input("kernel instruction set: this CPU lacks AVX-512 F, VL, BW or VPOPCNTDQ");
      g_kernel = {"AVX-512 VPOPCNTDQ", and_count4x4_avx512};
      g_sliced = coact::SlicedIsa::kAvx512;
      return;
    case KernelIsa::kAvx2:
      if (!cpu_has_avx2()) bad_input("kernel instruction set: this CPU has no AVX2");
      g_kernel = {"AVX2", and_count4x4_avx2};
      g_sliced = coact::SlicedIsa::kAvx2;
      return;
#else
    default: bad_input("kernel instruction set: only the portable kernels exist on this architecture");
#endif
  }
}

HammingKernels active_hamming_kernels() {
  const char* sliced = g_sliced == coact::SlicedIsa::kAvx512 ? "AVX-512" : g_sliced == coact::SlicedIsa::kAvx2 ? "AVX2" : "none";
  return {g_kernel.name, sliced};
}

std::vector<int32_t> hamming_to(const BitMatrix& m, std::span<const int64_t> features) {
  check_matrix(m, "hamming");
  for (int64_t f : features) check_feature(m, f, "hamming");
  const std::vector<int32_t> counts = row_counts(m);
  const int64_t n = m.rows(), na = static_cast<int64_t>(features.size());
  std::vector<int32_t> out(static_cast<size_t>(na * n));  // [features, rows]
  const int64_t n_i = (na + kTile - 1) / kTile, n_j = (n + kTile - 1) / kTile;
#pragma omp parallel for schedule(dynamic)
  for (int64_t t = 0; t < n_i * n_j; ++t) {
    const int64_t a0 = (t / n_j) * kTile, j0 = (t % n_j) * kTile;
    hamming_tile(m, counts, features.data() + a0, std::min(kTile, na - a0), j0, std::min(j0 + kTile, n),
                 out.data() + a0 * n + j0, n);
  }
  return out;
}

namespace coact {
std::vector<int32_t> and_counts(const BitMatrix& a, const BitMatrix& b) {
  SPARSA_ASSERT(a.cols() == b.cols());
  const int64_t na = a.rows(), nb = b.rows();
  std::vector<int32_t> out(static_cast<size_t>(na * nb));  // [na, nb]
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < na; i += 4) {
    const uint64_t* pa[4];
    for (int q = 0; q < 4; ++q) pa[q] = a.row(std::min(i + q, na - 1));
    for (int64_t j = 0; j < nb; j += 4) {
      const uint64_t* pb[4];
      for (int r = 0; r < 4; ++r) pb[r] = b.row(std::min(j + r, nb - 1));
      int32_t both[16];
      g_kernel.fn(pa, pb, a.words_per_row(), both);
      for (int q = 0; q < 4 && i + q < na; ++q)
        for (int r = 0; r < 4 && j + r < nb; ++r) out[(i + q) * nb + j + r] = both[4 * q + r];
    }
  }
  return out;
}
}  // namespace coact

std::vector<int32_t> hamming_from(const BitMatrix& m, int64_t reference) {
  return hamming_to(m, std::span<const int64_t>(&reference, 1));
}

std::vector<int64_t> coactivation_order(const BitMatrix& m, int64_t reference) {
  const std::vector<int32_t> d = hamming_from(m, reference);
  std::vector<int64_t> order(d.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return d[a] < d[b]; });
  return order;
}

std::vector<int64_t> hamming_nearest(const BitMatrix& m, int64_t reference, int64_t k) {
  if (k < 1) bad_input("hamming nearest: k = {} must be at least 1", k);
  std::vector<int64_t> order = coactivation_order(m, reference);
  order.erase(std::find(order.begin(), order.end(), reference));
  order.resize(static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(order.size()))));
  return order;
}

bool bitsliced_hamming_available() { return g_sliced != coact::SlicedIsa::kNone; }

void hamming_all_pairs_into(const BitMatrix& m, std::span<int32_t> out, AllPairsMethod method) {
  check_matrix(m, "hamming");
  const int64_t n = m.rows(), tiles = (n + kTile - 1) / kTile;
  if (out.size() != static_cast<size_t>(n * n))
    bad_input("hamming: the output holds {} values, {} x {} features need {}", out.size(), n, n, n * n);
  const std::vector<int32_t> counts = row_counts(m);
  prefault(out.data(), out.size_bytes());
  if (method == AllPairsMethod::kAuto) {
    const double bits = std::accumulate(counts.begin(), counts.end(), 0.0);
    const bool sparse = bits <= kBitSlicedMaxDensity * static_cast<double>(n) * static_cast<double>(m.cols());
    method = sparse && bitsliced_hamming_available() ? AllPairsMethod::kBitSliced : AllPairsMethod::kPopcount;
  }
  if (method == AllPairsMethod::kBitSliced) return coact::hamming_all_pairs_bitsliced(m, counts, g_sliced, out.data());
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<std::pair<int64_t, int64_t>> upper;  // tile pairs (bi <= bj)
  for (int64_t bi = 0; bi < tiles; ++bi)
    for (int64_t bj = bi; bj < tiles; ++bj) upper.emplace_back(bi, bj);
#pragma omp parallel for schedule(dynamic)
  for (size_t t = 0; t < upper.size(); ++t) {
    const int64_t i0 = upper[t].first * kTile, j0 = upper[t].second * kTile;
    const int64_t i1 = std::min(i0 + kTile, n), j1 = std::min(j0 + kTile, n);
    hamming_tile(m, counts, rows.data() + i0, i1 - i0, j0, j1, out.data() + i0 * n + j0, n);
    if (i0 == j0) continue;
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = j0; j < j1; ++j) out[j * n + i] = out[i * n + j];
  }
}

std::vector<int32_t> hamming_all_pairs(const BitMatrix& m, AllPairsMethod method) {
  coact::check_matrix(m, "hamming");
  std::vector<int32_t> out(static_cast<size_t>(m.rows() * m.rows()));
  hamming_all_pairs_into(m, out, method);
  return out;
}

}  // namespace sparsa
