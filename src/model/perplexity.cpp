// Perplexity over windows, the reference way (no BOS, no sliding, exp of the mean NLL).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/parallel.h"
#include "model/token_nll.h"

namespace sparsa {
namespace {

// Sum over t in [0, n-1) of -log softmax(logits[t])[tokens[t + 1]], in double.
double window_nll(const Tensor& logits, const int32_t* tokens, int64_t n) {
  const int64_t vocab = logits.dim(1);
  double nll = 0.0;
  for (int64_t t = 0; t + 1 < n; ++t) nll += token_nll(logits.ptr() + t * vocab, vocab, tokens[t + 1]);
  return nll;
}

}  // namespace

void check_window_tokens(const ModelConfig& c, const TensorI32& windows, std::string_view prefix, std::string_view row) {
  const int64_t seqlen = windows.dim(1);
  if (seqlen > c.max_position) bad_input("{}seqlen {} is above the model's context length {}", prefix, seqlen, c.max_position);
  for (size_t i = 0; i < windows.numel(); ++i)
    if (windows.data[i] < 0 || windows.data[i] >= c.vocab_size)
      bad_input("{}token id {} at {} {}, position {} is outside the vocabulary (size {})", prefix, windows.data[i], row,
                static_cast<int64_t>(i) / seqlen, static_cast<int64_t>(i) % seqlen, c.vocab_size);
}

TensorI32 make_windows(const std::vector<int32_t>& tokens, int64_t seqlen) {
  SPARSA_ASSERT(seqlen > 0);
  const int64_t n = static_cast<int64_t>(tokens.size()) / seqlen;
  TensorI32 w({n, seqlen});
  std::copy_n(tokens.begin(), n * seqlen, w.data.begin());
  return w;
}

PerplexityResult perplexity(const Model& m, const TensorI32& windows, Observer* obs,
                            const std::function<void(int64_t, int64_t)>& progress) {
  if (windows.rank() != 2 || windows.dim(1) < 2) bad_input("perplexity needs windows [n, seqlen >= 2], got {}", shape_string(windows.shape));
  const int64_t n_windows = windows.dim(0), seqlen = windows.dim(1);
  check_window_tokens(m.config, windows);
  const auto start = std::chrono::steady_clock::now();

  std::vector<double> nll(static_cast<size_t>(n_windows));
  std::mutex progress_mutex;
  int64_t done = 0;
  // Windows are independent: with no observer (or a concurrent one) each thread takes whole
  // windows with single-threaded kernels, which beats splitting every GEMM on small models.
  const bool window_parallel = obs == nullptr || obs->concurrent();
  ParallelFailure failure;
#pragma omp parallel if (window_parallel)
  {
    ForwardBuffers buf;
    Tensor logits;
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < n_windows; ++w)
      failure.run([&] {
        const int32_t* tokens = windows.ptr() + w * seqlen;
        forward(m, tokens, seqlen, logits, buf, obs);
        nll[static_cast<size_t>(w)] = window_nll(logits, tokens, seqlen);
        if (progress) {
          std::lock_guard<std::mutex> lock(progress_mutex);
          progress(++done, n_windows);
        }
      });
  }
  failure.rethrow_if_any([&] {
    return fmt::format("computing the perplexity of {} windows of {} tokens (logits [{}, {}] per window)", n_windows,
                       seqlen, seqlen, m.config.vocab_size);
  });

  PerplexityResult r;
  r.windows = n_windows;
  r.predicted_tokens = n_windows * (seqlen - 1);
  double total = 0.0;
  for (double v : nll) total += v;  // in window order: the same result for any thread count
  for (int64_t w = 0; w < n_windows && !std::isfinite(total); ++w)
    if (!std::isfinite(nll[static_cast<size_t>(w)]))
      runtime_failure("perplexity: window {} of {} gives a non-finite loss ({}): the model's outputs overflow or hold "
                      "NaN, so there is no perplexity to report", w, n_windows, nll[static_cast<size_t>(w)]);
  r.mean_nll = total / static_cast<double>(r.predicted_tokens);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  check_perplexity_finite(r);
  return r;
}

void check_perplexity_finite(const PerplexityResult& r) {
  if (!std::isfinite(r.ppl))
    runtime_failure("perplexity: the mean loss over {} windows is {}, which gives a perplexity of {}: the model's "
                    "outputs overflow or hold NaN, so there is no perplexity to report", r.windows, r.mean_nll, r.ppl);
}

}  // namespace sparsa
