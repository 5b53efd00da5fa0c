// sparsa/decode.h — token-by-token greedy decoding on the GPU for the LLaMA family (LLaMA, Mistral,
// Qwen2, Qwen3), with the
// activation-sparse GEMV (sparsa/sparse_gemv.h) for every linear and the whole step captured
// once into a CUDA graph and replayed per token.
//
// Contract:
// - Weights live on the device in opt.precision (fp32, bf16 or fp16), every linear stored as
//   Wᵀ [in, out] for the sparse GEMV. q, k and v share one input and one threshold, so they are
//   one matrix Wᵀ [d_model, q_dim + 2 kv_dim] (columns q | k | v) and one GEMV; gate and up
//   likewise [d_model, 2 d_ff] (gate | up); o [q_dim, d_model], down [d_ff, d_model] and the
//   lm_head [d_model, vocab] are their own. Activations and the residual stream are fp32; the GEMVs
//   multiply the fp32 inputs by the stored weights with fp32 accumulation (no input rounding);
//   the KV cache, [layers][max_seq, kv_dim] for K and for V, is kept in the weights' precision.
// - One step = the token at the current position -> embedding row -> per block: RMSNorm,
//   q/k/v GEMV (attn_in threshold) and its bias (Qwen2), per-head q/k RMSNorm (Qwen3), RoPE at the position (scaled as
//   rope_inv_freq scales it), KV-cache append, single-query GQA attention over positions 0..pos
//   (a sliding layer: the last sliding_window of them), o GEMV (o_in), residual, RMSNorm, gate/up GEMV (mlp_in),
//   SiLU·mul, down GEMV (down_in), residual -> final RMSNorm -> lm_head (dense) -> logits [vocab]
//   -> greedy argmax (first index on ties). Position and tokens live in device memory and the
//   step advances them itself, so one captured graph serves every position.
// - Generation follows sparsa::generate with temperature 0: the prompt's tokens are forced and
//   later ones are the argmax of the previous step's logits.
// - Thresholds are ActivationThresholds t[layer][point] (sparsa/activations.h): input x_j of a
//   linear is used iff |x_j| > t, so -1 (any negative value) is dense; the lm_head is always dense.
//   The GEMV configurations come from opt.tune (GemvTuneTable::lookup) at t.sparsity.
// - Runs on the current CUDA device on a stream of its own; not thread-safe (one thread drives a
//   decoder). Calls that return data wait for the decoder's work; step() does not. Every CUDA /
//   cuBLAS failure throws Error(kRuntime); bad arguments throw Error(kBadInput).
// - Families: the LLaMA family (RMSNorm, RoPE, gated SiLU MLP, GQA): LLaMA 2/3.x, Mistral (sliding
//   windows), Qwen2 (q/k/v biases), Qwen3 (per-head q/k RMSNorm). Gemma 3 and OPT throw Error(kBadInput)
//   (check_decode_supported says why).
// - Without CUDA (SPARSA_WITH_CUDA undefined) the GpuDecoder constructors throw Error(kRuntime);
//   check_decode_supported, dense_thresholds and decode_matrices work in every build.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sparsa/activations.h"
#include "sparsa/gpu.h"
#include "sparsa/model.h"
#include "sparsa/sparse_gemv.h"

namespace sparsa {

// The longest KV cache a decoder takes (the attention kernel keeps a block's scores in shared memory).
inline constexpr int64_t kDecodeMaxSeq = 65536;

// How the linears are computed.
enum class DecodeLinears : uint8_t {
  kSparseGemv,  // SparseGemvCuda with the thresholds (the subject of the benchmark)
  kCublas,      // dense cuBLAS GEMV (cublasGemmEx, n = 1) for every linear: the baseline; the
                // inputs are rounded to the weights' half type first, as a half-precision model does
};

struct DecodeOptions {
  GpuPrecision precision = GpuPrecision::kBf16;  // weights and KV cache
  int64_t max_seq = 0;                           // KV-cache positions; 0 = min(config.max_position, 4096)
  GemvTuneTable tune;                            // GEMV configs; untuned shapes take the defaults
};

// Error(kBadInput) naming what the decoder cannot run: another family than LLaMA's (Gemma 3,
// OPT), soft-capping, project_in/out, biases on o_proj or the MLP, head_dim beyond kRopeMaxHeadDim, or max_seq outside 1..min(config.max_position, kDecodeMaxSeq).
void check_decode_supported(const ModelConfig& c, const DecodeOptions& opt);

// Every threshold -1 (dense), sparsity 0, for n_layers blocks.
ActivationThresholds dense_thresholds(int64_t n_layers);

// The matrices of one decode step as the GEMV sees them.
struct DecodeMatrix {
  std::string name;   // "qkv", "o", "gate_up", "down", "lm_head"
  bool has_input_point = true;  // false for the lm_head (always dense)
  ObsPoint input = ObsPoint::kAttnIn;  // the observation point feeding it (when has_input_point)
  GemvShape shape;    // batch 1, in × out of Wᵀ, the weight type of the precision
  int64_t count = 0;  // how many per step: num_layers, or 1 for the lm_head
  int64_t bytes() const;  // weight bytes of one: in × out × element size
};
std::vector<DecodeMatrix> decode_matrices(const ModelConfig& c, GpuPrecision p);

class GpuDecoder {
 public:
  // Uploads m's weights (transposed and converted on the host; a 7B model takes a while).
  GpuDecoder(const Model& m, const DecodeOptions& opt);
  // Random weights generated on the device with the shapes of `c` and synth_model's
  // distribution (sparsa/synth.h): linears and embeddings ~ N(0, init_std²), norms 1, lm_head
  // untied. Deterministic in (c, seed), but not the same values as synth_model's.
  static GpuDecoder synthetic(const ModelConfig& c, uint64_t seed, float init_std, const DecodeOptions& opt);
  ~GpuDecoder();
  GpuDecoder(GpuDecoder&&) noexcept;
  GpuDecoder& operator=(GpuDecoder&&) noexcept;

