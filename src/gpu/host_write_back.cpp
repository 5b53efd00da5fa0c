// A pruned block's results on their way into the host model (src/gpu/host_write_back.h).
#ifdef SPARSA_WITH_CUDA

#include "gpu/host_write_back.h"

#include <cstring>
#include <exception>

#include "gpu/gpu_types.h"
#include "sparsa/cuda.h"

namespace sparsa::gpu {

void HostWriteBack::stage(int64_t layer, const GpuBlock& block, std::span<const LinearRole> roles,
                          std::span<const DeviceBuffer<uint8_t>> masks) {
  Staging& out = staging(layer);
  if (out.done.valid()) out.done.get();
  size_t mask_bytes = 0, weight_bytes = 0;
  for (LinearRole role : roles) {
    const GpuLinear& lin = block.linear(role);
    mask_bytes += static_cast<size_t>(lin.weight.rows * lin.weight.cols);
    weight_bytes += lin.weight.bytes.size();
  }
  auto* mask_host = static_cast<uint8_t*>(out.masks.reserve(mask_bytes));
  auto* weight_host = weights_ ? static_cast<uint8_t*>(out.weights.reserve(weight_bytes)) : nullptr;
  for (size_t i = 0, mo = 0, wo = 0; i < roles.size(); ++i) {
    const GpuLinear& lin = block.linear(roles[i]);
    const auto numel = static_cast<size_t>(lin.weight.rows * lin.weight.cols);
    copy_to_host(mask_host + mo, masks[i].data(), numel);
    mo += numel;
    if (weight_host) {
      copy_to_host(weight_host + wo, lin.weight.bytes.data(), lin.weight.bytes.size());
      wo += lin.weight.bytes.size();
    }
  }
  out.mask_host = mask_host;
  out.weight_host = weight_host;
}

void HostWriteBack::start(int64_t layer, Block& host, std::span<LinearPruneResult> linears, const Hook& on_block) {
  Staging& out = staging(layer);
  std::shared_future<void> previous = staging(layer + 1).done;
  out.done = std::async(std::launch::async, [p = p_, &host, linears, &on_block, layer, mask_host = out.mask_host,
                                             weight_host = out.weight_host, previous] {
               for (size_t i = 0, mo = 0, wo = 0; i < linears.size(); ++i) {
                 Tensor& w = host.linear(linears[i].role).weight;
                 Mask& mask = linears[i].mask;
                 mask = Mask(w.dim(0), w.dim(1));
                 std::memcpy(mask.pruned.data(), mask_host + mo, mask.pruned.size());
                 mo += mask.pruned.size();
                 if (weight_host) {  // SparseGPT's updated weights (in the half modes, as the half model holds them)
                   convert_to_f32(weight_host + wo, static_cast<int64_t>(w.numel()), w.ptr(), p);
                   wo += w.numel() * element_bytes(p);
                 } else {
                   apply_mask(w, mask);
                 }
               }
               if (on_block) {  // in block order, each once its weights in the model are final
                 if (previous.valid()) previous.get();
                 on_block(layer, linears);
               }
             }).share();
}

void HostWriteBack::finish() {
  std::exception_ptr first;
  for (Staging& s : stagings_)
    if (s.done.valid()) try {
        s.done.get();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
  for (Staging& s : stagings_) s.done = {};
  if (first) std::rethrow_exception(first);
}

void HostWriteBack::abandon() noexcept {
  for (Staging& s : stagings_) {
    if (s.done.valid()) s.done.wait();
    s.done = {};
  }
}

}  // namespace sparsa::gpu

#endif  // SPARSA_WITH_CUDA
