// src/gpu/rank_group.h — the GPUs of a data-parallel run (private to src/gpu, host-only).
//
// One rank per GPU 0..size()-1, each with a contiguous share of the samples and, when the run
// uses collectives, its NCCL communicator. for_each() runs one step on every rank at once and
// returns when all have finished: the steps of a run are separated by it, so a rank never enters
// a collective of the next step after another rank failed (it would wait forever).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "gpu/nccl.h"

namespace sparsa::gpu {

struct RankShare {
  int device = 0;
  int64_t first = 0, samples = 0;  // samples [first, first + samples)
  void* comm = nullptr;            // NCCL communicator; null without collectives
};

class RankGroup {
 public:
  // Splits n_samples evenly over GPUs 0..devices-1 (the first ranks take the remainder); with
  // `collectives`, one NCCL communicator per GPU. Error(kBadInput) when devices < 1 or above
  // n_samples, Error(kRuntime) when the machine has fewer GPUs or NCCL cannot be loaded.
  RankGroup(int devices, int64_t n_samples, bool collectives);
  ~RankGroup();  // destroys the communicators (free the ranks' device memory first)
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int size() const { return static_cast<int>(ranks_.size()); }
  const RankShare& rank(int r) const { return ranks_[static_cast<size_t>(r)]; }
  const Nccl* nccl() const { return nccl_; }  // null without collectives

  // Runs step(r) for every rank concurrently, each on a thread whose current device is the
  // rank's (rank 0 on the calling thread, left on device 0); rethrows the lowest rank's failure
  // once every rank has finished.
  void for_each(const std::function<void(int rank)>& step) const;

 private:
  std::vector<RankShare> ranks_;
  const Nccl* nccl_ = nullptr;
};

}  // namespace sparsa::gpu
