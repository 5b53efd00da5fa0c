// bench-gpu-prune: GPU pruning against the reference PyTorch numbers of issue #4 (one H200,
// fp16 weights, fp32 Hessian, TF32 off, 128 x 2048 calibration tokens, random data).
//
//   per matrix   Hessian accumulation over 128 x 2048 tokens (fp32 SYRK, and the bf16 tensor-core
//                GEMM of the half mode), SparseGPT fasterprune (Cholesky chain + fused column
//                blocks + lazy GEMMs), Wanda statistics and selection; CUDA events, median of --reps.
//   end to end   prune_model with Device::kCuda on a random-weight LLaMA-2-7B-shaped model (sparsa synth's
//                weights, in memory) with 128 x 2048 random calibration tokens: wall time, stage
//                times, peak device memory held by sparsa, calibration forward tokens/s next to the
//                cuBLAS bf16 GEMM rate measured in the same run.
//
// usage: bench-gpu-prune [--reps N] [--preset 7b|13b|70b] [--layers N (end to end; default: the preset's)]
//                        [--skip-matrix] [--skip-e2e] [--gpus N (end to end over N GPUs through NCCL)]
//                        [--precision bf16|fp16|fp32] [--methods wanda,sparsegpt]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "machine.h"
#include "sparsa/cuda.h"
#include "sparsa/gpu.h"
#include "sparsa/prune.h"
#include "sparsa/synth.h"

#ifdef SPARSA_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace {

using namespace sparsa;

struct Args {
  int reps = 5;
  int64_t layers = 0;  // 0: the preset's
  bool matrix = true, e2e = true;
  GpuPrecision precision = GpuPrecision::kBf16;
  std::vector<std::string> methods = {"wanda", "sparsegpt"};
  std::string preset = "7b";
  int gpus = 1;
};

// Median seconds of `reps` runs of f, each preceded (untimed) by prep.
template <typename Prep, typename F>
double median_seconds(int reps, Prep prep, F f) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    prep();
    cudaDeviceSynchronize();
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms / 1e3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<float> normal(size_t n, uint64_t seed, float std) {
  std::vector<float> v(n);
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, std);
  for (float& x : v) x = d(g);
  return v;
}

