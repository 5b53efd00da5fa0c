// bench-forward: CPU forward-pass throughput of the demo model at seqlen 512 (the `sparsa eval`
// workload) next to this machine's own OpenBLAS sgemm rate, and the PyTorch baseline.
//
// usage: bench-forward [--model DIR] [--windows N] [--threads N] [--csv FILE]
#include <cblas.h>
#include <omp.h>
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "machine.h"
#include "sparsa/model.h"

namespace {

using clock_type = std::chrono::steady_clock;

// FLOPs of one forward pass over a window of n tokens (multiply-add = 2).
double forward_flops(const sparsa::ModelConfig& c, int64_t n) {
  const double d = static_cast<double>(c.hidden_size), f = static_cast<double>(c.intermediate_size);
  const double linear_params = d * c.q_dim() + 2 * d * c.kv_dim() + c.q_dim() * d + 3 * d * f;
  const double attn = 2.0 * 2.0 * c.head_dim * c.num_heads * (n * (n + 1) / 2.0);  // QK^T and PV, causal
  return c.num_layers * (2.0 * n * linear_params + attn) + 2.0 * n * d * c.vocab_size;
}

// Median GFLOP/s of C[m,n] = A[m,k] B[k,n] over `reps` runs, inputs rotated over several
// copies so that caches do not hold them between runs.
double sgemm_gflops(int m, int n, int k, int reps) {
  constexpr int kCopies = 4;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<std::vector<float>> a(kCopies, std::vector<float>(size_t(m) * k)), b(kCopies, std::vector<float>(size_t(k) * n));
  for (auto& v : a) for (auto& x : v) x = u(rng);
  for (auto& v : b) for (auto& x : v) x = u(rng);
  std::vector<float> c(size_t(m) * n);
  std::vector<double> t;
  for (int r = 0; r < reps + 1; ++r) {
    const auto s = clock_type::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a[r % kCopies].data(), k,
                b[r % kCopies].data(), n, 0.0f, c.data(), n);
    if (r > 0) t.push_back(std::chrono::duration<double>(clock_type::now() - s).count());  // first run warms up
  }
  std::sort(t.begin(), t.end());
  return 2.0 * m * n * k / t[t.size() / 2] / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir = std::string(SPARSA_SOURCE_DIR) + "/models/tiny-llama-15m", csv;
  int windows = 32, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); } return std::string(argv[++i]); };
    if (a == "--model") model_dir = next();
    else if (a == "--windows") windows = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--csv") csv = next();
    else { std::fprintf(stderr, "usage: bench-forward [--model DIR] [--windows N] [--threads N] [--csv FILE]\n"); return 2; }
  }
  if (threads > 0) omp_set_num_threads(threads);
  const int n_threads = omp_get_max_threads();

  const sparsa::Model m = sparsa::load_model(model_dir);
  constexpr int64_t kSeq = 512;
  sparsa::TensorI32 w({windows, kSeq});
  std::mt19937 rng(1);
  for (auto& t : w.data) t = static_cast<int32_t>(rng() % m.config.vocab_size);
  sparsa::perplexity(m, sparsa::TensorI32(w));  // warm-up (page in weights, spin up threads)
  std::vector<double> secs;
  for (int r = 0; r < 3; ++r) secs.push_back(sparsa::perplexity(m, w).seconds);
  std::sort(secs.begin(), secs.end());
  const double s = secs[1];
  const double tok_s = windows * kSeq / s;
  const double gflops = forward_flops(m.config, kSeq) * windows / s / 1e9;

  const double g_big = sgemm_gflops(2048, 2048, 2048, 5);
  const double g_model = sgemm_gflops(512, 1024, 384, 20);

  utsname u{};
  uname(&u);
  constexpr double kTorchTokS = 754.0;  // PyTorch 1.13, 2 threads, fp32, 246 x 512 tokens in 167 s
  std::printf("machine: %s, %d threads, %s %s\n", sparsa::bench::cpu_model().c_str(), n_threads, u.sysname, u.release);
  std::printf("model: %s (%lld layers, d %lld), %d windows x %lld tokens, median of 3\n\n", model_dir.c_str(),
              static_cast<long long>(m.config.num_layers), static_cast<long long>(m.config.hidden_size), windows,
              static_cast<long long>(kSeq));
  std::printf("| what | tokens/s | GFLOP/s | vs PyTorch baseline |\n|---|---:|---:|---:|\n");
  std::printf("| sparsa forward + NLL (seqlen 512) | %.0f | %.1f | %.2fx |\n", tok_s, gflops, tok_s / kTorchTokS);
  std::printf("| PyTorch 1.13 baseline (2-core CI box, from the issue) | %.0f | | 1.00x |\n", kTorchTokS);
  std::printf("| OpenBLAS sgemm 2048^3 | | %.1f | |\n", g_big);
  std::printf("| OpenBLAS sgemm 512x1024x384 (an MLP GEMM) | | %.1f | |\n", g_model);
  std::printf("\nforward reaches %.0f%% of the sgemm 2048^3 rate\n", 100.0 * gflops / g_big);
  if (!csv.empty()) {
    std::ofstream out(csv);
    out << "what,tokens_per_s,gflops\nforward," << tok_s << "," << gflops << "\nsgemm_2048," << "," << g_big
        << "\nsgemm_512x1024x384,," << g_model << "\n";
  }
  return 0;
}
