// Threshold calibration and inactive-input fractions for the GPU decoder (sparsa/decode.h): the
// decoder records what its linears receive, and the histograms of sparsa/activations.h turn the
// values into thresholds exactly as `sparsa acts` does. Plain C++: the GPU work is in the decoder.
#include <cmath>

#include "sparsa/decode.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

size_t slot(int64_t layer, ObsPoint p) { return static_cast<size_t>(layer * kNumObsPoints + static_cast<int>(p)); }

// The histograms of what every point received over `steps` steps from `prompt`, decoded with the
// decoder's current thresholds.
ActivationProfile recorded_profile(GpuDecoder& d, const std::vector<int32_t>& prompt, int64_t steps) {
  const int64_t layers = d.config().num_layers;
  d.reset(prompt);
  ActivationProfile profile;
  profile.n_layers = layers;
  profile.hist.resize(static_cast<size_t>(layers * kNumObsPoints));
  profile.tokens = steps;
  d.run_recorded(steps, [&](int64_t layer, ObsPoint p, const float* x, int64_t n, int64_t dim) {
    profile.hist[slot(layer, p)].add(x, n * dim);
  });
  return profile;
}

}  // namespace

std::vector<ActivationThresholds> calibrate_decode_thresholds(GpuDecoder& d, const std::vector<int32_t>& prompt,
                                                              int64_t steps, const std::vector<double>& sparsities,
                                                              int refinement_passes) {
  if (steps < 1) bad_input("decode calibration needs at least one step, got {}", steps);
  if (refinement_passes < 0) bad_input("decode calibration: refinement passes must be >= 0, got {}", refinement_passes);
  const int64_t layers = d.config().num_layers;
  d.set_thresholds(dense_thresholds(layers));
  const ActivationProfile dense = recorded_profile(d, prompt, steps);
  std::vector<ActivationThresholds> out;
  for (double s : sparsities) {
    ActivationThresholds t = dense.thresholds(s);
    for (int pass = 0; pass < refinement_passes; ++pass) {
      d.set_thresholds(t);
      t = recorded_profile(d, prompt, steps).thresholds(s);
    }
    out.push_back(std::move(t));
  }
  d.set_thresholds(dense_thresholds(layers));
  return out;
}

std::vector<std::array<double, kNumObsPoints>> decode_inactive_fractions(GpuDecoder& d,
                                                                         const std::vector<int32_t>& prompt,
                                                                         int64_t steps) {
  const int64_t layers = d.config().num_layers;
  const ActivationThresholds t = d.thresholds();
  std::vector<int64_t> inactive(static_cast<size_t>(layers * kNumObsPoints), 0),
      total(static_cast<size_t>(layers * kNumObsPoints), 0);
  d.reset(prompt);
  d.run_recorded(steps, [&](int64_t layer, ObsPoint p, const float* x, int64_t n, int64_t dim) {
    const float threshold = t.t[static_cast<size_t>(layer)][static_cast<size_t>(p)];
    int64_t count = 0;
    for (int64_t i = 0; i < n * dim; ++i) count += std::fabs(x[i]) <= threshold;
    inactive[slot(layer, p)] += count;
    total[slot(layer, p)] += n * dim;
  });
  std::vector<std::array<double, kNumObsPoints>> out(static_cast<size_t>(layers));
  for (int64_t l = 0; l < layers; ++l)
    for (int p = 0; p < kNumObsPoints; ++p) {
      const size_t i = slot(l, static_cast<ObsPoint>(p));
      out[static_cast<size_t>(l)][static_cast<size_t>(p)] =
          total[i] ? static_cast<double>(inactive[i]) / static_cast<double>(total[i]) : 0.0;
    }
  return out;
}

}  // namespace sparsa
