// Perplexity, logits and task-choice scores on the GPU, every family: every block resident,
// windows in chunks; perplexity by the reference definition.
#ifdef SPARSA_WITH_CUDA

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "cuda/nll.cuh"
#include "gpu/gpu_backends.h"
#include "gpu/gpu_forward.h"
#include "gpu/gpu_types.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {
namespace {

// The whole model resident on the device, run over chunks of whole windows: embedding, every
// block, head. Validates the windows (shape, context, vocabulary) before it uploads anything.
class ResidentModel {
 public:
  ResidentModel(const Model& m, const TensorI32& windows, const DeviceOptions& gpu,
                const ActivationThresholds* sparsify = nullptr)
      : windows_(windows), sparsify_(sparsify), p_(gpu.precision), L_(checked_seqlen(m, windows, sparsify)),
        embedding_(m, staging_), head_(m, gpu.precision, staging_) {
    const ModelConfig& c = m.config;
    blocks_.resize(static_cast<size_t>(c.num_layers));
    for (int64_t l = 0; l < c.num_layers; ++l) blocks_[static_cast<size_t>(l)].upload(m, l, p_, staging_);
    per_chunk_ = std::max<int64_t>(1, std::min(gpu.chunk_tokens / L_, windows.dim(0)));
    fw_ = std::make_unique<gpu::GpuForward>(c, p_, per_chunk_, L_);
    tokens_ = DeviceBuffer<int32_t>(static_cast<size_t>(per_chunk_ * L_));
    x_ = DeviceBuffer<float>(static_cast<size_t>(per_chunk_ * L_ * c.hidden_size));
    logits_ = DeviceBuffer<float>(static_cast<size_t>(per_chunk_ * L_ * c.vocab_size));
  }

  int64_t per_chunk() const { return per_chunk_; }
  int64_t seqlen() const { return L_; }

  // The checks, before any weight is uploaded: the model, the thresholds' rows, the windows' shape,
  // context and vocabulary. Returns the window length.
  static int64_t checked_seqlen(const Model& m, const TensorI32& windows, const ActivationThresholds* sparsify) {
    const ModelConfig& c = m.config;
    check_gpu_supported(c);
    if (sparsify && static_cast<int64_t>(sparsify->t.size()) != c.num_layers)
      bad_input("activation thresholds for {} layers, the model has {}", sparsify->t.size(), c.num_layers);
    if (windows.rank() != 2 || windows.dim(1) < 2)
      bad_input("perplexity needs windows [n, seqlen >= 2], got {}", shape_string(windows.shape));
    check_window_tokens(c, windows);
    return windows.dim(1);
  }

  // Windows [w0, w0 + S) -> logits [S * seqlen, vocab] fp32 on the device (valid until the next run).
  const float* run(int64_t w0, int64_t S) {
    const int64_t T = S * L_;
    tokens_.upload(std::vector<int32_t>(windows_.ptr() + w0 * L_, windows_.ptr() + w0 * L_ + T));
    embedding_.embed(tokens_.data(), T, L_, x_.data());
    for (const gpu::GpuBlock& b : blocks_)
      fw_->block(b, x_.data(), S, nullptr, false, sparsify_ ? &sparsify_->t[static_cast<size_t>(b.layer)] : nullptr);
    head_.logits(x_.data(), T, *fw_, logits_.data());
    return logits_.data();
  }

 private:
  const TensorI32& windows_;
  const ActivationThresholds* sparsify_;
  GpuPrecision p_;
  int64_t L_;  // checked before anything is uploaded
  gpu::HostStaging staging_;
  gpu::GpuEmbedding embedding_;
  gpu::GpuHead head_;
  std::vector<gpu::GpuBlock> blocks_;
  int64_t per_chunk_ = 0;
  std::unique_ptr<gpu::GpuForward> fw_;
  DeviceBuffer<int32_t> tokens_;
  DeviceBuffer<float> x_, logits_;
};

}  // namespace

