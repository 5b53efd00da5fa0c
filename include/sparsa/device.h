// sparsa/device.h — where a model runs: the options every model-running entry point takes
// (prune_model in sparsa/prune.h, perplexity in sparsa/model.h). The library, not the caller,
// picks the CPU or the CUDA backend from them, so a command that runs a model only forwards
// the options it was given.
//
// Contract: plain values, no state; the default is the CPU. The GPU settings are ignored with
// Device::kCpu. Asking for Device::kCuda in a build without CUDA, or for a model the GPU path
// does not run, is refused by the entry point (Error(kRuntime) / Error(kBadInput)).
#pragma once

#include <cstdint>
#include <string_view>

namespace sparsa {

enum class Device : uint8_t { kCpu, kCuda };
std::string_view device_name(Device d);   // "cpu", "cuda"
Device parse_device(std::string_view s);  // Error(kBadInput) when unknown

// How the GPU holds weights and rounds the linears' inputs (sparsa/gpu.h describes the modes).
enum class GpuPrecision : uint8_t { kFp32, kBf16, kFp16 };
std::string_view gpu_precision_name(GpuPrecision p);  // "fp32", "bf16", "fp16"
GpuPrecision parse_gpu_precision(std::string_view s);  // Error(kBadInput) when unknown

struct DeviceOptions {
  Device device = Device::kCpu;
  // ---- Device::kCuda only ----
  GpuPrecision precision = GpuPrecision::kFp32;
  // Tokens per forward chunk (whole samples: at least one). Bounds the activation scratch:
  // about chunk_tokens * (4 d_model + 3 d_ff) * 4 bytes, plus heads * seqlen^2 * 4 for attention.
  int64_t chunk_tokens = 8192;
  // Pruning: data-parallel over GPUs 0..devices-1 (each takes a share of the samples; norms /
  // Hessians are all-reduced and the linears of a block are pruned in parallel across the GPUs,
  // through NCCL loaded at run time). 1 = one GPU, no NCCL. Other entry points use GPU 0.
  int devices = 1;
  bool force_nccl = false;  // use the NCCL path even with one device (tests it on one GPU)

  bool cuda() const { return device == Device::kCuda; }
};

}  // namespace sparsa
