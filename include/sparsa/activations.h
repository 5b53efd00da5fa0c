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
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sparsa/bitmatrix.h"
#include "sparsa/device.h"
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

// A target sparsity per observation point, [4] in ObsPoint order; 0 = that point stays dense.
using PointTargets = std::array<double, kNumObsPoints>;

// Parses "S" (every point at S) or "attn_in=0.4,mlp_in=0.5,..." (the points named; the others
// 0). Each value is in [0, max_sparsity]. Error(kBadInput) naming the text for anything else: an
// unknown or repeated point, a value out of range or not a number, an N:M pattern.
PointTargets parse_point_targets(std::string_view text, double max_sparsity = 0.95);
// "0.5" when every point has the same target, else "attn_in=0.4,o_in=0,mlp_in=0.5,down_in=0.5".
std::string point_targets_label(const PointTargets& targets);

// The histograms of every (layer, point) of a model over a set of windows.
struct ActivationProfile {
  int64_t n_layers = 0;
  std::vector<ActivationHistogram> hist;  // [n_layers * 4], layer-major
  int64_t tokens = 0;                     // windows * seqlen observed
  const ActivationHistogram& at(int64_t layer, ObsPoint p) const {
    return hist[static_cast<size_t>(layer * kNumObsPoints + static_cast<int>(p))];
  }
  ActivationThresholds thresholds(double sparsity) const;
  // Each point at its own target; .sparsity is the targets' mean. A point at 0 gets -1 (dense:
  // nothing is zeroed, even an exact zero).
  ActivationThresholds thresholds(const PointTargets& targets) const;
};

// ---- thresholds files (`sparsa acts --thresholds-out`, read by `sparsa generate`) ----
//
// JSON: {"format": "sparsa-activation-thresholds", "version": 1, "points": [...4 names],
//        "model": {"name", "architecture", "num_layers", "hidden_size", "intermediate_size"},
//        "calibration": {"source", "windows", "seqlen", "tokens_hash", "refinement_passes", "positions"},
//        "sets": [{"sparsity": s, "thresholds": [[attn_in, o_in, mlp_in, down_in] per layer]}]}
// Sets are in ascending sparsity, each at most once. A threshold t means: input x is used iff
// |x| > t (so a negative t is dense).
struct ThresholdsFile {
  struct ModelShape {
    std::string name, architecture;
    int64_t num_layers = 0, hidden_size = 0, intermediate_size = 0;
  };
  struct Calibration {
    std::string source;       // e.g. "calib-tokens.safetensors:calib"
    int64_t windows = 0, seqlen = 0;
    std::string tokens_hash;  // the windows' token hash (runs' calib_hash)
    int64_t refinement_passes = 0;  // decode_thresholds' passes (0: thresholds of dense activations)
  };
  ModelShape model;
  Calibration calibration;
  std::vector<ActivationThresholds> sets;
};

// Writes atomically (temp file + rename). Error(kBadInput) when sets is empty, unsorted or its
// tables do not have model.num_layers rows.
void write_thresholds_file(const std::filesystem::path& path, const ThresholdsFile& f);
// Reads and validates every field (finite thresholds, sparsities in [0, 1) ascending, one row
// of four per layer). Error(kBadInput) naming the file and the field.
ThresholdsFile read_thresholds_file(const std::filesystem::path& path);
// Error(kBadInput) naming `path` when the file was made for a model of another shape (layers,
// hidden size, intermediate size).
void check_thresholds_fit(const ThresholdsFile& f, const ModelConfig& c, const std::filesystem::path& path);
// The thresholds for per-point targets, each point's column taken from the set of its target
// (a point at 0 is dense). Error(kBadInput) naming `path` and the sparsities the file holds when
// a target has no set.
ActivationThresholds select_thresholds(const ThresholdsFile& f, const PointTargets& targets,
                                       const std::filesystem::path& path);

// Observes activations knowing the window they come from (tokens window*seqlen ...). observe()
// is called from several threads at once (different windows) and must be thread-safe.
class WindowObserver {
 public:
  virtual ~WindowObserver() = default;
  virtual void observe(int64_t window, int64_t layer, ObsPoint point, const float* x, int64_t n_tokens,
                       int64_t dim) = 0;
};

