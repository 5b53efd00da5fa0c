// The GPU decoder (sparsa/decode.h): device weights in Wᵀ layout, the KV cache, the step as a
// sequence of launches on one stream (captured into a CUDA graph, or launched eagerly with the
// observation points copied out), and the host-side state mirror.
#ifdef SPARSA_WITH_CUDA

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <exception>
#include <optional>

#include "cuda/argmax.cuh"
#include "cuda/convert.cuh"
#include "cuda/cuda_check.h"
#include "cuda/decode_attention.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/fill_random.cuh"
#include "cuda/get_rows.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/rope.cuh"
#include "cuda/silu_mul.cuh"
#include "gpu/gpu_context.h"
#include "gpu/gpu_types.h"
#include "gpu/host_staging.h"
#include "sparsa/cuda.h"
#include "sparsa/decode.h"
#include "sparsa/error.h"
#include "sparsa/parallel.h"

namespace sparsa {
namespace {

// Indices into decode_matrices(): the four matrices of a block, then the lm_head.
enum Mat : int { kQkv, kO, kGateUp, kDown, kLmHead };
inline constexpr int kBlockMats = 4;

cuda::Elem elem_of(GpuPrecision p) {
  switch (p) {
    case GpuPrecision::kFp32: return cuda::Elem::kF32;
    case GpuPrecision::kBf16: return cuda::Elem::kBf16;
    case GpuPrecision::kFp16: return cuda::Elem::kF16;
  }
  return cuda::Elem::kF32;
}

// dst [in, ld] row-major, columns col0 .. col0 + out = Wᵀ of w [out, in].
void transpose_into(const Tensor& w, float* dst, int64_t ld, int64_t col0) {
  const int64_t out = w.dim(0), in = w.dim(1);
  const float* src = w.ptr();
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < in; ++j)
    for (int64_t o = 0; o < out; ++o) dst[j * ld + col0 + o] = src[o * in + j];
}

// Wᵀ of the matrices side by side: [in, Σ out], in order.
std::vector<float> transposed(std::initializer_list<const Tensor*> ws) {
  const int64_t in = (*ws.begin())->dim(1);
  int64_t ld = 0;
  for (const Tensor* w : ws) ld += w->dim(0);
  std::vector<float> t(static_cast<size_t>(in * ld));
  int64_t col = 0;
  for (const Tensor* w : ws) {
    transpose_into(*w, t.data(), ld, col);
    col += w->dim(0);
  }
  return t;
}

DeviceBuffer<uint8_t> device_bytes(int64_t elements, GpuPrecision p) {
  return DeviceBuffer<uint8_t>(static_cast<size_t>(elements) * gpu::element_bytes(p));
}

}  // namespace

struct GpuDecoder::Impl {
  struct Layer {
    DeviceBuffer<float> attn_norm, mlp_norm;        // [d_model]
    DeviceBuffer<float> qkv_bias;                   // [q_dim + 2 kv_dim] q | k | v; empty without biases
    DeviceBuffer<float> q_norm, k_norm;             // [head_dim] Qwen3's per-head RMSNorm; empty without
    int64_t window = 0;                             // sliding-window keys, 0 = every position
    std::array<DeviceBuffer<uint8_t>, kBlockMats> w;  // Wᵀ of qkv, o, gate_up, down
    DeviceBuffer<uint8_t> k_cache, v_cache;         // [max_seq, kv_dim]
  };
  // Where a step reads its token and position and writes the next token.
  struct StepState {
    int32_t* tokens;            // [max_seq + 1]
    int32_t* pos;               // [1]
    const int32_t* prompt_len;  // [1]
  };
  // Eager recording: the input of (layer, point) at step `step` goes to
  // base + chunk · offset[layer · 4 + point] + step · dim.
  struct Recording {
    float* base;
    int64_t chunk, step;
    const std::vector<int64_t>* offset;
  };

