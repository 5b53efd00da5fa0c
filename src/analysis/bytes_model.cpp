// The bandwidth model of activation-sparse decoding (sparsa/bytes_model.h).
#include "sparsa/bytes_model.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "sparsa/error.h"

namespace sparsa {
namespace bytes_model_impl {

// The two observation points whose activations feed the MLP, and their index in the counters.
constexpr ObsPoint kMlpPoints[] = {ObsPoint::kMlpIn, ObsPoint::kDownIn};

int64_t elements(const Tensor& t) { return static_cast<int64_t>(t.numel()); }

// Σ_l size[l] · fraction(l) / Σ_l size[l] over the blocks l of the model.
template <typename Fraction>
double weighted_mean(const std::vector<int64_t>& size, Fraction fraction) {
  double read = 0, all = 0;
  for (size_t l = 0; l < size.size(); ++l) {
    read += static_cast<double>(size[l]) * fraction(static_cast<int64_t>(l));
    all += static_cast<double>(size[l]);
  }
  return read / all;
}

// Counts rows read at every (layer, MLP point); observe() merges each call's counts under a lock
// (integer sums: the result does not depend on the order of the windows).
class Collector : public WindowObserver {
 public:
  Collector(const ModelConfig& c, const std::vector<ActivationThresholds>& thresholds, const std::vector<int>& blocks)
      : n_layers_(c.num_layers), blocks_(blocks), thresholds_(thresholds) {
    for (int64_t l = 0; l < n_layers_; ++l)
      for (ObsPoint p : kMlpPoints) counters_.emplace_back(obs_point_dim(c, p), at(l, p), blocks);
  }

  void observe(int64_t, int64_t layer, ObsPoint point, const float* x, int64_t n_tokens, int64_t dim) override {
    const int slot = point == ObsPoint::kMlpIn ? 0 : point == ObsPoint::kDownIn ? 1 : -1;
    if (slot < 0 || layer >= n_layers_) return;
    BlockReadCounter local(dim, at(layer, point), blocks_);
    local.add(x, n_tokens);
    std::lock_guard<std::mutex> lock(mutex_);
    counters_[static_cast<size_t>(layer * 2 + slot)].merge(local);
  }

  const BlockReadCounter& counter(int64_t layer, int slot) const { return counters_[static_cast<size_t>(layer * 2 + slot)]; }

 private:
  // The threshold of every activation sparsity at (layer, point).
  std::vector<float> at(int64_t layer, ObsPoint p) const {
    std::vector<float> t;
    for (const ActivationThresholds& a : thresholds_)
      t.push_back(a.t[static_cast<size_t>(layer)][static_cast<size_t>(p)]);
    return t;
  }

