// The GPUs of a data-parallel run (src/gpu/rank_group.h).
#ifdef SPARSA_WITH_CUDA

#include "gpu/rank_group.h"

#include <cuda_runtime.h>

#include <exception>
#include <thread>

#include "cuda/cuda_check.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"

namespace sparsa::gpu {

RankGroup::RankGroup(int devices, int64_t n_samples, bool collectives) {
  const int G = devices;
  if (G < 1) bad_input("--gpus must be at least 1, got {}", G);
  if (G > cuda_device_count()) runtime_failure("--gpus {}: this machine has {} CUDA device(s)", G, cuda_device_count());
  if (G > n_samples) bad_input("--gpus {} is more than the {} calibration samples", G, n_samples);
  ranks_.resize(static_cast<size_t>(G));
  for (int r = 0; r < G; ++r) {
    RankShare& k = ranks_[static_cast<size_t>(r)];
    k.device = r;
    k.samples = n_samples / G + (r < n_samples % G ? 1 : 0);
    k.first = r == 0 ? 0 : ranks_[static_cast<size_t>(r - 1)].first + ranks_[static_cast<size_t>(r - 1)].samples;
  }
  if (!collectives) return;
  nccl_ = &Nccl::get();
  std::vector<void*> comms(static_cast<size_t>(G));
  std::vector<int> devs(static_cast<size_t>(G));
  for (int r = 0; r < G; ++r) devs[static_cast<size_t>(r)] = r;
  nccl_->init_all(comms.data(), G, devs.data());
  for (int r = 0; r < G; ++r) ranks_[static_cast<size_t>(r)].comm = comms[static_cast<size_t>(r)];
}

RankGroup::~RankGroup() {
  for (const RankShare& k : ranks_)
    if (k.comm && cudaSetDevice(k.device) == cudaSuccess) nccl_->destroy(k.comm);
  cudaSetDevice(0);
}

void RankGroup::for_each(const std::function<void(int)>& step) const {
  std::vector<std::exception_ptr> failed(ranks_.size());
  auto run = [&](int r) {
    try {
      SPARSA_CUDA_CHECK(cudaSetDevice(ranks_[static_cast<size_t>(r)].device));
      step(r);
    } catch (...) {
      failed[static_cast<size_t>(r)] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < size(); ++r) threads.emplace_back(run, r);
  run(0);
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
}

}  // namespace sparsa::gpu

#endif  // SPARSA_WITH_CUDA
