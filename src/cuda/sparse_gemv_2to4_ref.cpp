// The 2:4 packer and the CPU reference of the 2:4 sparse GEMV (sparsa/sparse_gemv_2to4.h).
#include "sparsa/error.h"
#include "sparsa/sparse_gemv_2to4.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace sparsa {
namespace {

void check_type(const char* who, DType type) {
  if (type != DType::F16 && type != DType::BF16)
    bad_input("{}: weight type {} is not supported (F16 or BF16)", who, dtype_name(type));
}

void check_in(const char* who, int64_t in) {
  if (in < kGemv2to4Group || in % kGemv2to4Group != 0)
    bad_input("{}: in {} is not a positive multiple of {}", who, in, kGemv2to4Group);
}

float half_value(DType type, uint16_t bits) { return type == DType::F16 ? f16_to_f32(bits) : bf16_to_f32(bits); }

// Zero in either half format: +0 or -0.
bool is_zero_half(uint16_t bits) { return (bits & 0x7fffu) == 0; }

}  // namespace

Gemv2to4Weights pack_gemv_2to4(DType type, int64_t in, int64_t out, const void* wt, const uint8_t* mask) {
  constexpr const char* kWho = "pack_gemv_2to4";
  check_type(kWho, type);
  check_in(kWho, in);
  if (out < 1) bad_input("{}: out {} must be at least 1", kWho, out);

  const auto* w = static_cast<const uint16_t*>(wt);  // [in, out]
  const int64_t groups = in / kGemv2to4Group, words = gemv_2to4_index_words(out);
  Gemv2to4Weights p{type, in, out, std::vector<uint8_t>(static_cast<size_t>(2 * groups * out * 2)),
                    std::vector<uint32_t>(static_cast<size_t>(groups * words))};
  auto* values = reinterpret_cast<uint16_t*>(p.values.data());  // [groups × 2, out]
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      int kept[2] = {-1, -1};
      int n = 0;
      for (int k = 0; k < kGemv2to4Group; ++k) {
        const int64_t at = (g * kGemv2to4Group + k) * out + o;
        if (mask ? mask[at] == 0 : is_zero_half(w[at])) continue;
        if (n == 2)
          bad_input("{}: column {} keeps more than 2 of the 4 inputs {}..{} ({}); not 2:4", kWho, o,
                    g * kGemv2to4Group, g * kGemv2to4Group + 3, mask ? "mask" : "non-zero weights");
        kept[n++] = k;
      }
      // Pad to two offsets, idx0 < idx1, with zero values at unused offsets.
      uint16_t v[2] = {0, 0};
      for (int r = 0; r < n; ++r) v[r] = w[(g * kGemv2to4Group + kept[r]) * out + o];
      if (n == 0) kept[0] = 0, kept[1] = 1;
      else if (n == 1) kept[1] = kept[0] == 3 ? 2 : 3;
      if (kept[1] < kept[0]) {
        std::swap(kept[0], kept[1]);
        std::swap(v[0], v[1]);
      }
      values[(2 * g) * out + o] = v[0];
      values[(2 * g + 1) * out + o] = v[1];
      const uint32_t nibble = static_cast<uint32_t>(kept[0]) | static_cast<uint32_t>(kept[1]) << 2;
      p.indices[static_cast<size_t>(g * words + o / 8)] |= nibble << (o % 8 * 4);
    }
  }
  return p;
}

void sparse_gemv_2to4(const GemvShape& shape, const void* values, const uint32_t* indices, const float* x, float* y,
                      float threshold) {
  constexpr const char* kWho = "sparse_gemv_2to4";
  const auto [type, batch, in, out] = shape;
  check_type(kWho, type);
  check_in(kWho, in);
  if (batch < 0 || out < 0) bad_input("{}: negative size (batch {}, out {})", kWho, batch, out);

  const auto* v = static_cast<const uint16_t*>(values);  // [groups × 2, out]
  const int64_t groups = in / kGemv2to4Group, words = gemv_2to4_index_words(out);
  std::vector<double> acc(static_cast<size_t>(out));  // [out]
  for (int64_t b = 0; b < batch; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const float* xb = x + b * in;
    for (int64_t g = 0; g < groups; ++g) {
      double xm[kGemv2to4Group];
      bool any = false;
      for (int k = 0; k < kGemv2to4Group; ++k) {
        const float xv = xb[g * kGemv2to4Group + k];
        xm[k] = std::abs(xv) > threshold ? xv : 0.0;
        any |= xm[k] != 0.0;
      }
      if (!any) continue;
      for (int64_t o = 0; o < out; ++o) {
        const uint32_t nibble = indices[g * words + o / 8] >> (o % 8 * 4);
        acc[static_cast<size_t>(o)] += xm[nibble & 3u] * half_value(type, v[(2 * g) * out + o]) +
                                       xm[(nibble >> 2) & 3u] * half_value(type, v[(2 * g + 1) * out + o]);
      }
    }
    for (int64_t o = 0; o < out; ++o) y[b * out + o] = static_cast<float>(acc[static_cast<size_t>(o)]);
  }
}

}  // namespace sparsa