// How the blocks run over windows for a WindowObserver: on the CPU (cpu_window_runner(), the default
// of every function below) or on the GPU (make_window_runner(DeviceOptions)). run() checks the
// windows (Error(kBadInput) for a token outside the vocabulary or a window longer than the
// context), runs blocks 0 .. n_layers-1 over every window (no head) and calls obs at every point;
// with `applied` it then zeroes the point's inputs with |x| <= t as ActivationSparsifier does, so
// later points see a sparsified model. `progress(done, total)` counts windows.
class WindowRunner {
 public:
  virtual ~WindowRunner() = default;
  virtual void run(const Model& m, const TensorI32& windows, int64_t n_layers, WindowObserver& obs,
                   const ActivationThresholds* applied, const std::function<void(int64_t, int64_t)>& progress) const = 0;
};
// Windows in parallel with single-threaded kernels. Stateless; any thread.
const WindowRunner& cpu_window_runner();
// cpu_window_runner() for Device::kCpu; with Device::kCuda the GPU forward of sparsa/gpu.h (every
// family; windows in chunks of device.chunk_tokens, blocks 0 .. n_layers-1 resident) copying each
// point's activations to the host for the observer, which is then called from one thread.
// Defined with the other device-dispatching entry points (src/gpu/device_dispatch.cpp).
std::unique_ptr<WindowRunner> make_window_runner(const DeviceOptions& device);
// The checks run() starts with: Error(kBadInput) naming the window, position or length.
void check_activation_windows(const Model& m, const TensorI32& windows, int64_t n_layers);

// Runs the dense model's blocks 0 .. n_layers-1 over every window [n_windows, seqlen] (no head)
// on `runner`, calling obs at every point.
void run_windows(const Model& m, const TensorI32& windows, int64_t n_layers, WindowObserver& obs,
                 const std::function<void(int64_t, int64_t)>& progress = {},
                 const WindowRunner& runner = cpu_window_runner());

// One calibration pass: the histograms of all layers and points. windows: [n, seqlen].
// Memory: one set of histograms (n_layers × 4 × 2 × kBinsPerSign × 8 bytes ≈ 0.66 MB per point)
// per thread that observes at the same time; they are merged at the end.
ActivationProfile capture_activation_profile(const Model& m, const TensorI32& windows,
                                             const std::function<void(int64_t, int64_t)>& progress = {},
                                             const WindowRunner& runner = cpu_window_runner());

// The profile of a model sparsified with `applied` as the sparse decoder runs it: each point is
// recorded before it is sparsified, after every earlier point (this block's earlier points
// included) was. applied.t must have num_layers rows.
ActivationProfile capture_activation_profile(const Model& m, const TensorI32& windows, const ActivationThresholds& applied,
                                             const std::function<void(int64_t, int64_t)>& progress = {},
                                             const WindowRunner& runner = cpu_window_runner());

// Thresholds calibrated for sparse decoding. Thresholds from dense activations undershoot
// downstream: once q/k/v read a sparsified input, o_in's magnitudes shrink and more of them fall
// below a dense-calibrated threshold (on the demo model, o_in measures 0.57 at a 0.5 target).
// So: the thresholds of `dense` (capture_activation_profile of the same windows, which the caller
// already has or shares between targets) for `targets`, then `passes` rounds of re-calibrating
// every point on activations sparsified upstream by the previous round's thresholds (a fixed-point
// iteration). `progress(done, total)` counts windows over the rounds. passes >= 0.
ActivationThresholds decode_thresholds(const Model& m, const TensorI32& windows, const ActivationProfile& dense,
                                       const PointTargets& targets, int passes,
                                       const std::function<void(int64_t, int64_t)>& progress = {},
                                       const WindowRunner& runner = cpu_window_runner());

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
                                               const std::function<void(int64_t, int64_t)>& progress = {},
                                               const WindowRunner& runner = cpu_window_runner());

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

// Perplexity (as perplexity() in sparsa/model.h) with every point's inputs |x| <= t zeroed, on the
// device the options name: the CPU with ActivationSparsifier, or the GPU forward with the same
// zeroing before each linear. t.t must have num_layers rows (Error(kBadInput) otherwise). Defined
// with the other device-dispatching entry points (src/gpu/device_dispatch.cpp).
PerplexityResult sparsified_perplexity(const Model& m, const TensorI32& windows, const ActivationThresholds& t,
                                       const DeviceOptions& device,
                                       const std::function<void(int64_t, int64_t)>& progress = {});

// The sparsifier of a decode loop that recomputes the whole prefix at each step (sparsa::generate
// on the CPU, the reference of the GPU decoder): zeroes every row as ActivationSparsifier does,
// and counts, in the last row of each call (the step's new token), the inputs it zeroed
// (|x| <= t) per [layer][point]. Not concurrent (one decode loop drives it).
class DecodeSparsifier : public Observer {
 public:
  explicit DecodeSparsifier(ActivationThresholds t);
  void observe(int64_t layer, ObsPoint point, float* x, int64_t n_tokens, int64_t dim) override;
  bool concurrent() const override { return false; }
  // Zeroed / seen per [layer][point] over the counted rows; 0 where nothing was counted.
  std::vector<std::array<double, kNumObsPoints>> inactive_fractions() const;
  int64_t steps() const { return steps_; }  // rows counted (at layer 0's attn_in)

 private:
  ActivationThresholds t_;
  std::vector<std::array<int64_t, kNumObsPoints>> zeroed_, seen_;  // [n_layers][4]
  int64_t steps_ = 0;
};

}  // namespace sparsa