  const ModelConfig& config() const;
  const DecodeOptions& options() const;

  // Thresholds for every block and point (t.t.size() must be num_layers: else Error(kBadInput)).
  // Takes effect at the next step; the graph is captured again then.
  void set_thresholds(const ActivationThresholds& t);
  const ActivationThresholds& thresholds() const;
  // kCublas computes every linear densely (the thresholds stay stored but are not applied).
  void set_linears(DecodeLinears l);

  // Starts a sequence at position 0 with `prompt` forced. Error(kBadInput) for an empty prompt,
  // one longer than max_seq, or a token outside the vocabulary.
  void reset(const std::vector<int32_t>& prompt);
  // Enqueues one step as a replay of the step's CUDA graph (captured here when it is missing)
  // and returns without waiting. Error(kBadInput) when position() == max_seq.
  void step();
  // The same step launched kernel by kernel (no graph); the same results.
  void step_eager();
  // n steps as step() does, with a CUDA event recorded before and after each; returns each
  // step's device time in milliseconds (waits). Launch gaps inside a step count, host time does not.
  std::vector<double> timed_steps(int64_t n);
  // Steps enqueued since reset(): the position the next step reads its token from.
  int64_t position() const;
  // The last step's logits [vocab] (waits).
  std::vector<float> logits();
  // tokens [position() + 1]: the prompt's and then the argmax tokens (waits). Like generate()'s
  // result after position() steps (the last one is the step's prediction).
  std::vector<int32_t> tokens();
  void synchronize();
  // The cudaStream_t the steps run on (to time them with events).
  void* stream() const;

  // Runs `steps` eager steps and hands over what every observation point's linears received,
  // before masking: fn(layer, point, x [n, dim], n, dim) with n <= `chunk` steps, once per
  // (layer, point) per chunk of steps. fn is called concurrently for different (layer, point)
  // pairs (never for the same pair at once). Device scratch: chunk × per-step inputs × 4 bytes.
  using RecordFn = std::function<void(int64_t layer, ObsPoint p, const float* x, int64_t n, int64_t dim)>;
  void run_recorded(int64_t steps, const RecordFn& fn, int64_t chunk = 64);

  struct Impl;

 private:
  explicit GpuDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Thresholds like `sparsa acts` (ActivationHistogram: t = sorted(|x|)[floor(s n)] per block and
// point, q/k/v sharing attn_in, gate/up sharing mlp_in), from the decoder's own activations over
// positions 0 .. steps - 1 from `prompt`: first a dense run, then, per sparsity,
// `refinement_passes` runs decoded with the previous thresholds, each point re-calibrated on what
// it receives there (before its own masking, after every upstream point's), as decode_thresholds
// (sparsa/activations.h) does on the CPU. Magnitudes depend on the position (o_in's shrink as
// attention averages over more of the cache), so calibrate over the positions the decode will
// cover: from 64 steps at position 0, o_in measured 0.75 inactive at a 0.5 target over 256. One result per
// sparsity, in order. Leaves the decoder dense (dense_thresholds) at position `steps`.
std::vector<ActivationThresholds> calibrate_decode_thresholds(GpuDecoder& d, const std::vector<int32_t>& prompt,
                                                              int64_t steps, const std::vector<double>& sparsities,
                                                              int refinement_passes = 1);

// The fraction of inputs with |x| <= t (the rows the GEMV skips), per [layer][point], over a run
// of `steps` steps from `prompt` with the decoder's current thresholds.
std::vector<std::array<double, kNumObsPoints>> decode_inactive_fractions(GpuDecoder& d,
                                                                         const std::vector<int32_t>& prompt,
                                                                         int64_t steps);

}  // namespace sparsa