  ModelConfig c;
  DecodeOptions opt;
  cuda::Elem elem;
  int64_t max_seq;
  std::vector<DecodeMatrix> mats;
  std::vector<Layer> layers;
  DeviceBuffer<uint8_t> embed;    // [vocab, d_model]
  DeviceBuffer<uint8_t> lm_head;  // Wᵀ [d_model, vocab]
  DeviceBuffer<float> final_norm;  // [d_model]
  cuda::RopeFreqs freqs{};

  DeviceBuffer<int32_t> tokens, pos, prompt_len;              // the sequence's state
  DeviceBuffer<int32_t> warm_tokens, warm_pos, warm_prompt;  // a throw-away state for warm-up steps
  DeviceBuffer<float> x, delta, normed, qkv, attn, gate_up, act, logits;
  DeviceBuffer<uint8_t> half_in;  // cuBLAS mode, half precisions: the rounded input of a linear

  ActivationThresholds thresholds;
  DecodeLinears linears = DecodeLinears::kSparseGemv;
  std::vector<SparseGemvCuda> plans;  // one per mats entry
  cudaStream_t stream = nullptr;
  cudaGraphExec_t graph = nullptr;
  cublasHandle_t blas = nullptr;
  DeviceBuffer<uint8_t> blas_workspace;
  int64_t host_pos = 0;
  bool started = false;

