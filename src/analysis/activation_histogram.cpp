// Signed activation histograms with log-spaced magnitude bins, and thresholds read from them.
//
// A positive float's bit pattern grows monotonically with its value and, within one octave,
// linearly: keeping the exponent and the top 10 mantissa bits of |x| (bits >> 13) names a bin
// of relative width <= 2^-10, and bins are linear in value, so interpolating within one is exact
// for a uniform spread of the entries inside it.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "sparsa/activations.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

constexpr int kDroppedMantissaBits = 23 - 10;  // log2(kBinsPerOctave) == 10
static_assert(ActivationHistogram::kBinsPerOctave == 1 << (23 - kDroppedMantissaBits));
constexpr uint32_t kLowBits = static_cast<uint32_t>(127 + ActivationHistogram::kMinExponent) << 23;   // 2^-20
constexpr uint32_t kHighBits = static_cast<uint32_t>(127 + ActivationHistogram::kMaxExponent) << 23;  // 2^20
constexpr int64_t kOuterBin = ActivationHistogram::kFineBins + 1;

// The magnitude bin of a float with the sign bit cleared.
inline int64_t magnitude_bin(uint32_t abs_bits) {
  if (abs_bits < kLowBits) return 0;
  if (abs_bits >= kHighBits) return kOuterBin;  // also inf and NaN
  return static_cast<int64_t>((abs_bits - kLowBits) >> kDroppedMantissaBits) + 1;
}

// The rank floor(s * n), kept inside [0, n - 1].
int64_t target_rank(double s, int64_t n) {
  SPARSA_ASSERT(s >= 0.0 && s < 1.0);
  return std::min(n - 1, static_cast<int64_t>(std::floor(s * static_cast<double>(n))));
}

}  // namespace

ActivationHistogram::ActivationHistogram() : counts_(static_cast<size_t>(2 * kBinsPerSign), 0) {}

void ActivationHistogram::add(const float* x, int64_t n) {
  uint64_t* c = counts_.data();
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(x[i]);
    ++c[(bits >> 31) * kBinsPerSign + magnitude_bin(bits & 0x7fffffffu)];
  }
  total_ += n;
}

void ActivationHistogram::merge(const ActivationHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
}

void ActivationHistogram::clear() {
  std::fill(counts_.begin(), counts_.end(), uint64_t{0});
  total_ = 0;
}

float ActivationHistogram::bin_lower(int64_t b) {
  SPARSA_ASSERT(b >= 0 && b < kBinsPerSign);
  if (b == 0) return 0.0f;
  return std::bit_cast<float>(kLowBits + (static_cast<uint32_t>(b - 1) << kDroppedMantissaBits));
}

float ActivationHistogram::bin_upper(int64_t b) {
  SPARSA_ASSERT(b >= 0 && b < kBinsPerSign);
  if (b == kOuterBin) return std::numeric_limits<float>::infinity();
  return std::bit_cast<float>(kLowBits + (static_cast<uint32_t>(b) << kDroppedMantissaBits));
}

int64_t ActivationHistogram::bin_of_rank(int64_t k, int64_t& below) const {
  below = 0;
  for (int64_t b = 0; b < kBinsPerSign; ++b) {
    const auto c = static_cast<int64_t>(counts_[b] + counts_[kBinsPerSign + b]);
    if (below + c > k) return b;
    below += c;
  }
  SPARSA_ASSERT(false);  // k < total_ always lands in a bin
  return 0;
}

float ActivationHistogram::threshold(double s) const {
  if (total_ == 0) return 0.0f;
  const int64_t k = target_rank(s, total_);
  int64_t below = 0;
  const int64_t b = bin_of_rank(k, below);
  const float lo = bin_lower(b);
  if (b == kOuterBin) return lo;
  const auto in_bin = static_cast<double>(counts_[b] + counts_[kBinsPerSign + b]);
  const double frac = (static_cast<double>(k - below) + 0.5) / in_bin;  // entries spread evenly over the bin
  return static_cast<float>(lo + (static_cast<double>(bin_upper(b)) - lo) * frac);
}

std::array<float, 2> ActivationHistogram::threshold_bin(double s) const {
  if (total_ == 0) return {0.0f, 0.0f};
  int64_t below = 0;
  const int64_t b = bin_of_rank(target_rank(s, total_), below);
  return {bin_lower(b), bin_upper(b)};
}

ActivationThresholds ActivationProfile::thresholds(double sparsity) const {
  ActivationThresholds t;
  t.sparsity = sparsity;
  t.t.resize(static_cast<size_t>(n_layers));
  for (int64_t l = 0; l < n_layers; ++l)
    for (int p = 0; p < kNumObsPoints; ++p) t.t[l][p] = at(l, static_cast<ObsPoint>(p)).threshold(sparsity);
  return t;
}

}  // namespace sparsa