void matrix_table(const Args& a) {
  struct Shape { const char* name; int64_t rows, cols; double ref_h, ref_fp, ref_ws, ref_sel; };
  const Shape shapes[] = {{"q_proj", 4096, 4096, 0.184, 0.914, 0.011, 0.001},
                          {"up_proj", 11008, 4096, 0.184, 0.869, 0.012, 0.003},
                          {"down_proj", 4096, 11008, 1.294, 2.346, 0.014, 0.005}};
  const int64_t samples = 128, seqlen = 2048, chunk = 8192;  // tokens per accumulation call
  std::printf("## Per matrix (128 x 2048 calibration tokens; reference = PyTorch SparseGPT/Wanda classes on one H200)\n\n");
  std::printf("| matrix | Hessian fp32 SYRK s | Hessian bf16 GEMM s | ref s | speed-up (bf16) | fasterprune u50 s | 2:4 s | ref s | speed-up (u50) | Wanda stats s | ref s | Wanda select s | ref s |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Shape& s : shapes) {
    const int64_t cols = s.cols, rows = s.rows;
    // Two chunk buffers of random activations (alternated, each well past the 50 MB L2).
    std::vector<DeviceBuffer<float>> x32;
    std::vector<DeviceBuffer<uint8_t>> xh;
    for (int i = 0; i < 2; ++i) {
      x32.emplace_back(normal(static_cast<size_t>(chunk * cols), 10 + i, 1.0f));
      xh.emplace_back(static_cast<size_t>(chunk * cols) * 2);
      to_half_cuda(x32.back().data(), xh.back().data(), chunk * cols, DType::BF16);
    }
    DeviceBuffer<float> h(static_cast<size_t>(cols * cols));
    const int64_t calls = samples * seqlen / chunk;
    auto zero_h = [&] { cudaMemset(h.data(), 0, h.size() * sizeof(float)); };
    const double t_h32 = median_seconds(a.reps, zero_h, [&] {
      for (int64_t c = 0; c < calls; ++c)
        hessian_accumulate_cuda(h.data(), x32[c % 2].data(), nullptr, GpuPrecision::kFp32, chunk, cols, 1.0f);
    });
    const double t_h16 = median_seconds(a.reps, zero_h, [&] {
      for (int64_t c = 0; c < calls; ++c)
        hessian_accumulate_cuda(h.data(), nullptr, xh[c % 2].data(), GpuPrecision::kBf16, chunk, cols, 1.0f);
    });
    // A real Hessian (2/n XᵀX of the random activations) and random weights, copied fresh per run.
    scale_cuda(h.data(), h.data(), 2.0f / static_cast<float>(samples * seqlen), cols * cols);
    const DeviceBuffer<float> w0(normal(static_cast<size_t>(rows * cols), 3, 0.02f));
    DeviceBuffer<float> w(static_cast<size_t>(rows * cols)), hw(static_cast<size_t>(cols * cols));
    DeviceBuffer<uint8_t> mask(static_cast<size_t>(rows * cols));
    auto fresh = [&] {
      cudaMemcpy(w.data(), w0.data(), w.size() * sizeof(float), cudaMemcpyDeviceToDevice);
      cudaMemcpy(hw.data(), h.data(), h.size() * sizeof(float), cudaMemcpyDeviceToDevice);
    };
    const double t_u50 = median_seconds(a.reps, fresh, [&] {
      sparsegpt_prune_cuda(w.data(), hw.data(), mask.data(), rows, cols, parse_sparsity("0.5"), 128, 0.01);
    });
    const double t_24 = median_seconds(a.reps, fresh, [&] {
      sparsegpt_prune_cuda(w.data(), hw.data(), mask.data(), rows, cols, parse_nm("2:4"), 128, 0.01);
    });
    DeviceBuffer<double> acc(static_cast<size_t>(cols));
    DeviceBuffer<float> partial(static_cast<size_t>(column_sqsum_scratch_floats(chunk, cols))), norm(static_cast<size_t>(cols));
    const double t_ws = median_seconds(a.reps, [&] { cudaMemset(acc.data(), 0, acc.size() * sizeof(double)); }, [&] {
      for (int64_t c = 0; c < calls; ++c)
        column_sqsum_cuda(xh[c % 2].data(), DType::BF16, acc.data(), partial.data(), chunk, cols);
      column_norm_cuda(acc.data(), norm.data(), cols, samples);
    });
    const double t_sel = median_seconds(a.reps, [] {}, [&] {
      wanda_mask_cuda(w0.data(), norm.data(), mask.data(), rows, cols, parse_sparsity("0.5"));
    });
    std::printf("| %s %lld x %lld | %.4f | %.4f | %.3f | %.1fx | %.4f | %.4f | %.3f | %.1fx | %.4f | %.3f | %.5f | %.3f |\n", s.name,
                static_cast<long long>(rows), static_cast<long long>(cols), t_h32, t_h16, s.ref_h, s.ref_h / t_h16, t_u50,
                t_24, s.ref_fp, s.ref_fp / t_u50, t_ws, s.ref_ws, t_sel, s.ref_sel);
    std::fflush(stdout);
  }
  std::printf("\n");
}