  Impl(const ModelConfig& config, const DecodeOptions& options) : c(config), opt(options), elem(elem_of(options.precision)) {
    check_decode_supported(c, opt);
    max_seq = opt.max_seq > 0 ? opt.max_seq : std::min<int64_t>({c.max_position, 4096, kDecodeMaxSeq});
    opt.max_seq = max_seq;
    mats = decode_matrices(c, opt.precision);
    const std::vector<float> inv_freq = rope_inv_freq(c.rope, c.head_dim);  // scaled RoPE as the CPU's
    SPARSA_ASSERT(static_cast<int64_t>(inv_freq.size()) <= cuda::kRopeMaxHalf);  // check_gpu_supported's bound
    std::copy(inv_freq.begin(), inv_freq.end(), freqs.inv_freq);
    SPARSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const GpuPrecision p = opt.precision;
    const int64_t d = c.hidden_size, ff = c.intermediate_size, kv = c.kv_dim();
    layers.resize(static_cast<size_t>(c.num_layers));
    for (size_t li = 0; li < layers.size(); ++li) {
      Layer& l = layers[li];
      l.window = c.is_sliding(static_cast<int64_t>(li)) ? c.sliding_window : 0;
      l.attn_norm = DeviceBuffer<float>(static_cast<size_t>(d));
      l.mlp_norm = DeviceBuffer<float>(static_cast<size_t>(d));
      for (int m = 0; m < kBlockMats; ++m) l.w[m] = device_bytes(mats[m].shape.in * mats[m].shape.out, p);
      l.k_cache = device_bytes(max_seq * kv, p);
      l.v_cache = device_bytes(max_seq * kv, p);
      SPARSA_CUDA_CHECK(cudaMemsetAsync(l.k_cache.data(), 0, l.k_cache.size(), stream));
      SPARSA_CUDA_CHECK(cudaMemsetAsync(l.v_cache.data(), 0, l.v_cache.size(), stream));
    }
    embed = device_bytes(c.vocab_size * d, p);
    lm_head = device_bytes(d * c.vocab_size, p);
    final_norm = DeviceBuffer<float>(static_cast<size_t>(d));
    const auto n = static_cast<size_t>(max_seq + 1);
    tokens = DeviceBuffer<int32_t>(std::vector<int32_t>(n, 0));
    pos = DeviceBuffer<int32_t>(std::vector<int32_t>{0});
    prompt_len = DeviceBuffer<int32_t>(std::vector<int32_t>{1});
    warm_tokens = DeviceBuffer<int32_t>(std::vector<int32_t>(n, 0));
    warm_pos = DeviceBuffer<int32_t>(1);
    warm_prompt = DeviceBuffer<int32_t>(std::vector<int32_t>{0});
    x = DeviceBuffer<float>(static_cast<size_t>(d));
    delta = DeviceBuffer<float>(static_cast<size_t>(d));
    normed = DeviceBuffer<float>(static_cast<size_t>(d));
    qkv = DeviceBuffer<float>(static_cast<size_t>(c.q_dim() + 2 * kv));
    attn = DeviceBuffer<float>(static_cast<size_t>(c.q_dim()));
    gate_up = DeviceBuffer<float>(static_cast<size_t>(2 * ff));
    act = DeviceBuffer<float>(static_cast<size_t>(ff));
    logits = DeviceBuffer<float>(static_cast<size_t>(c.vocab_size));
    set_thresholds(dense_thresholds(c.num_layers));
  }

  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    if (graph) cudaGraphExecDestroy(graph);
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }

  void drop_graph() {
    if (graph) SPARSA_CUDA_CHECK(cudaGraphExecDestroy(graph));
    graph = nullptr;
  }

  void set_thresholds(const ActivationThresholds& t) {
    if (static_cast<int64_t>(t.t.size()) != c.num_layers)
      bad_input("decode thresholds cover {} blocks, the model has {}", t.t.size(), c.num_layers);
    std::vector<SparseGemvCuda> p;
    for (size_t m = 0; m < mats.size(); ++m)
      p.emplace_back(mats[m].shape, m == kLmHead ? 0.0f : static_cast<float>(t.sparsity), opt.tune);
    plans = std::move(p);
    thresholds = t;
    drop_graph();
  }

  void set_linears(DecodeLinears l) {
    if (l == DecodeLinears::kCublas && !blas) {
      constexpr size_t kWorkspace = 4 << 20;
      SPARSA_CUBLAS_CHECK(cublasCreate(&blas));
      SPARSA_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));  // fp32 stays fp32 (no TF32)
      SPARSA_CUBLAS_CHECK(cublasSetStream(blas, stream));
      blas_workspace = DeviceBuffer<uint8_t>(kWorkspace);  // graph capture must not allocate
      SPARSA_CUBLAS_CHECK(cublasSetWorkspace(blas, blas_workspace.data(), kWorkspace));
      half_in = device_bytes(std::max({c.hidden_size, c.q_dim(), c.intermediate_size}), opt.precision);
    }
    linears = l;
    drop_graph();
  }

  // y [out] = W x [in] for matrix m with weights w (Wᵀ [in, out]).
  void linear(int m, const void* w, const float* in, float* y, float threshold) {
    if (linears == DecodeLinears::kSparseGemv) {
      plans[static_cast<size_t>(m)].run(w, in, y, threshold, stream);
      return;
    }
    const GemvShape& s = mats[static_cast<size_t>(m)].shape;
    const GpuPrecision p = opt.precision;
    const void* b = in;
    if (gpu::is_half(p)) {
      cuda::launch_to_half(in, half_in.data(), s.in, gpu::is_bf16(p), stream);
      b = half_in.data();
    }
    // Wᵀ [in, out] row-major is W column-major [out, in] (ld out): y = W · x.
    const float one = 1.0f, zero = 0.0f;
    const auto out = static_cast<int>(s.out), k = static_cast<int>(s.in);
    SPARSA_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, out, 1, k, &one, w, gpu::cuda_type(p), out, b,
                                     gpu::cuda_type(p), k, &zero, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
  }

  void record(Recording* rec, int64_t layer, ObsPoint p, const float* v) {
    if (!rec) return;
    const int64_t dim = obs_point_dim(c, p);
    float* dst = rec->base + rec->chunk * (*rec->offset)[static_cast<size_t>(layer * kNumObsPoints + static_cast<int>(p))] +
                 rec->step * dim;
    SPARSA_CUDA_CHECK(cudaMemcpyAsync(dst, v, static_cast<size_t>(dim) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }

  // Enqueues one step on `stream` (see sparsa/decode.h for the sequence).
  void enqueue_step(const StepState& st, Recording* rec) {
    const int64_t d = c.hidden_size, ff = c.intermediate_size;
    cuda::launch_embed_row(embed.data(), elem, st.tokens, st.pos, x.data(), d, stream);
    for (int64_t li = 0; li < c.num_layers; ++li) {
      Layer& l = layers[static_cast<size_t>(li)];
      const auto& t = thresholds.t[static_cast<size_t>(li)];
      auto threshold = [&](ObsPoint p) { return t[static_cast<size_t>(p)]; };
      cuda::launch_residual_rmsnorm(x.data(), li == 0 ? nullptr : delta.data(), l.attn_norm.data(), normed.data(), 1,
                                    d, c.norm_eps, stream);
      record(rec, li, ObsPoint::kAttnIn, normed.data());
      linear(kQkv, l.w[kQkv].data(), normed.data(), qkv.data(), threshold(ObsPoint::kAttnIn));
      if (l.qkv_bias.size())
        cuda::launch_add_bias(qkv.data(), l.qkv_bias.data(), 1, static_cast<int64_t>(l.qkv_bias.size()), stream);
      if (l.q_norm.size()) {  // RMSNorm over each head's head_dim values, in place, before RoPE
        cuda::launch_rmsnorm(qkv.data(), l.q_norm.data(), qkv.data(), c.num_heads, c.head_dim, c.norm_eps, stream);
        float* k = qkv.data() + c.q_dim();
        cuda::launch_rmsnorm(k, l.k_norm.data(), k, c.num_kv_heads, c.head_dim, c.norm_eps, stream);
      }
      cuda::launch_rope_append(qkv.data(), l.k_cache.data(), l.v_cache.data(), elem, st.pos, c.num_heads,
                               c.num_kv_heads, c.head_dim, freqs, stream);
      cuda::launch_decode_attention(qkv.data(), l.k_cache.data(), l.v_cache.data(), elem, st.pos, attn.data(),
                                    c.num_heads, c.num_kv_heads, c.head_dim, max_seq, l.window, stream);
      record(rec, li, ObsPoint::kOIn, attn.data());
      linear(kO, l.w[kO].data(), attn.data(), delta.data(), threshold(ObsPoint::kOIn));
      cuda::launch_residual_rmsnorm(x.data(), delta.data(), l.mlp_norm.data(), normed.data(), 1, d, c.norm_eps, stream);
      record(rec, li, ObsPoint::kMlpIn, normed.data());
      linear(kGateUp, l.w[kGateUp].data(), normed.data(), gate_up.data(), threshold(ObsPoint::kMlpIn));
      cuda::launch_silu_mul(gate_up.data(), gate_up.data() + ff, act.data(), ff, stream);
      record(rec, li, ObsPoint::kDownIn, act.data());
      linear(kDown, l.w[kDown].data(), act.data(), delta.data(), threshold(ObsPoint::kDownIn));
    }
    cuda::launch_residual_rmsnorm(x.data(), delta.data(), final_norm.data(), normed.data(), 1, d, c.norm_eps, stream);
    linear(kLmHead, lm_head.data(), normed.data(), logits.data(), -1.0f);
    cuda::launch_argmax_advance(logits.data(), c.vocab_size, st.tokens, st.pos, st.prompt_len, stream);
  }

  StepState state() { return {tokens.data(), pos.data(), prompt_len.data()}; }

  // One eager step on the throw-away state at the last cache row (which a sequence writes before
  // it reads it), so that every kernel of the step has been loaded and configured before capture.
  void warm_up() {
    const int32_t last = static_cast<int32_t>(max_seq - 1);
    SPARSA_CUDA_CHECK(cudaMemcpyAsync(warm_pos.data(), &last, sizeof last, cudaMemcpyHostToDevice, stream));
    enqueue_step({warm_tokens.data(), warm_pos.data(), warm_prompt.data()}, nullptr);
    SPARSA_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  void capture() {
    warm_up();
    cudaGraph_t g = nullptr;
    SPARSA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue_step(state(), nullptr);
    } catch (...) {
      cudaStreamEndCapture(stream, &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
      throw;
    }
    SPARSA_CUDA_CHECK(cudaStreamEndCapture(stream, &g));
    const cudaError_t e = cudaGraphInstantiate(&graph, g, 0);
    cudaGraphDestroy(g);
    SPARSA_CUDA_CHECK(e);
  }

  void check_step() {
    if (!started) bad_input("GPU decoding: reset() with a prompt before the first step");
    if (host_pos >= max_seq) bad_input("GPU decoding: the KV cache is full ({} positions)", max_seq);
  }

  void reset(const std::vector<int32_t>& prompt) {
    if (prompt.empty()) bad_input("GPU decoding needs at least one prompt token");
    if (static_cast<int64_t>(prompt.size()) > max_seq)
      bad_input("the prompt has {} tokens, more than the decoder's {} positions", prompt.size(), max_seq);
    for (size_t i = 0; i < prompt.size(); ++i)
      if (prompt[i] < 0 || prompt[i] >= c.vocab_size)
        bad_input("token id {} at position {} is outside the vocabulary (size {})", prompt[i], i, c.vocab_size);
    SPARSA_CUDA_CHECK(cudaStreamSynchronize(stream));
    const int32_t zero = 0, n = static_cast<int32_t>(prompt.size());
    SPARSA_CUDA_CHECK(cudaMemcpyAsync(tokens.data(), prompt.data(), prompt.size() * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, stream));
    SPARSA_CUDA_CHECK(cudaMemcpyAsync(pos.data(), &zero, sizeof zero, cudaMemcpyHostToDevice, stream));
    SPARSA_CUDA_CHECK(cudaMemcpyAsync(prompt_len.data(), &n, sizeof n, cudaMemcpyHostToDevice, stream));
    SPARSA_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host values above are locals
    host_pos = 0;
    started = true;
  }

  void run_recorded(int64_t steps, const RecordFn& fn, int64_t chunk) {
    if (steps < 0 || chunk < 1) bad_input("run_recorded: steps {} and chunk {} must be >= 0 and >= 1", steps, chunk);
    chunk = std::min(chunk, std::max<int64_t>(steps, 1));
    std::vector<int64_t> offset(static_cast<size_t>(c.num_layers * kNumObsPoints));
    int64_t per_step = 0;
    for (int64_t l = 0; l < c.num_layers; ++l)
      for (int p = 0; p < kNumObsPoints; ++p) {
        offset[static_cast<size_t>(l * kNumObsPoints + p)] = per_step;
        per_step += obs_point_dim(c, static_cast<ObsPoint>(p));
      }
    DeviceBuffer<float> rec_dev(static_cast<size_t>(chunk * per_step));
    std::vector<float> rec_host(rec_dev.size());
    for (int64_t done = 0; done < steps;) {
      const int64_t n = std::min(chunk, steps - done);
      for (int64_t s = 0; s < n; ++s) {
        check_step();
        Recording rec{rec_dev.data(), chunk, s, &offset};
        enqueue_step(state(), &rec);
        ++host_pos;
      }
      SPARSA_CUDA_CHECK(cudaMemcpyAsync(rec_host.data(), rec_dev.data(), rec_dev.size() * sizeof(float),
                                        cudaMemcpyDeviceToHost, stream));
      SPARSA_CUDA_CHECK(cudaStreamSynchronize(stream));
      ParallelFailure failure;
      const auto pairs = static_cast<int64_t>(offset.size());
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t i = 0; i < pairs; ++i)
        failure.run([&] {
          const auto p = static_cast<ObsPoint>(i % kNumObsPoints);
          fn(i / kNumObsPoints, p, rec_host.data() + chunk * offset[static_cast<size_t>(i)], n, obs_point_dim(c, p));
        });
      failure.rethrow_if_any([&] { return fmt::format("recording the activations of {} decoded tokens", n); });
      done += n;
    }
  }

  // ---- weights ----

  void upload(const Model& m) {
    gpu::HostStaging staging;
    const GpuPrecision p = opt.precision;
    for (int64_t li = 0; li < c.num_layers; ++li) {
      const Block& b = m.blocks.at(static_cast<size_t>(li));
      Layer& l = layers[static_cast<size_t>(li)];
      l.attn_norm.upload(b.attn_norm.data);
      l.mlp_norm.upload(b.mlp_norm.data);
      if (c.attention_bias) {
        std::vector<float> bias;  // q | k | v, as the fused q/k/v matrix's columns
        for (const LinearRole r : {LinearRole::kQ, LinearRole::kK, LinearRole::kV}) {
          const Tensor& t = b.linear(r).bias;
          bias.insert(bias.end(), t.data.begin(), t.data.end());
        }
        if (static_cast<int64_t>(bias.size()) != c.q_dim() + 2 * c.kv_dim())
          bad_input("block {}: the q/k/v biases hold {} values, the decoder needs {} (one per q, k and v output)", li,
                    bias.size(), c.q_dim() + 2 * c.kv_dim());
        l.qkv_bias = DeviceBuffer<float>(bias);
      }
      if (b.q_norm.numel()) {
        l.q_norm = DeviceBuffer<float>(b.q_norm.data);
        l.k_norm = DeviceBuffer<float>(b.k_norm.data);
      }
      auto put = [&](int mat, std::initializer_list<const Tensor*> ws) {
        const std::vector<float> t = transposed(ws);
        staging.upload(t.data(), static_cast<int64_t>(t.size()), l.w[mat].data(), p);
      };
      put(kQkv, {&b.linear(LinearRole::kQ).weight, &b.linear(LinearRole::kK).weight, &b.linear(LinearRole::kV).weight});
      put(kO, {&b.linear(LinearRole::kO).weight});
      put(kGateUp, {&b.linear(LinearRole::kGate).weight, &b.linear(LinearRole::kUp).weight});
      put(kDown, {&b.linear(LinearRole::kDown).weight});
    }
    staging.upload(m.embed.ptr(), static_cast<int64_t>(m.embed.numel()), embed.data(), p);
    const std::vector<float> head = transposed({&m.lm_head});
    staging.upload(head.data(), static_cast<int64_t>(head.size()), lm_head.data(), p);
    final_norm.upload(m.final_norm.data);
  }

  void randomize(uint64_t seed, float init_std) {
    uint64_t stream_id = 0;
    auto fill = [&](DeviceBuffer<uint8_t>& buf) {
      const auto n = static_cast<int64_t>(buf.size() / gpu::element_bytes(opt.precision));
      cuda::launch_fill_normal(buf.data(), elem, n, seed * 0x9E3779B97F4A7C15ull + ++stream_id, init_std, stream);
    };
    const std::vector<float> ones(static_cast<size_t>(c.hidden_size), 1.0f);
    for (Layer& l : layers) {
      l.attn_norm.upload(ones);
      l.mlp_norm.upload(ones);
      for (auto& w : l.w) fill(w);
    }
    fill(embed);
    fill(lm_head);
    final_norm.upload(ones);
    SPARSA_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
};

GpuDecoder::GpuDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GpuDecoder::GpuDecoder(const Model& m, const DecodeOptions& opt) {
  if (static_cast<int64_t>(m.blocks.size()) != m.config.num_layers)
    bad_input("the model has {} blocks, its config says {}", m.blocks.size(), m.config.num_layers);
  impl_ = std::make_unique<Impl>(m.config, opt);
  impl_->upload(m);
  // The uploads ran on the legacy default stream, which the decoder's stream does not wait for.
  SPARSA_CUDA_CHECK(cudaDeviceSynchronize());
}

GpuDecoder GpuDecoder::synthetic(const ModelConfig& c, uint64_t seed, float init_std, const DecodeOptions& opt) {
  auto impl = std::make_unique<Impl>(c, opt);
  impl->randomize(seed, init_std);
  SPARSA_CUDA_CHECK(cudaDeviceSynchronize());  // the norms' uploads ran on the legacy default stream
  return GpuDecoder(std::move(impl));
}

GpuDecoder::~GpuDecoder() = default;
GpuDecoder::GpuDecoder(GpuDecoder&&) noexcept = default;
GpuDecoder& GpuDecoder::operator=(GpuDecoder&&) noexcept = default;

const ModelConfig& GpuDecoder::config() const { return impl_->c; }
const DecodeOptions& GpuDecoder::options() const { return impl_->opt; }
void GpuDecoder::set_thresholds(const ActivationThresholds& t) { impl_->set_thresholds(t); }
const ActivationThresholds& GpuDecoder::thresholds() const { return impl_->thresholds; }
void GpuDecoder::set_linears(DecodeLinears l) { impl_->set_linears(l); }
void GpuDecoder::reset(const std::vector<int32_t>& prompt) { impl_->reset(prompt); }

void GpuDecoder::step() {
  impl_->check_step();
  if (!impl_->graph) impl_->capture();
  SPARSA_CUDA_CHECK(cudaGraphLaunch(impl_->graph, impl_->stream));
  ++impl_->host_pos;
}

void GpuDecoder::step_eager() {
  impl_->check_step();
  impl_->enqueue_step(impl_->state(), nullptr);
  ++impl_->host_pos;
}

std::vector<double> GpuDecoder::timed_steps(int64_t n) {
  if (n < 1) bad_input("timed_steps needs at least one step, got {}", n);
  std::vector<cudaEvent_t> events;
  std::vector<double> ms;
  try {
    for (int64_t i = 0; i <= n; ++i) {
      cudaEvent_t e = nullptr;
      SPARSA_CUDA_CHECK(cudaEventCreate(&e));
      events.push_back(e);
    }
    SPARSA_CUDA_CHECK(cudaEventRecord(events[0], impl_->stream));
    for (int64_t i = 0; i < n; ++i) {
      step();
      SPARSA_CUDA_CHECK(cudaEventRecord(events[static_cast<size_t>(i + 1)], impl_->stream));
    }
    SPARSA_CUDA_CHECK(cudaEventSynchronize(events.back()));
    for (int64_t i = 0; i < n; ++i) {
      float t = 0;
      SPARSA_CUDA_CHECK(cudaEventElapsedTime(&t, events[static_cast<size_t>(i)], events[static_cast<size_t>(i + 1)]));
      ms.push_back(t);
    }
  } catch (...) {
    for (cudaEvent_t e : events) cudaEventDestroy(e);
    throw;
  }
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  return ms;
}

int64_t GpuDecoder::position() const { return impl_->host_pos; }

std::vector<float> GpuDecoder::logits() {
  std::vector<float> out(impl_->logits.size());
  SPARSA_CUDA_CHECK(cudaMemcpyAsync(out.data(), impl_->logits.data(), out.size() * sizeof(float),
                                    cudaMemcpyDeviceToHost, impl_->stream));
  synchronize();
  return out;
}

std::vector<int32_t> GpuDecoder::tokens() {
  std::vector<int32_t> out(static_cast<size_t>(impl_->host_pos + 1));
  SPARSA_CUDA_CHECK(cudaMemcpyAsync(out.data(), impl_->tokens.data(), out.size() * sizeof(int32_t),
                                    cudaMemcpyDeviceToHost, impl_->stream));
  synchronize();
  return out;
}

void GpuDecoder::synchronize() { SPARSA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream)); }
void* GpuDecoder::stream() const { return impl_->stream; }

void GpuDecoder::run_recorded(int64_t steps, const RecordFn& fn, int64_t chunk) {
  impl_->run_recorded(steps, fn, chunk);
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
