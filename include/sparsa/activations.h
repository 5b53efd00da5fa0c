// sparsa/activations.h — activation sparsity: histograms of the activations at each block's
// four observation points (attn_in = input of q/k/v, o_in, mlp_in = input of gate/up /
// fc1, down_in), thresholds for target sparsities, bitsets |x| > t, and an observer that
// sparsifies activations (|x| <= t -> 0) for the quality-vs-sparsity curve.
//
// Threshold definition (TEAL, golden/README.md): for target s over the n entries a point sees,
// t = sorted(|x|)[floor(s * n)]. It is estimated from a histogram whose magnitude bins are
// log-spaced with 2^10 bins per octave (each bin spans a relative width of at most 2^-10 ≈
// 0.1 %), interpolated linearly within the bin that holds rank floor(s * n): the estimate is
// always inside that bin, so within 0.1 % of the exact value unless it falls in an edge bin.
// Magnitudes below 2^-20 fold into the innermost bin of their sign (zero included), magnitudes
// of 2^20 and above (and NaN) into the outermost; a threshold in an edge bin is only bounded.
//
// Names are observation points (obs_point_name), not roles, so the code serves every family
// whose forward pass calls the Observer at the four points.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "sparsa/bitmatrix.h"
#include "sparsa/model.h"
#include "sparsa/tensor.h"

namespace sparsa {

// Counts of signed activation values. Bin layout, per sign: 0 = |x| < 2^-20 (the inner edge),
// 1..kFineBins = [2^-20, 2^20) in log-spaced fine bins, kFineBins + 1 = |x| >= 2^20 (the outer
// edge). Not thread-safe for concurrent add(); merge() per-thread copies instead.
class ActivationHistogram {
 public:
  static constexpr int kBinsPerOctave = 1024;
  static constexpr int kMinExponent = -20, kMaxExponent = 20;
  static constexpr int64_t kFineBins = int64_t{kMaxExponent - kMinExponent} * kBinsPerOctave;
  static constexpr int64_t kBinsPerSign = kFineBins + 2;

  ActivationHistogram();
  void add(const float* x, int64_t n);
  void merge(const ActivationHistogram& other);
  void clear();
  int64_t total() const { return total_; }

  // Magnitude bin b (0 .. kBinsPerSign-1) covers [bin_lower(b), bin_upper(b)); the outer edge's
  // upper bound is +infinity.
  static float bin_lower(int64_t b);
  static float bin_upper(int64_t b);
  // [2, kBinsPerSign]: row 0 counts x >= +0, row 1 counts x <= -0, by magnitude bin.
  const std::vector<uint64_t>& counts() const { return counts_; }

  // The estimate of sorted(|x|)[floor(s * n)] for s in [0, 1); 0 when empty.
  float threshold(double s) const;
  // The magnitude bin [lower, upper) that holds rank floor(s * n): the exact threshold lies in it.
  std::array<float, 2> threshold_bin(double s) const;

 private:
  // The magnitude bin of rank k, and how many entries lie below it.
  int64_t bin_of_rank(int64_t k, int64_t& below) const;
  std::vector<uint64_t> counts_;
  int64_t total_ = 0;
};

// Thresholds for one target sparsity: t[layer][point] (index with static_cast<int>(ObsPoint)).
struct ActivationThresholds {
  double sparsity = 0;
  std::vector<std::array<float, kNumObsPoints>> t;  // [n_layers][4]
};

// The histograms of every (layer, point) of a model over a set of windows.
struct ActivationProfile {
  int64_t n_layers = 0;
  std::vector<ActivationHistogram> hist;  // [n_layers * 4], layer-major
  int64_t tokens = 0;                     // windows * seqlen observed
  const ActivationHistogram& at(int64_t layer, ObsPoint p) const {
    return hist[static_cast<size_t>(layer * kNumObsPoints + static_cast<int>(p))];
  }
  ActivationThresholds thresholds(double sparsity) const;
};

// Observes activations knowing the window they come from (tokens window*seqlen ...). observe()
// is called from several threads at once (different windows) and must be thread-safe.
class WindowObserver {
 public:
  virtual ~WindowObserver() = default;
  virtual void observe(int64_t window, int64_t layer, ObsPoint point, const float* x, int64_t n_tokens,
                       int64_t dim) = 0;
};

// Runs the dense model's blocks 0 .. n_layers-1 over every window [n_windows, seqlen] (no head),
// windows in parallel with single-threaded kernels, calling obs at every point. Throws
// Error(kBadInput) for a token outside the vocabulary or a window longer than the context.
// `progress(done, total)` counts windows.
void run_windows(const Model& m, const TensorI32& windows, int64_t n_layers, WindowObserver& obs,
                 const std::function<void(int64_t, int64_t)>& progress = {});

// One calibration pass: the histograms of all layers and points. windows: [n, seqlen].
// Memory: one set of histograms (n_layers × 4 × 2 × kBinsPerSign × 8 bytes ≈ 0.66 MB per point)
// per thread that observes at the same time; they are merged at the end.
ActivationProfile capture_activation_profile(const Model& m, const TensorI32& windows,
                                             const std::function<void(int64_t, int64_t)>& progress = {});

// A bitset to capture: features × tokens, bit (f, w * seqlen + i) = |x[i, f]| > threshold for
// window w, token i, at (layer, point).
struct BitsetRequest {
  int64_t layer = 0;
  ObsPoint point = ObsPoint::kAttnIn;
  float threshold = 0;
};
// One pass over the blocks up to the deepest requested layer; returns one BitMatrix
// [dim(point), n_windows * seqlen] per request, in request order. Memory: only these bitsets.
std::vector<BitMatrix> capture_activation_bits(const Model& m, const TensorI32& windows,
                                               const std::vector<BitsetRequest>& requests,
                                               const std::function<void(int64_t, int64_t)>& progress = {});

// Sets every activation with |x| <= t[layer][point] to zero at all four points of every block.
// Stateless and concurrent: perplexity() may run windows in parallel with it.
class ActivationSparsifier : public Observer {
 public:
  explicit ActivationSparsifier(ActivationThresholds t) : t_(std::move(t)) {}
  void observe(int64_t layer, ObsPoint point, float* x, int64_t n_tokens, int64_t dim) override;
  bool concurrent() const override { return true; }

 private:
  ActivationThresholds t_;
};

}  // namespace sparsa