PerplexityResult perplexity_cuda(const Model& m, const TensorI32& windows, const DeviceOptions& gpu,
                                 const std::function<void(int64_t, int64_t)>& progress,
                                 const ActivationThresholds* sparsify) {
  const auto start = std::chrono::steady_clock::now();
  ResidentModel rm(m, windows, gpu, sparsify);
  const int64_t n_windows = windows.dim(0), L = rm.seqlen(), per_chunk = rm.per_chunk(), V = m.config.vocab_size;
  DeviceBuffer<int32_t> targets(static_cast<size_t>(per_chunk * L));
  DeviceBuffer<double> nll(static_cast<size_t>(per_chunk * L));
  std::vector<double> window_nll(static_cast<size_t>(n_windows));
  for (int64_t w0 = 0; w0 < n_windows; w0 += per_chunk) {
    const int64_t S = std::min(per_chunk, n_windows - w0), T = S * L;
    std::vector<int32_t> next(static_cast<size_t>(T), 0);  // the last of each window is unused
    for (int64_t t = 0; t + 1 < T; ++t) next[static_cast<size_t>(t)] = windows.data[static_cast<size_t>(w0 * L + t + 1)];
    targets.upload(next);
    cuda::launch_row_nll(rm.run(w0, S), targets.data(), nll.data(), T, V);
    std::vector<double> row(static_cast<size_t>(T));
    copy_to_host(row.data(), nll.data(), row.size() * sizeof(double));
    for (int64_t s = 0; s < S; ++s) {
      double sum = 0.0;
      for (int64_t t = 0; t + 1 < L; ++t) sum += row[static_cast<size_t>(s * L + t)];
      window_nll[static_cast<size_t>(w0 + s)] = sum;
    }
    if (progress) progress(w0 + S, n_windows);
  }

  PerplexityResult r;
  r.windows = n_windows;
  r.predicted_tokens = n_windows * (L - 1);
  double total = 0.0;
  for (double v : window_nll) total += v;
  r.mean_nll = total / static_cast<double>(r.predicted_tokens);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::vector<ChoiceScore> score_choices_cuda(const Model& m, const std::vector<ChoiceWindow>& choices,
                                            const DeviceOptions& gpu,
                                            const std::function<void(int64_t, int64_t)>& progress) {
  const auto n = static_cast<int64_t>(choices.size());
  std::vector<ChoiceScore> out(choices.size());
  if (n == 0) return out;
  int64_t L = 2;  // the resident model's windows need 2 tokens at least
  for (const ChoiceWindow& w : choices) L = std::max(L, w.n_in);
  // Inputs right-padded with token 0 (causal attention: the padding changes no scored row);
  // targets[c, t] = tokens[t + 1] on the input rows, 0 on the padding (not read).
  TensorI32 windows;
  windows.shape = {n, L};
  windows.data.assign(static_cast<size_t>(n * L), 0);
  std::vector<int32_t> targets(static_cast<size_t>(n * L), 0);
  for (int64_t c = 0; c < n; ++c) {
    const ChoiceWindow& w = choices[static_cast<size_t>(c)];
    std::copy_n(w.tokens.begin(), w.n_in, windows.data.begin() + c * L);
    std::copy_n(w.tokens.begin() + 1, w.n_in, targets.begin() + c * L);
  }
  ResidentModel rm(m, windows, gpu);
  const int64_t per_chunk = rm.per_chunk(), V = m.config.vocab_size;
  DeviceBuffer<int32_t> d_targets(static_cast<size_t>(per_chunk * L));
  DeviceBuffer<double> nll(static_cast<size_t>(per_chunk * L));
  DeviceBuffer<uint8_t> greedy(static_cast<size_t>(per_chunk * L));
  std::vector<double> row_nll(static_cast<size_t>(per_chunk * L));
  std::vector<uint8_t> row_greedy(static_cast<size_t>(per_chunk * L));
  for (int64_t c0 = 0; c0 < n; c0 += per_chunk) {
    const int64_t S = std::min(per_chunk, n - c0), T = S * L;
    d_targets.upload(std::vector<int32_t>(targets.begin() + c0 * L, targets.begin() + c0 * L + T));
    cuda::launch_row_nll(rm.run(c0, S), d_targets.data(), nll.data(), T, V, greedy.data());
    copy_to_host(row_nll.data(), nll.data(), static_cast<size_t>(T) * sizeof(double));
    copy_to_host(row_greedy.data(), greedy.data(), static_cast<size_t>(T));
    for (int64_t s = 0; s < S; ++s) {
      const ChoiceWindow& w = choices[static_cast<size_t>(c0 + s)];
      ChoiceScore& score = out[static_cast<size_t>(c0 + s)];
      score.tokens = w.n_continuation;
      score.truncated = w.truncated;
      score.greedy = true;
      for (int64_t t = w.n_in - w.n_continuation; t < w.n_in; ++t) {
        score.loglik -= row_nll[static_cast<size_t>(s * L + t)];
        score.greedy = score.greedy && row_greedy[static_cast<size_t>(s * L + t)] != 0;
      }
    }
    if (progress) progress(c0 + S, n);
  }
  return out;
}

Tensor logits_cuda(const Model& m, const TensorI32& windows, const DeviceOptions& gpu) {
  ResidentModel rm(m, windows, gpu);
  const int64_t n_windows = windows.dim(0), L = rm.seqlen(), V = m.config.vocab_size;
  Tensor out({n_windows, L, V});
  for (int64_t w0 = 0; w0 < n_windows; w0 += rm.per_chunk()) {
    const int64_t S = std::min(rm.per_chunk(), n_windows - w0);
    copy_to_host(out.ptr() + w0 * L * V, rm.run(w0, S), static_cast<size_t>(S * L * V) * sizeof(float));
  }
  return out;
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