// cuBLAS bf16 GEMM rate (fp32 accumulate) on a calibration-forward-like shape, TFLOP/s.
double gemm_tflops() {
  const int m = 11008, n = 8192, k = 4096;
  DeviceBuffer<uint8_t> A(static_cast<size_t>(m) * k * 2), B(static_cast<size_t>(k) * n * 2);
  DeviceBuffer<float> C(static_cast<size_t>(m) * n), R(static_cast<size_t>(m) * k);
  const std::vector<float> r = normal(static_cast<size_t>(m) * k, 5, 1.0f);
  R.upload(r);
  to_half_cuda(R.data(), A.data(), static_cast<int64_t>(m) * k, DType::BF16);
  to_half_cuda(R.data(), B.data(), static_cast<int64_t>(k) * n, DType::BF16);
  cublasHandle_t hnd;
  cublasCreate(&hnd);
  const float one = 1, zero = 0;
  const double t = median_seconds(11, [] {}, [&] {
    for (int i = 0; i < 10; ++i)
      cublasGemmEx(hnd, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, A.data(), CUDA_R_16BF, k, B.data(), CUDA_R_16BF, k, &zero,
                   C.data(), CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }) / 10;
  cublasDestroy(hnd);
  return 2.0 * m * n * k / t / 1e12;
}

void e2e_table(const Args& a) {
  ModelConfig c = synth_config(a.preset);
  if (a.layers > 0) c.num_layers = a.layers;
  const bool anchored = a.preset == "7b";  // the reference numbers are for LLaMA-2-7B shapes
  const auto t0 = std::chrono::steady_clock::now();
  const Model dense = synth_model(c, 1);
  const double synth_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const TensorI32 calib = synth_tokens(128, 2048, c.vocab_size, 1);
  const double tflops = gemm_tflops();
  // FLOPs per token of one block's linears (the calibration forward is dominated by them).
  const double d = static_cast<double>(c.hidden_size), ff = static_cast<double>(c.intermediate_size);
  const double block_flops = 2.0 * (4 * d * d + 3 * d * ff);
  std::printf("## End to end: prune_model (--device cuda) on %d GPU(s), %s shapes (%lld blocks, d %lld, d_ff %lld, synthesised in %.0f s), 128 x 2048 tokens, %s\n\n",
              a.gpus, a.preset.c_str(), static_cast<long long>(c.num_layers), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.intermediate_size), synth_s, std::string(gpu_precision_name(a.precision)).c_str());
  std::printf("cuBLAS bf16 GEMM (11008 x 8192 x 4096) in this run: %.0f TFLOP/s\n\n", tflops);
  std::printf("| method | target | wall s | forward s | stats s | select/update s | peak GiB (sparsa) | forward tokens/s | at the GEMM rate | reference s |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const std::string& name : a.methods) {
    Model m = dense;
    PruneOptions opt;
    opt.method = parse_prune_method(name);
    opt.target = parse_sparsity("0.5");
    DeviceOptions g;
    g.device = Device::kCuda;
    g.precision = a.precision;
    g.devices = a.gpus;
    gpu_reset_peak_allocated();
    const auto w0 = std::chrono::steady_clock::now();
    const PruneResult r = prune_model(m, calib, opt, g);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    // The pruned pass runs every block over all tokens: its rate is the calibration forward's.
    const double tokens = 128.0 * 2048.0 * static_cast<double>(c.num_layers);
    const double ideal = tflops * 1e12 / block_flops;
    const double ref = (opt.method == PruneMethod::kWanda ? 19.0 : 307.0) * static_cast<double>(c.num_layers) / 32.0;
    const std::string vs = anchored ? std::to_string(static_cast<int>(ref + 0.5)) + " (" + std::to_string(ref / wall).substr(0, 4) + "x)" : "n/a";
    std::printf("| %s | u50 | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f | %.0f | %s |\n", name.c_str(), wall, r.timings.forward,
                r.timings.stats, r.timings.select, static_cast<double>(gpu_peak_allocated()) / (1024.0 * 1024 * 1024),
                tokens / r.timings.forward, ideal, vs.c_str());
    std::fflush(stdout);
  }
  std::printf("\nforward tokens/s counts block-tokens (tokens x blocks) of the pruned pass; 'at the GEMM rate' is what the "
              "linears alone would allow at the measured GEMM rate. Reference times scale with the number of blocks.\n");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", f.c_str()); std::exit(2); }
      return std::string(argv[++i]);
    };
    if (f == "--reps") a.reps = std::stoi(value());
    else if (f == "--layers") a.layers = std::stoll(value());
    else if (f == "--preset") a.preset = value();
    else if (f == "--gpus") a.gpus = std::stoi(value());
    else if (f == "--skip-matrix") a.matrix = false;
    else if (f == "--skip-e2e") a.e2e = false;
    else if (f == "--precision") a.precision = parse_gpu_precision(value());
    else if (f == "--methods") {
      a.methods.clear();
      std::string v = value();
      for (size_t p = 0; p != std::string::npos;) {
        const size_t q = v.find(',', p);
        a.methods.push_back(v.substr(p, q == std::string::npos ? q : q - p));
        p = q == std::string::npos ? q : q + 1;
      }
    } else { std::fprintf(stderr, "unknown flag %s\n", f.c_str()); return 2; }
  }
  if (cuda_device_count() == 0) { std::fprintf(stderr, "bench-gpu-prune: no CUDA device\n"); return 1; }
  std::printf("machine: %s, host %s\n\n", cuda_device_name(0).c_str(), bench::cpu_model().c_str());
  if (a.matrix) matrix_table(a);
  if (a.e2e) e2e_table(a);
  return 0;
}

#else

int main() {
  std::fprintf(stderr, "bench-gpu-prune: sparsa was built without CUDA\n");
  return 1;
}

#endif
