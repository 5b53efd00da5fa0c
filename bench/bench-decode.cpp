// bench-decode: end-to-end greedy decoding of a synthetic LLaMA-shaped model on the GPU
// (sparsa/decode.h, issue #8 item 5): tokens/s of the dense model and at activation sparsities
// s, next to the ideal 1/(1 - s) and the bytes-based ideal (weight bytes the step must read at
// the measured inactive fractions ÷ the read bandwidth).
//
// The model is generated on the device with the synth preset's shapes and scales (linears and
// embeddings N(0, 0.02²), norms 1). Thresholds are calibrated the way `sparsa acts` defines them
// (per block and observation point, t = sorted(|x|)[floor(s n)]) on the model's own activations
// over --calib-steps decode steps from BOS (default: the --tokens positions the rows decode), dense
// and then --refine times decoded at the previous thresholds (calibrate_decode_thresholds). Each row captures the step into a CUDA graph and
// times --tokens replays from position 0 (greedy from BOS) with CUDA events: the median step is
// the ms/token. The inactive fractions are measured on a second run of the same row.
// Rows: cuBLAS dense GEMV for every linear; the sparse kernel with every threshold -1 (dense);
// the sparse kernel at each s. Speed-ups are against the kernel's dense row.
//
// usage: bench-decode [--preset 7b] [--precision bf16|fp16|fp32] [--tokens N] [--calib-steps N]
//                     [--sparsities 0.25,0.4,0.5] [--tune-file F] [--retune] [--bandwidth B]
//                     [--seed N] [--no-cublas] [--refine N]
//   --tune-file  GEMV tuning table to read and extend (default sparse-gemv-tune.json, shared with
//                bench-sparse-gemv); untuned (shape, sparsity) keys are tuned first and saved
//   --bandwidth  read bandwidth in bytes/s for the ideal (default: measured on this card in this run,
//                read_bandwidth_cuda over 1 GiB)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "machine.h"
#include "sparsa/cuda.h"
#include "sparsa/decode.h"
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/synth.h"

