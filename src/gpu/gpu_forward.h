// src/gpu/gpu_forward.h — one block of the LLaMA family on the GPU (private to src/gpu).
//
// GpuBlock holds a block's weights on the device in the run's precision; GpuForward holds the
// activation scratch for up to `max_samples` windows of `seqlen` tokens and runs a block over
// them in place. Device pointers throughout; default stream; not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "gpu/host_staging.h"
#include "sparsa/cuda.h"
#include "sparsa/gpu.h"
#include "sparsa/model.h"

namespace sparsa::gpu {

// A matrix [rows, cols] in the run's precision (fp32, bf16 or fp16 elements).
struct DeviceMatrix {
  DeviceBuffer<uint8_t> bytes;
  int64_t rows = 0, cols = 0;
  // Copies host fp32 m [rows, cols] in, rounded to the precision on the way; reuses the
  // allocation when the size is unchanged.
  void upload(const Tensor& m, GpuPrecision p, HostStaging& staging);
};

struct GpuLinear {
  DeviceMatrix weight;       // [out, in]
  DeviceBuffer<float> bias;  // [out]; empty without bias
};

struct GpuBlock {
  DeviceBuffer<float> attn_norm, mlp_norm;     // [d_model]
  std::array<GpuLinear, kNumLinearRoles> linears;
  void upload(const Block& b, GpuPrecision p, HostStaging& staging);
  const GpuLinear& linear(LinearRole r) const { return linears[static_cast<size_t>(r)]; }

  // The linears' weights of b, in role order and precision p, back to back: what pack() writes
  // and upload_packed() reads (norms and biases are small and copied from b directly).
  static size_t packed_bytes(const Block& b, GpuPrecision p);
  static void pack(const Block& b, GpuPrecision p, void* packed);  // host only: any thread
  void upload_packed(const Block& b, GpuPrecision p, const void* packed);
};

// Sees the input of each group of linears: x32 [n_tokens, dim] fp32, and in the half modes xh,
// the copy the linears actually multiply (null in fp32 mode).
class GpuObserver {
 public:
  virtual ~GpuObserver() = default;
  virtual void observe(ObsPoint p, const float* x32, const void* xh, int64_t n_tokens, int64_t dim) = 0;
};

// y [n, out] = x [n, in] · Wᵀ (+ bias), or y += ... when beta is 1. x is xh in the half modes.
void linear_cuda(const GpuLinear& l, GpuPrecision p, const float* x32, const void* xh, float* y, int64_t n,
                 float beta);

class GpuForward {
 public:
  GpuForward(const ModelConfig& c, GpuPrecision p, int64_t max_samples, int64_t seqlen);

  // x: [n_samples * seqlen, d_model] fp32, the hidden state entering the block, replaced by its
  // output. With stop_at_down_input the block stops after observing the down projection's
  // input: x then holds the half-way state (callers pass a copy).
  void block(const GpuBlock& b, float* x, int64_t n_samples, GpuObserver* obs, bool stop_at_down_input = false);

  // Rounds x32 [n] into the half scratch `h` of this precision (no-op in fp32 mode); returns h.
  const void* to_half(const float* x32, DeviceBuffer<uint8_t>& h, int64_t n);

  GpuPrecision precision() const { return p_; }
  int64_t max_samples() const { return max_samples_; }
  int64_t seqlen() const { return seqlen_; }

 private:
  void attention(int64_t n_samples);

  ModelConfig c_;
  GpuPrecision p_;
  int64_t max_samples_, seqlen_;
  DeviceBuffer<int32_t> positions_;                      // [max_samples * seqlen]: 0..seqlen-1 per window
  DeviceBuffer<float> normed_, q_, k_, v_, attn_, gate_, up_;  // fp32 activations
  DeviceBuffer<uint8_t> normed_h_, q_h_, k_h_, v_h_, attn_h_, up_h_;  // half copies (half modes)
  DeviceBuffer<float> scores_;                           // [n_heads, seqlen, seqlen]
  DeviceBuffer<uint8_t> probs_;                          // [n_heads, seqlen, seqlen] fp32 or half
  // Batched-GEMM pointer arrays for every (sample, head): K, Q, scores, V, probs, output.
  DeviceBuffer<const void*> k_ptrs_, q_ptrs_, v_ptrs_, p_ptrs_;
  DeviceBuffer<void*> s_ptrs_, o_ptrs_;
};

}  // namespace sparsa::gpu
