// src/gpu/gpu_backends.h — the GPU implementations behind the device-dispatching entry points
// (prune_model in sparsa/prune.h, perplexity in sparsa/model.h, make_window_runner and
// sparsified_perplexity in sparsa/activations.h, score_task in sparsa/tasks.h; private to src/gpu). Without
// CUDA they throw Error(kRuntime) (gpu_stub.cpp). check_gpu_supported has passed (prune_model
// runs it; perplexity_cuda runs it itself).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "sparsa/activations.h"
#include "sparsa/device.h"
#include "sparsa/model.h"
#include "sparsa/prune_backend.h"
#include "sparsa/tasks.h"

namespace sparsa {

// The CUDA block backend (gpu_prune.cpp): on GPUs 0..device.devices-1, in device.precision.
// Error(kBadInput) for a SparseGPT blocksize outside 1..128. `m` and `opt` must outlive it.
std::unique_ptr<PruneBackend> make_cuda_prune_backend(Model& m, const PruneOptions& opt, const DeviceOptions& device);

// perplexity() on GPU 0: every block resident, windows in chunks of device.chunk_tokens; with
// `sparsify` (num_layers rows), each point's inputs |x| <= t zeroed (sparsified_perplexity).
PerplexityResult perplexity_cuda(const Model& m, const TensorI32& windows, const DeviceOptions& device,
                                 const std::function<void(int64_t, int64_t)>& progress,
                                 const ActivationThresholds* sparsify = nullptr);

// The GPU WindowRunner of make_window_runner (sparsa/activations.h).
std::unique_ptr<WindowRunner> make_cuda_window_runner(const DeviceOptions& device);

// The scores of task choices (score_task with a CUDA DeviceOptions, sparsa/tasks.h) on GPU 0:
// the windows right-padded with token 0 to the longest input (at least 2), every block resident,
// in chunks of device.chunk_tokens; loglik and greedy from the continuation rows. `chars` left 0.
// `progress(done, total)` counts choices.
std::vector<ChoiceScore> score_choices_cuda(const Model& m, const std::vector<ChoiceWindow>& windows,
                                            const DeviceOptions& device,
                                            const std::function<void(int64_t, int64_t)>& progress);

}  // namespace sparsa