namespace sparsa {
namespace {

struct Args {
  std::string preset = "7b";
  GpuPrecision precision = GpuPrecision::kBf16;
  int64_t tokens = 256;
  int64_t calib_steps = 0;  // 0: --tokens
  int refine = 1;
  std::vector<double> sparsities = {0.25, 0.4, 0.5};
  std::string tune_file = "sparse-gemv-tune.json";
  bool retune = false;
  double bandwidth = 0;  // 0: measured
  uint64_t seed = 1;
  bool cublas = true;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Tunes every (matrix, sparsity) key the run uses that the table lacks (or all with --retune).
void tune(const Args& a, const std::vector<DecodeMatrix>& mats, GemvTuneTable& table) {
  const auto t0 = std::chrono::steady_clock::now();
  int tuned = 0;
  for (const DecodeMatrix& m : mats) {
    std::vector<double> bins = {0.0};
    if (m.has_input_point) bins.insert(bins.end(), a.sparsities.begin(), a.sparsities.end());
    for (double s : bins) {
      const GemvKey key{m.shape, gemv_sparsity_bin(static_cast<float>(s))};
      if (!a.retune && table.find(key)) continue;
      const GemvConfig c = tune_sparse_gemv(m.shape, static_cast<float>(s), table);
      std::printf("  tuned %-28s vecs %d unroll %d warps %d split %2d\n", key.str().c_str(), c.vecs, c.unroll,
                  c.warps, c.split);
      ++tuned;
    }
  }
  if (tuned) table.save(a.tune_file);
  std::printf("GEMV tuning: %d keys tuned in %.1f s (table %s, %zu entries)\n", tuned, seconds_since(t0),
              a.tune_file.c_str(), table.size());
}

struct Row {
  std::string name;
  double sparsity = 0;  // target; 0 for dense rows
  double ms = 0;        // median ms per token
  double mean_ms = 0;
  std::vector<std::array<double, kNumObsPoints>> inactive;  // [layer][point]; empty for dense rows
};

Row measure(GpuDecoder& d, const Args& a, const std::string& name, double sparsity, bool fractions) {
  const std::vector<int32_t> prompt = {d.config().bos_token_id};
  d.reset(prompt);
  for (int i = 0; i < 8; ++i) d.step();  // captures the graph; warms clocks and caches
  d.reset(prompt);
  const std::vector<double> ms = d.timed_steps(a.tokens);
  Row r{name, sparsity, median(ms), 0, {}};
  for (double v : ms) r.mean_ms += v / static_cast<double>(ms.size());
  if (fractions) r.inactive = decode_inactive_fractions(d, prompt, a.tokens);
  return r;
}

// Weight bytes one step must read: every block matrix at (1 - its layer's inactive fraction at its
// input), the lm_head whole. Dense rows read everything.
double needed_bytes(const std::vector<DecodeMatrix>& mats, const Row& r) {
  double bytes = 0;
  for (const DecodeMatrix& m : mats) {
    if (!m.has_input_point || r.inactive.empty()) {
      bytes += static_cast<double>(m.bytes() * m.count);
      continue;
    }
    for (const auto& layer : r.inactive)
      bytes += static_cast<double>(m.bytes()) * (1.0 - layer[static_cast<size_t>(m.input)]);
  }
  return bytes;
}

double mean_inactive(const Row& r, ObsPoint p) {
  double sum = 0;
  for (const auto& layer : r.inactive) sum += layer[static_cast<size_t>(p)];
  return r.inactive.empty() ? 0.0 : sum / static_cast<double>(r.inactive.size());
}

// The lm_head alone (dense: it has no observation point, every row is read): the sparse kernel
// at t = -1 and cuBLAS, each against the matrix's bytes at the measured bandwidth. Weight copies
// rotated past the L2 (time_sparse_vs_dense_gemv).
void print_lm_head(const DecodeMatrix& head, double bandwidth) {
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(0.1f, 1.0f);
  std::vector<float> x(static_cast<size_t>(4 * head.shape.in));
  for (float& v : x) v = g() % 2 ? u(g) : -u(g);
  const GemvSpeed s = time_sparse_vs_dense_gemv(head.shape, x, -1.0f, 0.0f, 30);
  const double bound_us = static_cast<double>(head.bytes()) / bandwidth * 1e6;
  std::printf("\nlm_head alone (%lld x %lld, %.0f MB; bytes bound %.1f us): sparse kernel at t = -1 %.1f us (%.0f %% "
              "of the bound), cuBLAS %.1f us (%.0f %%)\n",
              static_cast<long long>(head.shape.out), static_cast<long long>(head.shape.in),
              static_cast<double>(head.bytes()) / 1e6, bound_us, s.sparse_us, 100.0 * bound_us / s.sparse_us,
              s.dense_us, 100.0 * bound_us / s.dense_us);
}

void run(const Args& a) {
  const auto t_start = std::chrono::steady_clock::now();
  const ModelConfig c = synth_config(a.preset);
  const auto mats = decode_matrices(c, a.precision);
  double total_bytes = 0;
  for (const DecodeMatrix& m : mats) total_bytes += static_cast<double>(m.bytes() * m.count);
  std::printf("bench-decode: synthetic LLaMA-%s (%lld layers, d %lld, d_ff %lld, heads %lld/%lld, vocab %lld), %s "
              "weights, %.2f GB read per dense step\n",
              a.preset.c_str(), static_cast<long long>(c.num_layers), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.intermediate_size), static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.vocab_size),
              std::string(gpu_precision_name(a.precision)).c_str(), total_bytes / 1e9);
  const double bandwidth = a.bandwidth > 0 ? a.bandwidth : read_bandwidth_cuda();
  std::printf("GPU: %s, host %s; read bandwidth %.0f GB/s (%s)\n", cuda_device_name(0).c_str(),
              bench::cpu_model().c_str(), bandwidth / 1e9,
              a.bandwidth > 0 ? "--bandwidth" : "measured: read_bandwidth_cuda, 1 GiB buffer");
  const int64_t calib_steps = a.calib_steps > 0 ? a.calib_steps : a.tokens;

  DecodeOptions opt;
  opt.precision = a.precision;
  opt.max_seq = std::min<int64_t>(c.max_position, std::max(calib_steps, a.tokens) + 16);
  opt.tune = GemvTuneTable::load(a.tune_file);
  tune(a, mats, opt.tune);

  auto t0 = std::chrono::steady_clock::now();
  GpuDecoder d = GpuDecoder::synthetic(c, a.seed, 0.02f, opt);
  std::printf("model generated on the device in %.1f s; KV cache %lld positions\n", seconds_since(t0),
              static_cast<long long>(opt.max_seq));

  t0 = std::chrono::steady_clock::now();
  const auto thresholds = calibrate_decode_thresholds(d, {c.bos_token_id}, calib_steps, a.sparsities, a.refine);
  std::printf("thresholds calibrated on %lld decode steps (dense, then %d refinement pass(es)) in %.1f s (block 0: "
              "attn_in %.4f, down_in %.4f at s=%.2f)\n\n",
              static_cast<long long>(calib_steps), a.refine, seconds_since(t0), thresholds.back().t[0][0],
              thresholds.back().t[0][3], a.sparsities.back());

