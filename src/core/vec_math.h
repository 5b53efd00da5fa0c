// Branch-free elementwise math that the compiler vectorises inside `#pragma omp simd` loops.
#pragma once

#include <bit>
#include <cstdint>

namespace sparsa {

// e^x for x in [-87.3, 88] (clamped outside), max relative error about 2e-7 (a degree-6 polynomial on
// [-ln2/2, ln2/2] after the reduction x = n ln2 + r). Results below e^-87.3 flush to ~1e-38
// rather than to 0; callers never feed masked (-inf) entries.
inline float fast_exp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kShifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * kLog2e + kShifter;
  const int32_t n = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kShifter);
  const float fn = t - kShifter;
  // r = x - fn * ln2, with ln2 split in two for accuracy
  float r = x - fn * 0.693145751953125f;
  r = r - fn * 1.428606765330187045e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((n + 127) << 23);
}

}  // namespace sparsa

namespace sparsa {

// Σ_j e^((x[j] - shift) * scale) over n entries; when `terms` is not null each term is stored
// there too (it may alias x). Summed in 16 fixed lanes, so the result is bit-identical whatever
// vector width the CPU offers (AVX2 or AVX-512). Requires (x[j] - shift) * scale <= 88.
float sum_exp(const float* x, int64_t n, float shift, float scale, float* terms);

}  // namespace sparsa
