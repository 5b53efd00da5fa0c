// Perplexity on the GPU: every block resident, windows in chunks, the reference definition.
#ifdef SPARSA_WITH_CUDA

#include <chrono>
#include <cmath>

#include "cuda/get_rows.cuh"
#include "cuda/nll.cuh"
#include "gpu/gpu_backends.h"
#include "gpu/gpu_forward.h"
#include "gpu/gpu_types.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {

PerplexityResult perplexity_cuda(const Model& m, const TensorI32& windows, const DeviceOptions& gpu,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  const ModelConfig& c = m.config;
  check_gpu_supported(c);
  if (windows.rank() != 2 || windows.dim(1) < 2) bad_input("perplexity needs windows [n, seqlen >= 2], got {}", shape_string(windows.shape));
  const int64_t n_windows = windows.dim(0), L = windows.dim(1), d = c.hidden_size, V = c.vocab_size;
  if (L > c.max_position) bad_input("seqlen {} is above the model's context length {}", L, c.max_position);
  for (size_t i = 0; i < windows.numel(); ++i)
    if (windows.data[i] < 0 || windows.data[i] >= V)
      bad_input("token id {} at window {}, position {} is outside the vocabulary (size {})", windows.data[i],
                static_cast<int64_t>(i) / L, static_cast<int64_t>(i) % L, V);
  const auto start = std::chrono::steady_clock::now();

  const GpuPrecision p = gpu.precision;
  gpu::HostStaging staging;
  std::vector<gpu::GpuBlock> blocks(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) blocks[static_cast<size_t>(l)].upload(m.blocks[static_cast<size_t>(l)], p, staging);
  DeviceBuffer<float> embed(m.embed.data), final_norm(m.final_norm.data);
  gpu::GpuLinear lm_head;
  lm_head.weight.upload(m.lm_head, p, staging);

  const int64_t per_chunk = std::max<int64_t>(1, std::min(gpu.chunk_tokens / L, n_windows));
  gpu::GpuForward fw(c, p, per_chunk, L);
  DeviceBuffer<int32_t> tokens(static_cast<size_t>(per_chunk * L)), targets(static_cast<size_t>(per_chunk * L));
  DeviceBuffer<float> x(static_cast<size_t>(per_chunk * L * d)), logits(static_cast<size_t>(per_chunk * L * V));
  DeviceBuffer<uint8_t> xh(gpu::is_half(p) ? static_cast<size_t>(per_chunk * L * d) * 2 : 0);
  DeviceBuffer<double> nll(static_cast<size_t>(per_chunk * L));
  std::vector<double> window_nll(static_cast<size_t>(n_windows));
  for (int64_t w0 = 0; w0 < n_windows; w0 += per_chunk) {
    const int64_t S = std::min(per_chunk, n_windows - w0), T = S * L;
    std::vector<int32_t> tok(windows.ptr() + w0 * L, windows.ptr() + (w0 + S) * L), next(tok.size(), 0);
    for (int64_t t = 0; t + 1 < T; ++t) next[static_cast<size_t>(t)] = tok[static_cast<size_t>(t + 1)];  // last of each window unused
    tokens.upload(tok);
    targets.upload(next);
    cuda::launch_gather_rows(embed.data(), tokens.data(), x.data(), T, d);
    for (const gpu::GpuBlock& b : blocks) fw.block(b, x.data(), S, nullptr);
    rmsnorm_cuda(x.data(), final_norm.data(), x.data(), T, d, c.norm_eps);
    const void* h = fw.to_half(x.data(), xh, T * d);
    gpu::linear_cuda(lm_head, p, x.data(), h, logits.data(), T, 0.0f);
    cuda::launch_row_nll(logits.data(), targets.data(), nll.data(), T, V);
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

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