  int64_t n_layers_;
  std::vector<int> blocks_;
  const std::vector<ActivationThresholds>& thresholds_;
  std::vector<BlockReadCounter> counters_;  // [layer][mlp_in, down_in]
  std::mutex mutex_;
};

}  // namespace bytes_model_impl

std::vector<int> default_bytes_model_block_rows() { return {1, 8, 16, 32, 64, 128}; }

BlockReadCounter::BlockReadCounter(int64_t dim, std::vector<float> thresholds, std::vector<int> block_rows)
    : dim_(dim), thresholds_(std::move(thresholds)), block_rows_(std::move(block_rows)),
      rows_read_(thresholds_.size() * block_rows_.size(), 0) {
  if (dim_ < 1) bad_input("bytes model: an input width of {} (at least 1)", dim_);
  for (int b : block_rows_)
    if (b < 1) bad_input("bytes model: block size {} must be at least 1 row", b);
}

void BlockReadCounter::add(const float* x, int64_t n_tokens) {
  std::vector<float> block_max;
  for (int64_t i = 0; i < n_tokens; ++i) {
    const float* row = x + i * dim_;
    for (size_t b = 0; b < block_rows_.size(); ++b) {
      const int64_t size = block_rows_[b];
      const int64_t n_blocks = (dim_ + size - 1) / size;
      block_max.assign(static_cast<size_t>(n_blocks), 0.0f);
      for (int64_t j = 0; j < dim_; ++j) {
        float& m = block_max[static_cast<size_t>(j / size)];
        m = std::max(m, std::abs(row[j]));
      }
      for (size_t t = 0; t < thresholds_.size(); ++t) {
        int64_t rows = 0;
        for (int64_t k = 0; k < n_blocks; ++k)
          if (block_max[static_cast<size_t>(k)] > thresholds_[t]) rows += std::min(size, dim_ - k * size);
        rows_read_[t * block_rows_.size() + b] += rows;
      }
    }
  }
  tokens_ += n_tokens;
}

void BlockReadCounter::merge(const BlockReadCounter& o) {
  if (o.dim_ != dim_ || o.thresholds_ != thresholds_ || o.block_rows_ != block_rows_)
    bad_input("bytes model: merging counts of another input width, thresholds or block sizes");
  for (size_t i = 0; i < rows_read_.size(); ++i) rows_read_[i] += o.rows_read_[i];
  tokens_ += o.tokens_;
}

double BlockReadCounter::row_fraction(size_t t, size_t b) const {
  if (tokens_ == 0) return 0.0;
  return static_cast<double>(rows_read_.at(t * block_rows_.size() + b)) /
         (static_cast<double>(tokens_) * static_cast<double>(dim_));
}

int64_t DecodeWeights::mlp() const {
  int64_t n = 0;
  for (int64_t v : mlp_in) n += v;
  for (int64_t v : down_in) n += v;
  return n;
}

DecodeWeights decode_weights(const Model& m) {
  using bytes_model_impl::elements;
  const int64_t n_layers = m.config.num_layers;
  DecodeWeights w;
  w.by_point.assign(static_cast<size_t>(n_layers), std::array<int64_t, kNumObsPoints>{});
  w.mlp_in.assign(static_cast<size_t>(n_layers), 0);
  w.down_in.assign(static_cast<size_t>(n_layers), 0);
  int64_t all = 0;
  for (const HfConstTensor& t : hf_tensors(m)) all += elements(*t.tensor);
  for (int64_t l = 0; l < n_layers; ++l) {
    auto& row = w.by_point[static_cast<size_t>(l)];
    for (LinearRole r : arch_info(m.config.arch).roles)
      row[static_cast<size_t>(role_info(r).input)] += elements(m.blocks[static_cast<size_t>(l)].linear(r).weight);
    w.mlp_in[static_cast<size_t>(l)] = row[static_cast<size_t>(ObsPoint::kMlpIn)];
    w.down_in[static_cast<size_t>(l)] = row[static_cast<size_t>(ObsPoint::kDownIn)];
  }
  // A step reads one row of the embeddings (and of the learned positions), not the tables, and the
  // whole lm_head, which hf_tensors() leaves out when it is the tied embeddings.
  all -= elements(m.embed) - m.embed.dim(1);
  if (m.pos_embed.numel() > 0) all -= elements(m.pos_embed) - m.pos_embed.dim(1);
  if (m.config.tie_word_embeddings) all += elements(m.lm_head);
  w.dense = all - w.mlp();
  return w;
}

DecodeBytes decode_weight_bytes(const Model& m, const std::vector<std::array<double, kNumObsPoints>>& inactive,
                                double bytes_per_weight) {
  const DecodeWeights w = decode_weights(m);
  SPARSA_ASSERT(inactive.size() == w.by_point.size());
  double linears = 0, read = 0;
  for (size_t l = 0; l < w.by_point.size(); ++l)
    for (size_t p = 0; p < kNumObsPoints; ++p) {
      linears += static_cast<double>(w.by_point[l][p]);
      read += static_cast<double>(w.by_point[l][p]) * (1.0 - inactive[l][p]);
    }
  const double rest = static_cast<double>(w.total()) - linears;
  return {.dense = static_cast<double>(w.total()) * bytes_per_weight, .read = (read + rest) * bytes_per_weight};
}

double BytesModel::mlp_in_at(size_t s, size_t b, int64_t layer) const {
  return mlp_in_fraction.at((s * block_rows.size() + b) * static_cast<size_t>(n_layers) + static_cast<size_t>(layer));
}

double BytesModel::down_in_at(size_t s, size_t b, int64_t layer) const {
  return down_in_fraction.at((s * block_rows.size() + b) * static_cast<size_t>(n_layers) + static_cast<size_t>(layer));
}

double BytesModel::layer_mlp_fraction(size_t s, size_t b, int64_t layer) const {
  const auto l = static_cast<size_t>(layer);
  const double gate_up = static_cast<double>(weights.mlp_in.at(l)), down = static_cast<double>(weights.down_in.at(l));
  return (gate_up * mlp_in_at(s, b, layer) + down * down_in_at(s, b, layer)) / (gate_up + down);
}

double BytesModel::mlp_in_fraction_all(size_t s, size_t b) const {
  return bytes_model_impl::weighted_mean(weights.mlp_in, [&](int64_t l) { return mlp_in_at(s, b, l); });
}

double BytesModel::down_in_fraction_all(size_t s, size_t b) const {
  return bytes_model_impl::weighted_mean(weights.down_in, [&](int64_t l) { return down_in_at(s, b, l); });
}

double BytesModel::mlp_fraction(size_t s, size_t b) const {
  int64_t gate_up = 0;
  for (int64_t v : weights.mlp_in) gate_up += v;
  const double mlp = static_cast<double>(weights.mlp());
  return (static_cast<double>(gate_up) * mlp_in_fraction_all(s, b) +
          static_cast<double>(weights.mlp() - gate_up) * down_in_fraction_all(s, b)) / mlp;
}

double BytesModel::decode_fraction(size_t s, size_t b) const {
  const double mlp = static_cast<double>(weights.mlp());
  return (static_cast<double>(weights.dense) + mlp * mlp_fraction(s, b)) / static_cast<double>(weights.total());
}

BytesModel measure_bytes_model(const Model& m, const TensorI32& windows,
                               const std::vector<ActivationThresholds>& thresholds, const std::vector<int>& block_rows,
                               const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t n_layers = m.config.num_layers;
  for (const ActivationThresholds& t : thresholds)
    if (static_cast<int64_t>(t.t.size()) != n_layers)
      bad_input("bytes model: thresholds at sparsity {} cover {} blocks, the model has {}", t.sparsity, t.t.size(), n_layers);
  bytes_model_impl::Collector collector(m.config, thresholds, block_rows);
  run_windows(m, windows, n_layers, collector, progress);

  BytesModel r;
  for (const ActivationThresholds& t : thresholds) r.act_sparsities.push_back(t.sparsity);
  r.block_rows = block_rows;
  r.n_layers = n_layers;
  r.weights = decode_weights(m);
  r.tokens = n_layers > 0 ? collector.counter(0, 0).tokens() : 0;
  for (size_t s = 0; s < thresholds.size(); ++s)
    for (size_t b = 0; b < block_rows.size(); ++b)
      for (int64_t l = 0; l < n_layers; ++l) {
        r.mlp_in_fraction.push_back(collector.counter(l, 0).row_fraction(s, b));
        r.down_in_fraction.push_back(collector.counter(l, 1).row_fraction(s, b));
      }
  return r;
}

}  // namespace sparsa
