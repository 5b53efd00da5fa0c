// src/gpu/gpu_forward.h — the model on the GPU for every family of the architecture table
// (private to src/gpu): the GPU twin of src/model/forward.cpp.
//
// GpuBlock holds a block's weights on the device in the run's precision; GpuForward holds the
// activation scratch for up to `max_samples` windows of `seqlen` tokens and runs a block over
// them in place; GpuEmbedding and GpuHead are the model's two ends (token embedding; final norm,
// lm_head, logits). The table's row (sparsa/model.h ArchInfo) picks the norm, the positions and
// the MLP; the config the RoPE scaling, sliding windows, soft-capping and post-LN, as on the CPU.
// Device pointers throughout; default stream; not thread-safe.
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

// A norm's parameters on the device, fp32. Gemma's (1 + w) RMSNorm is uploaded as the fp32 sum
// 1 + w, so the plain RMSNorm kernel computes the CPU's x̂ · (1 + w) bit for bit.
struct GpuNorm {
  DeviceBuffer<float> weight;  // [dim]; empty when the model has no such norm
  DeviceBuffer<float> bias;    // [dim] LayerNorm; empty for RMSNorm or no bias
  void upload(const Tensor& w, const Tensor& b, NormKind kind);
  bool present() const { return weight.size() != 0; }
};

// y = norm(x) over rows of `dim` with the family's norm; y may alias x. x, y: [rows, dim].
void norm_cuda(const ModelConfig& c, const GpuNorm& n, const float* x, float* y, int64_t rows, int64_t dim);

struct GpuBlock {
  int64_t layer = 0;                     // which block of the model: picks RoPE and window
  GpuNorm attn_norm, mlp_norm;           // [d_model] input_layernorm / self_attn_layer_norm, ...
  GpuNorm post_attn_norm, post_mlp_norm; // [d_model] Gemma 3; absent elsewhere
  GpuNorm q_norm, k_norm;                // [head_dim] Qwen3, Gemma 3; absent elsewhere
  std::array<GpuLinear, kNumLinearRoles> linears;
  void upload(const Model& m, int64_t layer, GpuPrecision p, HostStaging& staging);
  const GpuLinear& linear(LinearRole r) const { return linears[static_cast<size_t>(r)]; }

  // The linears' weights of b, in role order and precision p, back to back: what pack() writes
  // and upload_packed() reads (norms and biases are small and copied from the model directly).
  static size_t packed_bytes(const Block& b, GpuPrecision p);
  static void pack(const Block& b, GpuPrecision p, void* packed);  // host only: any thread
  void upload_packed(const Model& m, int64_t layer, GpuPrecision p, const void* packed);

 private:
  void upload_norms_and_biases(const Model& m, int64_t layer);
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

  // x: [n_samples * seqlen, d_model] fp32, the hidden state entering block b.layer, replaced by
  // its output. With stop_at_down_input the block stops after observing the down projection's
  // input: x then holds the half-way state (callers pass a copy). With `sparsify` (this block's
  // thresholds by ObsPoint, negative = dense), each point's inputs |x| <= t are zeroed after obs
  // saw them and before the linears read them (ActivationSparsifier's semantics).
  void block(const GpuBlock& b, float* x, int64_t n_samples, GpuObserver* obs, bool stop_at_down_input = false,
             const std::array<float, kNumObsPoints>* sparsify = nullptr);

  // Rounds x32 [n] into the half scratch `h` of this precision (no-op in fp32 mode); returns h.
  const void* to_half(const float* x32, DeviceBuffer<uint8_t>& h, int64_t n);

  GpuPrecision precision() const { return p_; }
  int64_t max_samples() const { return max_samples_; }
  int64_t seqlen() const { return seqlen_; }

