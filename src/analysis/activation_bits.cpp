// Binary activation matrices |x| > t (features × tokens) for chosen (layer, point, threshold).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "sparsa/activations.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

// ORs the low `width` bits of `word` into row bits [pos, pos + width); windows of different
// threads may share a 64-bit word at their boundary, hence the atomic OR.
void or_bits(uint64_t* row, int64_t pos, uint64_t word) {
  const int64_t wi = pos >> 6, shift = pos & 63;
  std::atomic_ref<uint64_t>(row[wi]).fetch_or(word << shift, std::memory_order_relaxed);
  if (shift != 0 && (word >> (64 - shift)) != 0)
    std::atomic_ref<uint64_t>(row[wi + 1]).fetch_or(word >> (64 - shift), std::memory_order_relaxed);
}

class BitsetCollector : public WindowObserver {
 public:
  BitsetCollector(const std::vector<BitsetRequest>& requests, int64_t seqlen, int64_t total_tokens)
      : requests_(requests), seqlen_(seqlen), total_tokens_(total_tokens), bits_(requests.size()) {}

  void observe(int64_t window, int64_t layer, ObsPoint point, const float* x, int64_t n_tokens, int64_t dim) override {
    for (size_t r = 0; r < requests_.size(); ++r)
      if (requests_[r].layer == layer && requests_[r].point == point)
        record(matrix(r, dim), requests_[r].threshold, window * seqlen_, x, n_tokens, dim);
  }

  std::vector<BitMatrix> take() { return std::move(bits_); }

 private:
  // The bitset of request r, allocated [dim, total_tokens] on first use (dim is the point's width).
  BitMatrix& matrix(size_t r, int64_t dim) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bits_[r].rows() == 0) bits_[r] = BitMatrix(dim, total_tokens_);
    SPARSA_ASSERT(bits_[r].rows() == dim);
    return bits_[r];
  }

  // x: [n_tokens, dim] of the window starting at token `base`.
  static void record(BitMatrix& bits, float t, int64_t base, const float* x, int64_t n_tokens, int64_t dim) {
    std::vector<uint64_t> words(static_cast<size_t>(dim));  // 64 tokens of every feature
    for (int64_t t0 = 0; t0 < n_tokens; t0 += 64) {
      std::fill(words.begin(), words.end(), uint64_t{0});
      const int64_t width = std::min<int64_t>(64, n_tokens - t0);
      for (int64_t i = 0; i < width; ++i) {
        const float* row = x + (t0 + i) * dim;
        for (int64_t f = 0; f < dim; ++f) words[f] |= static_cast<uint64_t>(std::fabs(row[f]) > t) << i;
      }
      for (int64_t f = 0; f < dim; ++f)
        if (words[f] != 0) or_bits(bits.row(f), base + t0, words[f]);
    }
  }

  const std::vector<BitsetRequest>& requests_;
  int64_t seqlen_, total_tokens_;
  std::mutex mutex_;
  std::vector<BitMatrix> bits_;
};

}  // namespace

std::vector<BitMatrix> capture_activation_bits(const Model& m, const TensorI32& windows,
                                               const std::vector<BitsetRequest>& requests,
                                               const std::function<void(int64_t, int64_t)>& progress,
                                               const WindowRunner& runner) {
  int64_t n_layers = 0;
  for (const BitsetRequest& r : requests) {
    if (r.layer < 0 || r.layer >= m.config.num_layers)
      bad_input("bitset layer {} is outside the model's layers 0..{}", r.layer, m.config.num_layers - 1);
    n_layers = std::max(n_layers, r.layer + 1);
  }
  if (requests.empty()) return {};
  if (windows.rank() != 2) bad_input("activation capture needs token windows [n_windows, seqlen], got {}", shape_string(windows.shape));
  BitsetCollector collector(requests, windows.dim(1), static_cast<int64_t>(windows.numel()));
  run_windows(m, windows, n_layers, collector, progress, runner);
  return collector.take();
}

}  // namespace sparsa
