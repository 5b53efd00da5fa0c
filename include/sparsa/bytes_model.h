// sparsa/bytes_model.h — the bandwidth model of activation-sparse decoding: how many weight bytes a
// decode step must read when the MLP's GEMVs skip the weight rows of inactive inputs, measured on
// the model's own activations.
//
// Decoding one token is bound by reading the weights. An activation-sparse GEMV
// (sparsa/sparse_gemv.h) stores Wᵀ [in, out] row-major and skips row j when |x[j]| <= t; the block
// kernel (sparsa/sparse_gemv_blocks.h) cuts the rows into blocks of B consecutive rows (the last
// one may be shorter) and reads a block whole iff any of its rows is active. Here, per token and
// per block size B, a block counts as read iff max |x| over its rows > t (the kernels' rule, batch
// 1), and the bytes read are the rows of the read blocks (a short last block counts its own rows).
//
// The model: gate/up (or fc1) are fed by the block's mlp_in activations and down (or fc2) by its
// down_in activations; they read (rows read / in) of their weights. Everything else a decode step
// reads is read densely: attention (q/k/v/o), norms, biases, one embedding row (and one learned
// position row), the lm_head; the KV cache, which grows with the context, is not counted. Sizes are
// in parameters (elements): the fractions hold in bytes when every weight has one storage type.
// The speed-up upper bound is 1 / (fraction of bytes read): a kernel at the same bandwidth as the
// dense one, with no overhead.
//
// Thread safety: BlockReadCounter is a plain value (not thread-safe for concurrent add(); merge()
// per-thread copies); measure_bytes_model() runs windows in parallel and is deterministic (integer
// counts). Errors: Error(kBadInput) for block sizes < 1, thresholds for another number of layers,
// or windows run_windows() refuses.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "sparsa/activations.h"
#include "sparsa/model.h"
#include "sparsa/tensor.h"

namespace sparsa {

// The block sizes a study models: 1 (the per-row kernel), the block kernel's 8, 16, 32, and 64, 128
// (coarser blocks no kernel of sparsa implements, to show the trend).
std::vector<int> default_bytes_model_block_rows();

// Rows a block-skipping GEMV reads per token, for one weight input of width `dim`, at every
// (threshold, block size) pair.
class BlockReadCounter {
 public:
  // dim >= 1; every block size >= 1 (Error(kBadInput) otherwise).
  BlockReadCounter(int64_t dim, std::vector<float> thresholds, std::vector<int> block_rows);

  // x [n_tokens, dim], row-major.
  void add(const float* x, int64_t n_tokens);
  // Adds another counter's counts; Error(kBadInput) unless it has the same dim, thresholds and blocks.
  void merge(const BlockReadCounter& other);

  int64_t tokens() const { return tokens_; }
  // Mean over the tokens of (rows in read blocks) / dim at thresholds[t], block_rows[b]; 0 before
  // any token.
  double row_fraction(size_t t, size_t b) const;

 private:
  int64_t dim_;
  std::vector<float> thresholds_;
  std::vector<int> block_rows_;
  std::vector<int64_t> rows_read_;  // [thresholds][block sizes], summed over tokens
  int64_t tokens_ = 0;
};

// The parameters one decode step reads, by what activation sparsity can skip.
struct DecodeWeights {
  std::vector<std::array<int64_t, kNumObsPoints>> by_point;  // [n_layers][point] elements of the block
                                                             // linears each observation point feeds
  std::vector<int64_t> mlp_in;   // [n_layers] elements of the linears fed by mlp_in (gate + up, or fc1)
  std::vector<int64_t> down_in;  // [n_layers] elements of the linear fed by down_in (down, or fc2)
  int64_t dense = 0;             // everything else, read once per token (see the header comment)
  int64_t mlp() const;           // Σ mlp_in + Σ down_in
  int64_t total() const { return mlp() + dense; }
};
// From the weights `m` holds (any family: the linears are found by the observation point that feeds
// them, sparsa/model.h role_info).
DecodeWeights decode_weights(const Model& m);

// The weight bytes of one decode step whose block linears (all of them: q/k/v, o, gate/up, down)
// skip the weights of inactive inputs, as the GPU decoder's GEMVs do row by row (B = 1): each
// linear fed by point p of block l reads (1 − inactive[l][p]) of its weights; everything else of
// decode_weights().dense is read whole. `dense` is the step with nothing inactive. inactive:
// [num_layers][4] fractions in [0, 1]; bytes_per_weight: the storage type's size.
struct DecodeBytes {
  double dense = 0, read = 0;
};
DecodeBytes decode_weight_bytes(const Model& m, const std::vector<std::array<double, kNumObsPoints>>& inactive,
                                double bytes_per_weight);

// The bytes model at several activation sparsities and block sizes.
struct BytesModel {
  std::vector<double> act_sparsities;  // [S]
  std::vector<int> block_rows;         // [B]
  int64_t n_layers = 0;
  int64_t tokens = 0;                  // tokens observed per (layer, point)
  DecodeWeights weights;
  // Row fractions read at [(s * B + b) * n_layers + layer], for the gate/up input and the down input.
  std::vector<double> mlp_in_fraction, down_in_fraction;

  double mlp_in_at(size_t s, size_t b, int64_t layer) const;
  double down_in_at(size_t s, size_t b, int64_t layer) const;
  // Fraction of block `layer`'s MLP weights read per token.
  double layer_mlp_fraction(size_t s, size_t b, int64_t layer) const;
  // Over every block: of the MLP weights, of the gate/up and down weights, and of everything a
  // decode step reads.
  double mlp_fraction(size_t s, size_t b) const;
  double mlp_in_fraction_all(size_t s, size_t b) const;
  double down_in_fraction_all(size_t s, size_t b) const;
  double decode_fraction(size_t s, size_t b) const;
};

// Runs the dense model over `windows` [n, seqlen] (run_windows) and counts, at every block's mlp_in
// and down_in, the rows read at each thresholds[s] (one ActivationThresholds per activation
// sparsity, [n_layers][4] each) and block size. `progress(done, total)` counts windows.
BytesModel measure_bytes_model(const Model& m, const TensorI32& windows,
                               const std::vector<ActivationThresholds>& thresholds, const std::vector<int>& block_rows,
                               const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace sparsa
