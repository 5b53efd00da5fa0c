// src/gpu/host_write_back.h — a pruned block's results on their way into the host model
// (private to src/gpu, host-only).
//
// The GPU stages a block's masks (and, when the method updates them, its linears' weights in
// the run's precision) into page-locked memory; a background task then applies them to the
// host Model and calls the checkpoint hook, blocks in order and one at a time, while the GPU
// goes on with the next block. Two stagings alternate, so at most two blocks are in flight and
// a failure of a block's task surfaces, at the latest, when block + 2 is staged.
// Not thread-safe: one thread calls stage/start/finish.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <future>
#include <span>

#include "gpu/gpu_forward.h"
#include "gpu/host_staging.h"
#include "sparsa/prune.h"

namespace sparsa::gpu {

class HostWriteBack {
 public:
  using Hook = std::function<void(int64_t layer, std::span<const LinearPruneResult> linears)>;

  // p: the run's precision; weights: the linears' weights come back from the device (SparseGPT
  // updates them), else the host weights are masked.
  HostWriteBack(GpuPrecision p, bool weights) : p_(p), weights_(weights) {}
  ~HostWriteBack() { abandon(); }
  HostWriteBack(const HostWriteBack&) = delete;
  HostWriteBack& operator=(const HostWriteBack&) = delete;

  // Copies block `layer`'s masks (masks[i]: at least [rows, cols] of the linear of roles[i]) and,
  // with weights, its linears' weights from the current device into the staging of `layer`,
  // once the task that last used that staging has finished (its failure is rethrown here).
  void stage(int64_t layer, const GpuBlock& block, std::span<const LinearRole> roles,
             std::span<const DeviceBuffer<uint8_t>> masks);
  // Starts block `layer`'s task: the staged masks into linears[i].mask ([rows, cols], roles
  // order), the host block's weights from the staging (in the half modes as the half model holds
  // them) or masked, then on_block(layer, linears) when set, after the previous block's task.
  // `host`, `linears` and `on_block` must stay valid until finish() or abandon() returns.
  void start(int64_t layer, Block& host, std::span<LinearPruneResult> linears, const Hook& on_block);

  void finish();            // waits for every task; rethrows the first failure
  void abandon() noexcept;  // waits for every task; drops their failures

 private:
  struct Staging {
    HostStaging masks, weights;
    const uint8_t* mask_host = nullptr;
    const uint8_t* weight_host = nullptr;  // null unless weights_
    std::shared_future<void> done;         // shared: the next block's task waits for it before on_block
  };
  Staging& staging(int64_t layer) { return stagings_[static_cast<size_t>(layer % 2)]; }

  GpuPrecision p_;
  bool weights_;
  std::array<Staging, 2> stagings_;
};

}  // namespace sparsa::gpu
