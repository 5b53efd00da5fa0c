// sparsa/prune.h — pruning: magnitude, Wanda and SparseGPT, unstructured and N:M, and the
// sequential layer-by-layer calibration driver of the reference implementations.
//
// Conventions: weights are fp32 [out, in]; a Mask is [out, in] with 1 = pruned (set to zero).
// "N:M" prunes N of every M consecutive input columns of each row. All selection functions
// are deterministic (ties broken towards the lower column index) and thread-count independent.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sparsa/device.h"
#include "sparsa/model.h"
#include "sparsa/tensor.h"

namespace sparsa {

enum class PruneMethod : uint8_t { kMagnitude, kWanda, kSparseGPT };
std::string_view prune_method_name(PruneMethod m);           // "magnitude", "wanda", "sparsegpt"
PruneMethod parse_prune_method(std::string_view s);          // Error(kBadInput) when unknown
// Wanda and SparseGPT score with calibration statistics; magnitude needs no data.
inline bool needs_calibration(PruneMethod m) { return m != PruneMethod::kMagnitude; }

// The target: unstructured `ratio` in (0, 1), or n:m (0 < n < m).
struct SparsityTarget {
  double ratio = 0.0;
  int n = 0, m = 0;
  bool is_nm() const { return m > 0; }
  double fraction() const { return is_nm() ? static_cast<double>(n) / m : ratio; }
  std::string label() const;  // "u50" for 50 % unstructured, "2-4" for 2:4 (the golden file names)
};
SparsityTarget parse_sparsity(std::string_view ratio);  // "0.5" -> unstructured; Error(kBadInput) outside (0, 1)
SparsityTarget parse_nm(std::string_view nm);           // "2:4"; Error(kBadInput) unless 0 < n < m
// SparsityTarget::label() reversed: "u50" -> 50 % unstructured, "2-4" -> 2:4. Error(kBadInput) for
// anything label() does not write (e.g. "u050", "u100", "4-2", "50").
SparsityTarget parse_target_label(std::string_view label);

// Boolean matrix, 1 = pruned.
struct Mask {
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> pruned;  // [rows, cols], 0 or 1
  Mask() = default;
  Mask(int64_t r, int64_t c) : rows(r), cols(c), pruned(static_cast<size_t>(r * c), 0) {}
  int64_t count() const;  // number of pruned entries
  bool at(int64_t r, int64_t c) const { return pruned[static_cast<size_t>(r * cols + c)] != 0; }
};

// numpy packbits(axis=-1) layout: [rows, ceil(cols / 8)], bit 7 of byte 0 is column 0.
std::vector<uint8_t> pack_mask(const Mask& m);
Mask unpack_mask(const uint8_t* packed, int64_t rows, int64_t cols);
// Sets w to zero where the mask is 1. w: [rows, cols].
void apply_mask(Tensor& w, const Mask& m);
// True when every row has exactly n pruned in every group of m columns (a trailing partial
// group is not checked).
bool mask_is_nm(const Mask& mask, int n, int m);
// Error(kRuntime) naming `name` unless `mask` is a mask of target `t`: for N:M, mask_is_nm. Every
// mask passes it before it is committed or written under an N:M label.
void check_mask_target(const Mask& mask, const SparsityTarget& t, std::string_view name);
// Error(kBadInput) when SparseGPT cannot prune `t` with lazy-update blocks of `blocksize` columns:
// blocksize < 1, or for N:M a blocksize that is not a multiple of M (a group would straddle two
// blocks, and the mask would not be N:M).
void check_sparsegpt_blocksize(int64_t blocksize, const SparsityTarget& t);

// ---- selection (CPU references) ----

// Every selection refuses non-finite inputs rather than select from them: a NaN or Inf weight is
// Error(kBadInput), non-finite calibration statistics (activation norms, Hessian) Error(kRuntime),
// each naming the value and where it is.
//
// Magnitude: unstructured prunes |w| <= the value at index floor(ratio * numel) of the sorted
// |w| (one threshold per matrix, ties included, as the reference); N:M prunes the N smallest |w|
// of each group. w: [out, in].
Mask magnitude_mask(const Tensor& w, const SparsityTarget& t);

// Wanda: score |w_ij| * sqrt(act_sqnorm_j); per output row, unstructured prunes the
// floor(ratio * in) lowest scores (stable order), N:M the N lowest of each group.
// w: [out, in]; act_sqnorm: [in].
Mask wanda_mask(const Tensor& w, const std::vector<float>& act_sqnorm, const SparsityTarget& t);

// SparseGPT (fasterprune): prunes and updates w in place. hessian [in, in] is the (2/n) Σ XᵀX
// of the calibration inputs and is consumed (overwritten). Returns the mask.
// Throws Error(kRuntime) if the dampened Hessian is not positive definite, Error(kBadInput) for a
// blocksize check_sparsegpt_blocksize refuses.
Mask sparsegpt_prune(Tensor& w, Tensor& hessian, const SparsityTarget& t, int64_t blocksize, double percdamp);

// ---- the sequential driver ----

struct LinearPruneResult;

struct PruneOptions {
  PruneMethod method = PruneMethod::kWanda;
  SparsityTarget target;
  int64_t blocksize = 128;  // SparseGPT lazy-update block
  double percdamp = 0.01;   // SparseGPT dampening, fraction of mean(diag H)
  // Resuming an interrupted run: blocks [0, first_layer) of the model are already pruned (restored
  // by the caller) and are neither scored nor returned; their outputs, the next block's calibration
  // inputs, are recomputed by running them forward. 0 <= first_layer <= num_layers.
  int64_t first_layer = 0;
  // Called once per pruned block, after its weights in the model are final and before the next
  // block starts, with that block's results (arch_info(arch).roles order). A checkpoint hook: an
  // exception it throws stops pruning and propagates.
  std::function<void(int64_t layer, std::span<const LinearPruneResult> linears)> on_block;
};

struct LinearPruneResult {
  int64_t layer = 0;
  LinearRole role = LinearRole::kQ;
  std::string name;  // HF module name, e.g. "model.layers.0.self_attn.q_proj", "model.decoder.layers.0.fc1"
  Mask mask;
  double seconds = 0;  // selection / update time (linears of a block run concurrently)
};

struct PruneTimings {
  double forward = 0;   // calibration forward passes (statistics pass + pruned pass)
  double stats = 0;     // accumulating norms / Hessians
  double select = 0;    // scoring, selection and weight updates
  double total = 0;
};

struct PruneResult {
  std::vector<LinearPruneResult> linears;  // layer-major, arch_info(arch).roles order within a layer
  PruneTimings timings;
};

// Prunes every linear of every block of `m` in place (weights only: biases are never pruned).
// calib: [n_samples, seqlen] token ids (ignored by magnitude). The reference procedure: block
// 0's inputs are the embeddings of the samples (with learned positions where the family has
// them); for each block, the dense block is run on every sample with observers collecting
// statistics, its linears are pruned, then the pruned block is run again to produce the next
// block's inputs. Results do not depend on the thread count.
// `progress(done, total)` reports blocks as they finish when given. With opt.first_layer = k,
// result.linears holds the blocks k.. only.
//
// `device` picks the backend (sparsa/prune_backend.h): the CPU, or with Device::kCuda the GPU
// (sparsa/gpu.h: every family; the calibration activations of all samples stay on the
// device(s), [n_samples, seqlen, d_model] fp32 split over device.devices; one block's weights
// are resident at a time). Magnitude needs no forward pass and selects on the host with either
// device. On the GPU, with several devices the results equal one device's up to the order in
// which sample statistics are summed, and opt.on_block runs on a background thread (blocks in
// order, one at a time) while the GPU goes on: an exception it throws stops pruning at most two
// blocks later. Error(kBadInput) for a model the GPU does not run or a SparseGPT blocksize above
// the GPU kernel's 128; Error(kRuntime) without CUDA or with more devices than the machine has.
// Every block, on either device, is checked before opt.on_block sees it: its masks are masks of
// the target (check_mask_target) and its pruned weights are finite; Error(kRuntime) naming the
// linear otherwise.
PruneResult prune_model(Model& m, const TensorI32& calib, const PruneOptions& opt, const DeviceOptions& device = {},
                        const std::function<void(int64_t done, int64_t total)>& progress = {});

// Writes the masks of `r` in the golden mask format, atomically: for every linear
// "<hf name>.mask": U8 [rows, ceil(cols / 8)], 1 = pruned, packbits MSB first; the metadata
// names the method, the target label and the tool. Error(kRuntime) on I/O failure, or for a mask
// that is not a mask of `t` (check_mask_target), before anything is written.
void write_mask_file(const std::filesystem::path& file, const PruneResult& r, PruneMethod method,
                     const SparsityTarget& t);

}  // namespace sparsa
