// sparsa/gpu.h — the model on the GPU: the forward pass of every family, perplexity, and the
// CUDA backend of the sequential calibration + pruning driver (Wanda, SparseGPT) with the
// statistics, selection and SparseGPT updates on the device. They are reached through the
// device-dispatching entry points, perplexity(m, windows, DeviceOptions) (sparsa/model.h) and
// prune_model(m, calib, opt, DeviceOptions) (sparsa/prune.h), with Device::kCuda.
//
// Contract:
// - The host Model stays the source of truth: blocks are uploaded one at a time (only one
//   block's weights are resident, so models larger than the GPU run), pruned weights are copied
//   back into the host Model, and the checkpoint writer works on it unchanged.
// - Precision (GpuPrecision): kFp32 keeps weights and GEMMs in fp32 (cuBLAS with TF32 off) and
//   matches the CPU path closely; kBf16 / kFp16 store weights in that type and round every
//   linear's (and attention's) inputs to it, accumulating in fp32 with an fp32 residual stream —
//   the speed mode, as a half-precision PyTorch model computes. Statistics (Wanda norms,
//   SparseGPT Hessians) are taken of exactly what the linears see; Hessians, SparseGPT updates
//   and the Cholesky factorisations are fp32 as in the reference.
// - Runs on the current CUDA device, default stream; not thread-safe (one call at a time per
//   process). Every CUDA/cuBLAS/cuSOLVER failure throws Error(kRuntime); running out of device
//   memory names the size asked for, what is free, and what to lower.
// - Families: every row of the architecture table, with the CPU forward's operations (LLaMA-2/3
//   with RoPE scaling, Mistral's and Qwen's sliding windows, Qwen2 biases, Qwen3 q/k norms,
//   Gemma 3, OPT pre- and post-LN with project_in/out). head_dim above kRopeMaxHeadDim throws
//   Error(kBadInput). The decoder (sparsa/decode.h) runs the LLaMA family only.
// - Without CUDA (SPARSA_WITH_CUDA undefined) every GPU path throws Error(kRuntime).
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "sparsa/cuda.h"  // the runtime: devices, DeviceBuffer, gpu_peak_allocated
#include "sparsa/device.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"

namespace sparsa {

// Refuses (Error(kBadInput)) a model the GPU forward does not run, naming what is missing.
void check_gpu_supported(const ModelConfig& c);

// The fp32 logits [n, seqlen, vocab] of windows [n, seqlen] (each window from position 0) on GPU 0,
// every block resident, windows in chunks of device.chunk_tokens: the GPU twin of forward() for
// tests and small evaluations (the host tensor holds n · seqlen · vocab floats). Error(kBadInput)
// for a model check_gpu_supported refuses, a window longer than the context, or a token outside
// the vocabulary.
Tensor logits_cuda(const Model& m, const TensorI32& windows, const DeviceOptions& device);

// True when NCCL (libnccl.so.2, or SPARSA_NCCL_LIBRARY) can be loaded: what devices > 1 needs.
bool gpu_nccl_available();

// ---- device-level pruning primitives (device pointers; fp32 row-major) ----
// For benchmarks and tests; the CUDA pruning backend uses them.

// hessian [cols, cols] += scale * Xᵀ X for x [n_tokens, cols] given as fp32 (x32) or, in the
// half modes, as the bf16/fp16 copy (xh, products exact in fp32, fp32 accumulation). Only the
// row-major upper triangle (with the diagonal) is guaranteed: that is all sparsegpt_prune_cuda reads.
void hessian_accumulate_cuda(float* hessian, const float* x32, const void* xh, GpuPrecision p, int64_t n_tokens,
                             int64_t cols, float scale);

// Wanda on the device: w [rows, cols] (fp32), norm [cols] = sqrt(mean squared input) -> mask
// [rows, cols] (1 = pruned), the same selection as wanda_mask (ties towards the lower column).
void wanda_mask_cuda(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols,
                     const SparsityTarget& t);

// SparseGPT on the device: w [rows, cols] pruned and updated in place, hessian [cols, cols]
// (row-major upper triangle read) consumed, mask [rows, cols] written; the semantics of
// sparsegpt_prune. blocksize must be in 1..128 (Error(kBadInput) otherwise).
void sparsegpt_prune_cuda(float* w, float* hessian, uint8_t* mask, int64_t rows, int64_t cols,
                          const SparsityTarget& t, int64_t blocksize, double percdamp);

}  // namespace sparsa