  std::vector<Row> rows;
  if (a.cublas) {
    d.set_linears(DecodeLinears::kCublas);
    rows.push_back(measure(d, a, "cuBLAS dense GEMV", 0, false));
    d.set_linears(DecodeLinears::kSparseGemv);
  }
  d.set_thresholds(dense_thresholds(c.num_layers));
  rows.push_back(measure(d, a, "sparse kernel, t = -1", 0, false));
  const double dense_ms = rows.back().ms;
  for (size_t i = 0; i < a.sparsities.size(); ++i) {
    d.set_thresholds(thresholds[i]);
    char name[64];
    std::snprintf(name, sizeof name, "sparse kernel, s = %.2f", a.sparsities[i]);
    rows.push_back(measure(d, a, name, a.sparsities[i], true));
  }

  std::printf("%lld tokens from position 0 (greedy from BOS), median of per-token CUDA-event times; ideal = weight "
              "bytes needed / %.2f TB/s\n\n",
              static_cast<long long>(a.tokens), bandwidth / 1e12);
  std::printf("| row | ms/token | tokens/s | speed-up | 1/(1-s) | ideal ms | ideal speed-up | of ideal | inactive "
              "attn_in | o_in | mlp_in | down_in |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  const double dense_ideal_ms = total_bytes / bandwidth * 1e3;
  for (const Row& r : rows) {
    const double ideal_ms = needed_bytes(mats, r) / bandwidth * 1e3;
    std::printf("| %s | %.3f | %.1f | %.2fx | %.2fx | %.3f | %.2fx | %.0f %% | %.3f | %.3f | %.3f | %.3f |\n",
                r.name.c_str(), r.ms, 1e3 / r.ms, dense_ms / r.ms, 1.0 / (1.0 - r.sparsity), ideal_ms,
                dense_ideal_ms / ideal_ms, 100.0 * ideal_ms / r.ms, mean_inactive(r, ObsPoint::kAttnIn),
                mean_inactive(r, ObsPoint::kOIn), mean_inactive(r, ObsPoint::kMlpIn),
                mean_inactive(r, ObsPoint::kDownIn));
  }
  if (mats.back().shape.weight_type != DType::F32) print_lm_head(mats.back(), bandwidth);  // cuBLAS side: half types
  std::printf("\nmean ms/token (all %lld tokens):", static_cast<long long>(a.tokens));
  for (const Row& r : rows) std::printf(" %s %.3f;", r.name.c_str(), r.mean_ms);
  std::printf("\ntotal run time %.1f s\n", seconds_since(t_start));
}

std::vector<double> parse_list(const std::string& v) {
  std::vector<double> out;
  for (size_t p = 0; p != std::string::npos;) {
    const size_t q = v.find(',', p);
    out.push_back(std::stod(v.substr(p, q == std::string::npos ? q : q - p)));
    p = q == std::string::npos ? q : q + 1;
  }
  return out;
}

}  // namespace
}  // namespace sparsa

int main(int argc, char** argv) {
  using namespace sparsa;
  Args a;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string f = argv[i];
      auto value = [&] {
        if (i + 1 >= argc) bad_input("{} needs a value", f);
        return std::string(argv[++i]);
      };
      if (f == "--preset") a.preset = value();
      else if (f == "--precision") a.precision = parse_gpu_precision(value());
      else if (f == "--tokens") a.tokens = std::stoll(value());
      else if (f == "--calib-steps") a.calib_steps = std::stoll(value());
      else if (f == "--refine") a.refine = std::stoi(value());
      else if (f == "--sparsities") a.sparsities = parse_list(value());
      else if (f == "--tune-file") a.tune_file = value();
      else if (f == "--retune") a.retune = true;
      else if (f == "--bandwidth") a.bandwidth = std::stod(value());
      else if (f == "--seed") a.seed = std::stoull(value());
      else if (f == "--no-cublas") a.cublas = false;
      else bad_input("unknown flag {} (see the comment at the top of bench/bench-decode.cpp)", f);
    }
    if (a.tokens < 1 || a.calib_steps < 0 || a.refine < 0 || a.sparsities.empty() || a.bandwidth < 0)
      bad_input("--tokens must be >= 1, --calib-steps, --refine and --bandwidth >= 0, --sparsities non-empty");
    for (double s : a.sparsities)
      if (s <= 0 || s >= 1) bad_input("sparsity {} is outside (0, 1)", s);
    if (cuda_device_count() == 0) {
      std::fprintf(stderr, "bench-decode: no CUDA device\n");
      return 1;
    }
    run(a);
  } catch (const Error& e) {
    std::fprintf(stderr, "bench-decode: %s\n", e.what());
    return e.kind() == ErrorKind::kBadInput ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-decode: %s\n", e.what());
    return 2;
  }
  return 0;
}
