// sparsa/prune_backend.h — the block backends of the sequential pruning driver.
//
// prune_model (sparsa/prune.h) is one procedure, run_pruning below, over a PruneBackend that
// holds the calibration activations and runs blocks on one kind of device:
//
//   check_prune_inputs(model, calib, opt)
//   embed(calib)                               block 0's inputs: the samples' embeddings
//   for every block l, in order:
//     load_block(l)                            block l becomes the resident block
//     l < opt.first_layer (a resumed run):
//       run_block(l)                           only its outputs are needed
//     else:
//       observe(l)                             the dense block over every sample, with statistics
//       prune_linears(l, linears)              selection and weight updates of its linears
//       commit_block(l, linears)               host model and masks final, then opt.on_block
//       run_block(l)                           the pruned block's outputs: block l+1's inputs
//       progress(l + 1, num_layers)
//   finish()
//
// Magnitude needs no calibration data: the driver then calls only prune_linears and
// commit_block (blocks first_layer.. in order), then finish().
//
// Backend contract:
// - The driver calls the methods from one thread, in the order above; a backend may run work on
//   its own threads (several GPUs, a background write-back) but returns from each call with that
//   step done on the device(s), except commit_block, which may defer its host work (below).
// - `linears` is block l's slice of the result, in arch_info(arch).roles order, with layer, role
//   and name filled in by the driver; it stays valid until finish() or abandon() returns.
//   prune_linears sets each entry's seconds; the masks may be filled in by commit_block's work.
// - commit_block makes block l's pruned weights final in the host Model and its masks final in
//   `linears`, then calls opt.on_block(l, linears) when set. It may do so on a background thread
//   (blocks in order, one at a time, each after the previous block's hook) and return at once; a
//   failure there is rethrown by a later call (commit_block of a block two later, or finish()).
// - finish() waits for all deferred work and rethrows its first failure. When the driver stops on
//   an exception it calls abandon() instead, which waits for deferred work and drops its failures
//   (the exception that stopped the run is the one reported).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "sparsa/model.h"
#include "sparsa/prune.h"

namespace sparsa {

class PruneBackend {
 public:
  virtual ~PruneBackend() = default;

  // calib: [n_samples, seqlen] token ids, checked by check_prune_inputs. Called once, first, and
  // only for methods that need calibration data.
  virtual void embed(const TensorI32& calib) = 0;
  virtual void load_block(int64_t layer) = 0;
  // The resident block over every sample, in place: its outputs replace its inputs.
  virtual void run_block(int64_t layer) = 0;
  // The resident (dense) block over every sample, inputs kept, accumulating the statistics the
  // method needs (Wanda: per-input squared norms; SparseGPT: Hessians) at every observation point.
  virtual void observe(int64_t layer) = 0;
  virtual void prune_linears(int64_t layer, std::span<LinearPruneResult> linears) = 0;
  virtual void commit_block(int64_t layer, std::span<LinearPruneResult> linears) = 0;
  virtual void finish() = 0;
  virtual void abandon() noexcept = 0;
};

// The checks every backend shares: the target (ratio in (0, 1), or N:M with 0 < N < M),
// opt.first_layer in 0..num_layers and, for methods that need data, calib [n_samples >= 1,
// seqlen <= context] of token ids inside the vocabulary. Error(kBadInput) naming what is wrong.
void check_prune_inputs(const ModelConfig& c, const TensorI32& calib, const PruneOptions& opt);

// `opt` with on_block wrapped so that each committed block is checked before the caller's hook
// (when set) sees it: every mask is a mask of opt.target (check_mask_target) and every pruned
// weight of the block is finite in `m`; Error(kRuntime) naming the linear otherwise. prune_model
// gives the wrapped options to the backend and to run_pruning, for every method and device.
PruneOptions with_block_checks(const Model& m, const PruneOptions& opt);

// The sequential procedure above over `backend`, which works on `m` (the caller's pairing).
// Result and progress as prune_model's.
PruneResult run_pruning(Model& m, const TensorI32& calib, const PruneOptions& opt, PruneBackend& backend,
                        const std::function<void(int64_t done, int64_t total)>& progress = {});

// The CPU backend: samples run in parallel over the OpenMP threads (one sample per thread, the
// statistics merged in sample order), the linears of a block pruned concurrently with
// single-threaded kernels; results do not depend on the thread count. commit_block calls
// opt.on_block at once. `m` and `opt` must outlive the backend.
std::unique_ptr<PruneBackend> make_cpu_prune_backend(Model& m, const PruneOptions& opt);

}  // namespace sparsa