 private:
  void attention(int64_t layer, int64_t n_samples);
  void attention_sublayer(const GpuBlock& b, float* x, int64_t T, int64_t n_samples, GpuObserver* obs,
                          const std::array<float, kNumObsPoints>* sparsify);
  // The inputs x32 [T, dim] of point p's linears: rounded into h (half modes), shown to obs, then
  // sparsified (and rounded again) when `sparsify` asks; returns what the linears multiply in h.
  const void* linear_inputs(ObsPoint p, float* x32, DeviceBuffer<uint8_t>& h, int64_t T, int64_t dim, GpuObserver* obs,
                            const std::array<float, kNumObsPoints>* sparsify);
  // normed_ = the sub-layer's input: norm(x), or x itself for post-LN OPT.
  void sublayer_input(const GpuNorm& norm, const float* x, int64_t T);
  // x += post_norm(w · h) (Gemma 3's output norm when present), then x = norm(x) for post-LN.
  void add_residual(const GpuLinear& w, const float* h32, const void* hh, const GpuNorm& post_norm,
                    const GpuNorm& norm, float* x, int64_t T);

  ModelConfig c_;
  const ArchInfo& arch_;
  GpuPrecision p_;
  int64_t max_samples_, seqlen_;
  DeviceBuffer<int32_t> positions_;                      // [max_samples * seqlen]: 0..seqlen-1 per window
  std::vector<float> global_inv_freq_, local_inv_freq_;  // [head_dim / 2] RoPE of full / sliding layers
  DeviceBuffer<float> normed_, q_, k_, v_, attn_, gate_, up_, out_;  // fp32 activations
  DeviceBuffer<uint8_t> normed_h_, q_h_, k_h_, v_h_, attn_h_, up_h_;  // half copies (half modes)
  DeviceBuffer<float> scores_;                           // [n_heads, seqlen, seqlen]
  DeviceBuffer<uint8_t> probs_;                          // [n_heads, seqlen, seqlen] fp32 or half
  // Batched-GEMM pointer arrays for every (sample, head): K, Q, scores, V, probs, output.
  DeviceBuffer<const void*> k_ptrs_, q_ptrs_, v_ptrs_, p_ptrs_;
  DeviceBuffer<void*> s_ptrs_, o_ptrs_;
};

// The embedding on the device: token rows (fp32 table), × sqrt(d_model) for Gemma, project_in
// where embed_dim differs from d_model (fp32), the learned positions for OPT.
class GpuEmbedding {
 public:
  GpuEmbedding(const Model& m, HostStaging& staging);
  // tokens: [n] device ids (validated by the caller), windows of `seqlen` each starting at
  // position 0 -> x [n, d_model] fp32. Error(kBadInput) when seqlen exceeds learned positions.
  void embed(const int32_t* tokens, int64_t n, int64_t seqlen, float* x);

 private:
  ModelConfig c_;
  const ArchInfo& arch_;
  DeviceBuffer<float> table_;      // [vocab, embed_dim]
  DeviceBuffer<float> positions_;  // [max_position + offset, d_model]; empty for RoPE
  GpuLinear project_in_;           // [d_model, embed_dim] fp32; empty unless has_projections()
  DeviceBuffer<float> looked_up_;  // [n, embed_dim] before project_in
};

// The head on the device: final norm (absent for post-LN OPT), project_out (fp32), lm_head in the
// run's precision, final logit soft-capping.
class GpuHead {
 public:
  GpuHead(const Model& m, GpuPrecision p, HostStaging& staging);
  // x [n, d_model] (overwritten: the final norm is applied in place) -> logits [n, vocab] fp32.
  // fw supplies the half scratch of the run (its max_samples * seqlen >= n).
  void logits(float* x, int64_t n, GpuForward& fw, float* logits);

 private:
  ModelConfig c_;
  GpuPrecision p_;
  GpuNorm final_norm_;
  GpuLinear project_out_, lm_head_;
  DeviceBuffer<float> projected_;           // [n, embed_dim] after project_out
  DeviceBuffer<uint8_t> h_half_;            // the lm_head's rounded input in the half modes
};

}  // namespace sparsa::gpu
