// bench-coactivation-layout: does a co-activation-aware layout make block skipping pay (issue #8
// item 6)? With REAL activation patterns: the down-projection inputs (down_in, intermediate_size
// features) of one block of the demo model over many tokens.
//
//   1. capture down_in of --layer over --windows windows of the calibration tokens; the first half
//      of the tokens is the calibration set, the second half the held-out set;
//   2. per target sparsity s: t = the |x| quantile of the calibration tokens (TEAL's per-point
//      threshold); k-means (--k clusters) on the calibration bitset (features × tokens, |x| > t);
//      the cluster order (features sorted by cluster) is the co-activation layout;
//   3. on the held-out tokens: the fraction of rows a per-row kernel reads (1 − the actual
//      sparsity) and of blocks of 2 … 32 features a block-skipping kernel reads, in the natural
//      order, the cluster order, the frequency order (features by calibration firing rate, so
//      rarely active ones share blocks) and a random order (CPU, always);
//   4. with a CUDA device (and without --no-gpu): the per-row kernel (SparseGemvCuda) against the
//      block kernel (SparseGemvBlockCuda, blocks of 8/16/32) on a GPU-sized Wᵀ [in, --out] with
//      in = features × --tiles: the features are tiled, tile τ of launch i taking held-out token
//      (i + τ · tokens / tiles) mod tokens, in natural or cluster order. Timing as
//      bench-sparse-gemv (CUDA graph of 16 launches over 16 weight buffers and 16 x, median of
//      --reps replays ÷ 16); each kernel's config is the fastest candidate over --tune-reps
//      replays. Batch 1 (decode).
//
// usage: bench-coactivation-layout [--model DIR] [--tokens FILE] [--key NAME] [--windows N]
//          [--seqlen N] [--layer L] [--sparsities 0.4,0.5,0.7,0.9] [--k N] [--tiles N] [--out N]
//          [--reps N] [--tune-reps N] [--no-gpu] [--csv FILE]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "sparsa/activations.h"
#include "sparsa/coactivation.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/safetensors.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/sparse_gemv_blocks.h"

#ifdef SPARSA_WITH_CUDA
#include "gpu_graph_timer.h"
#endif

namespace {

using namespace sparsa;

constexpr int kBlockSizes[] = {2, 4, 8, 16, 32};
constexpr int kGpuBlockSizes[] = {8, 16, 32};
constexpr const char* kOrderNames[] = {"natural", "cluster", "frequency", "random"};
constexpr int kOrders = 4;

struct Args {
  std::string model = std::string(SPARSA_SOURCE_DIR) + "/models/tiny-llama-15m";
  std::string tokens = std::string(SPARSA_SOURCE_DIR) + "/data/calib-tokens.safetensors";
  std::string key = "calib", csv;
  int64_t windows = 16, seqlen = 512, layer = 3, tiles = 4, out = 4096;
  std::vector<double> sparsities = {0.4, 0.5, 0.7, 0.9};
  int k = 32, reps = 100, tune_reps = 10;
  bool gpu = true;
};

// down_in of one layer for every token: [tokens, dim], window w at rows w · seqlen.
class DownInCollector : public WindowObserver {
 public:
  DownInCollector(int64_t layer, int64_t tokens, int64_t seqlen) : layer_(layer), tokens_(tokens), seqlen_(seqlen) {}
  void observe(int64_t window, int64_t layer, ObsPoint point, const float* x, int64_t n_tokens, int64_t dim) override {
    if (layer != layer_ || point != ObsPoint::kDownIn) return;
    SPARSA_ASSERT(dim_ == 0 || dim_ == dim);
    dim_ = dim;
    std::call_once(alloc_, [&] { x_.assign(static_cast<size_t>(tokens_ * dim), 0.0f); });
    std::copy(x, x + n_tokens * dim, x_.begin() + window * seqlen_ * dim);
  }
  std::vector<float> take() { return std::move(x_); }
  int64_t dim() const { return dim_; }

 private:
  int64_t layer_, tokens_, seqlen_;
  std::atomic<int64_t> dim_{0};
  std::once_flag alloc_;
  std::vector<float> x_;
};

// The bitset [features, tokens] of |x| > t for x [tokens, features].
BitMatrix active_bits(const std::vector<float>& x, int64_t tokens, int64_t features, float t) {
  BitMatrix m(features, tokens);
  for (int64_t i = 0; i < tokens; ++i)
    for (int64_t f = 0; f < features; ++f)
      if (std::abs(x[static_cast<size_t>(i * features + f)]) > t) m.set(f, i);
  return m;
}

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> v;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) v.push_back(std::stod(item));
  return v;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) bad_input("{} needs a value", arg);
      return std::string(argv[++i]);
    };
    if (arg == "--model") a.model = next();
    else if (arg == "--tokens") a.tokens = next();
    else if (arg == "--key") a.key = next();
    else if (arg == "--windows") a.windows = std::stoll(next());
    else if (arg == "--seqlen") a.seqlen = std::stoll(next());
    else if (arg == "--layer") a.layer = std::stoll(next());
    else if (arg == "--sparsities") a.sparsities = parse_list(next());
    else if (arg == "--k") a.k = std::stoi(next());
    else if (arg == "--tiles") a.tiles = std::stoll(next());
    else if (arg == "--out") a.out = std::stoll(next());
    else if (arg == "--reps") a.reps = std::stoi(next());
    else if (arg == "--tune-reps") a.tune_reps = std::stoi(next());
    else if (arg == "--no-gpu") a.gpu = false;
    else if (arg == "--csv") a.csv = next();
    else bad_input("unknown argument {} (see the usage at the top of bench/bench-coactivation-layout.cpp)", arg);
  }
  if (a.windows < 2 || a.seqlen < 1 || a.tiles < 1 || a.out < 1 || a.k < 1 || a.reps < 100 || a.tune_reps < 3)
    bad_input("--windows >= 2, --seqlen, --tiles, --out, --k >= 1, --reps >= 100, --tune-reps >= 3");
  return a;
}

// The held-out x of one sparsity, laid out for the GPU: launch i, tile τ, feature p takes held-out
// token (i + τ · tokens / tiles) mod tokens, feature order[p]. [launches][features × tiles]
std::vector<std::vector<float>> tiled_x(const std::vector<float>& test, int64_t tokens, int64_t features,
                                        const std::vector<int64_t>& order, int64_t tiles, int launches) {
  std::vector<std::vector<float>> xs(static_cast<size_t>(launches));
  for (int i = 0; i < launches; ++i) {
    auto& x = xs[static_cast<size_t>(i)];
    x.resize(static_cast<size_t>(features * tiles));
    for (int64_t tau = 0; tau < tiles; ++tau) {
      const int64_t token = (i + tau * (tokens / tiles)) % tokens;
      for (int64_t p = 0; p < features; ++p)
        x[static_cast<size_t>(tau * features + p)] = test[static_cast<size_t>(token * features + order[p])];
    }
  }
  return xs;
}

#ifdef SPARSA_WITH_CUDA
constexpr int kLaunches = 16;

struct GpuRow {
  double sparsity;
  std::string order;
  int block_rows;  // 1: the per-row kernel
  double read;     // mean fraction of rows / blocks read
  double us;
  GemvConfig config;
};

std::vector<GpuRow> run_gpu(const Args& a, const std::vector<float>& test, int64_t tokens, int64_t features,
                            const std::vector<std::pair<double, float>>& thresholds,
                            const std::vector<std::vector<int64_t>>& cluster_orders) {
  const int64_t in = features * a.tiles, out = a.out;
  const GemvShape shape{DType::BF16, 1, in, out};
  cudaStream_t stream;
  bench::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  std::vector<DeviceBuffer<uint16_t>> w;
  std::vector<DeviceBuffer<float>> x, y;
  for (int i = 0; i < kLaunches; ++i) {
    w.emplace_back(static_cast<size_t>(in * out));
    fill_uniform_cuda(w.back().data(), DType::BF16, in * out, static_cast<uint32_t>(i + 1), stream);
    x.emplace_back(static_cast<size_t>(in));
    y.emplace_back(static_cast<size_t>(out));
  }
  bench::check(cudaStreamSynchronize(stream), "fill");
  std::vector<GpuRow> rows;
  const auto natural = natural_order(features);
  for (size_t si = 0; si < thresholds.size(); ++si) {
    const double s = thresholds[si].first;
    const float t = thresholds[si].second;
    for (int o = 0; o < 2; ++o) {
      const auto xs = tiled_x(test, tokens, features, o == 0 ? natural : cluster_orders[si], a.tiles, kLaunches);
      for (int i = 0; i < kLaunches; ++i) x[static_cast<size_t>(i)].upload(xs[static_cast<size_t>(i)]);
      auto mean_read = [&](int block_rows) {
        double sum = 0.0;
        for (const auto& v : xs) sum += gemv_blocks_read(v.data(), 1, in, t, block_rows);
        return sum / kLaunches;
      };
      const auto enqueue = [&](const auto& plan, int i) {
        plan.run(w[static_cast<size_t>(i)].data(), x[static_cast<size_t>(i)].data(), y[static_cast<size_t>(i)].data(),
                 t, stream);
      };
      const auto [row_us, row_config] =
          bench::fastest_config(stream, kLaunches, gemv_candidates(shape), a.tune_reps, a.reps,
                                [&](const GemvConfig& c) { return SparseGemvCuda(shape, c); }, enqueue);
      rows.push_back({s, kOrderNames[o], 1, mean_read(1), row_us, row_config});
      for (int b : kGpuBlockSizes) {
        const auto [us, config] =
            bench::fastest_config(stream, kLaunches, gemv_block_candidates(shape, b), a.tune_reps, a.reps,
                                  [&](const GemvConfig& c) { return SparseGemvBlockCuda(shape, b, c); }, enqueue);
        rows.push_back({s, kOrderNames[o], b, mean_read(b), us, config});
      }
      std::fprintf(stderr, "gpu: s %.2f %s done\n", s, kOrderNames[o]);
    }
  }
  cudaStreamDestroy(stream);
  return rows;
}
#endif

int run(const Args& a) {
  const auto start = std::chrono::steady_clock::now();
  const Model m = load_model(a.model);
  if (a.layer < 0 || a.layer >= m.config.num_layers)
    bad_input("--layer {} is outside the model's layers 0..{}", a.layer, m.config.num_layers - 1);
  const TensorI32 all = TensorStore::open(a.tokens)->load_i32(a.key);
  if (all.rank() != 2 || all.dim(0) < a.windows || all.dim(1) < a.seqlen)
    bad_input("{}: '{}' has shape {}, need at least [{}, {}]", a.tokens, a.key, shape_string(all.shape), a.windows,
              a.seqlen);
  TensorI32 windows({a.windows, a.seqlen});
  for (int64_t w = 0; w < a.windows; ++w)
    std::copy_n(all.data.begin() + w * all.dim(1), a.seqlen, windows.data.begin() + w * a.seqlen);

  const int64_t tokens = a.windows * a.seqlen;
  DownInCollector collector(a.layer, tokens, a.seqlen);
  run_windows(m, windows, a.layer + 1, collector);
  const int64_t features = collector.dim();
  const std::vector<float> x = collector.take();  // [tokens, features]
  const int64_t calib_tokens = a.windows / 2 * a.seqlen, test_tokens = tokens - calib_tokens;
  const std::vector<float> calib(x.begin(), x.begin() + calib_tokens * features);
  const std::vector<float> test(x.begin() + calib_tokens * features, x.end());
  std::printf("%s layer %lld down_in: %lld features; %lld calibration tokens (k-means, thresholds), %lld held-out "
              "tokens (measured); k-means k = %d\n",
              a.model.c_str(), static_cast<long long>(a.layer), static_cast<long long>(features),
              static_cast<long long>(calib_tokens), static_cast<long long>(test_tokens), a.k);

  std::ofstream csv;
  if (!a.csv.empty()) {
    csv.open(a.csv);
    csv << "kind,sparsity,heldout_sparsity,order,block_rows,read_fraction,us,config\n";
  }
  std::printf("\nFraction of Wᵀ read on the held-out tokens (rows = per-row kernel; Bk = blocks of Bk features read "
              "whole if any is active), natural / cluster / frequency / random order:\n\n| s | held-out s | rows |");
  for (int b : kBlockSizes) std::printf(" Bk=%d |", b);
  std::printf("\n|---:|---:|---:|");
  for (size_t i = 0; i < std::size(kBlockSizes); ++i) std::printf("---|");
  std::printf("\n");

  std::mt19937_64 rng(1);
  std::vector<int64_t> random_order = natural_order(features);
  std::shuffle(random_order.begin(), random_order.end(), rng);
  std::vector<std::pair<double, float>> thresholds;
  std::vector<std::vector<int64_t>> cluster_orders;
  for (double s : a.sparsities) {
    const float t = sparsity_threshold(calib, static_cast<float>(s));
    const BitMatrix calib_bits = active_bits(calib, calib_tokens, features, t);
    const BitMatrix test_bits = active_bits(test, test_tokens, features, t);
    KMeansOptions options;
    options.k = a.k;
    options.n_init = 2;
    const auto order = cluster_order(kmeans(calib_bits, options).labels);
    int64_t active = 0;
    for (int64_t f = 0; f < features; ++f) active += test_bits.row_count(f);
    const double rows_read = static_cast<double>(active) / static_cast<double>(features * test_tokens);
    std::printf("| %.2f | %.3f | %.3f |", s, 1.0 - rows_read, rows_read);
    if (csv.is_open()) csv << "cpu," << s << ',' << 1.0 - rows_read << ",any,1," << rows_read << ",,\n";
    const auto natural = natural_order(features);
    auto frequency = natural;  // most often active first; ties by index
    std::stable_sort(frequency.begin(), frequency.end(),
                     [&](int64_t a, int64_t b) { return calib_bits.row_count(a) > calib_bits.row_count(b); });
    const std::vector<int64_t>* orders[kOrders] = {&natural, &order, &frequency, &random_order};
    for (int b : kBlockSizes) {
      double read[kOrders];
      for (int o = 0; o < kOrders; ++o) {
        read[o] = 1.0 - block_coherence(test_bits, *orders[o], b);
        if (csv.is_open()) csv << "cpu," << s << ',' << 1.0 - rows_read << ',' << kOrderNames[o] << ',' << b << ','
                               << read[o] << ",,\n";
      }
      std::printf(" %.3f / %.3f / %.3f / %.3f |", read[0], read[1], read[2], read[3]);
    }
    std::printf("\n");
    thresholds.emplace_back(s, t);
    cluster_orders.push_back(order);
  }
  std::fflush(stdout);

#ifdef SPARSA_WITH_CUDA
  if (a.gpu && cuda_device_count() > 0) {
    const auto rows = run_gpu(a, test, test_tokens, features, thresholds, cluster_orders);
    std::printf("\n%s, bf16 Wᵀ [%lld, %lld] (%lld tiles of the %lld features, tile τ of launch i = held-out token "
                "(i + τ·%lld) mod %lld), batch 1, %d replays of %d launches; configs: fastest of the candidates over "
                "%d replays\n\n| s | order | kernel | read | µs | × per-row natural | config v/u/w/split |\n"
                "|---:|---|---|---:|---:|---:|---|\n",
                cuda_device_name(0).c_str(), static_cast<long long>(features * a.tiles), static_cast<long long>(a.out),
                static_cast<long long>(a.tiles), static_cast<long long>(features),
                static_cast<long long>(test_tokens / a.tiles), static_cast<long long>(test_tokens), a.reps, kLaunches,
                a.tune_reps);
    double base_us = 0.0;
    for (const GpuRow& r : rows) {
      if (r.block_rows == 1 && r.order == "natural") base_us = r.us;
      const std::string kernel = r.block_rows == 1 ? "per-row" : "blocks of " + std::to_string(r.block_rows);
      const std::string config = std::to_string(r.config.vecs) + "/" + std::to_string(r.config.unroll) + "/" +
                                 std::to_string(r.config.warps) + "/" + std::to_string(r.config.split);
      std::printf("| %.2f | %s | %s | %.3f | %.2f | %.2f× | %s |\n", r.sparsity, r.order.c_str(), kernel.c_str(), r.read,
                  r.us, base_us / r.us, config.c_str());
      if (csv.is_open())
        csv << "gpu," << r.sparsity << ",," << r.order << ',' << r.block_rows << ',' << r.read << ',' << r.us << ','
            << config << '\n';
    }
  } else {
    std::printf("\n(no GPU measurement: %s)\n", a.gpu ? "no CUDA device" : "--no-gpu");
  }
#else
  std::printf("\n(no GPU measurement: built without CUDA)\n");
#endif
  std::fprintf(stderr, "bench-coactivation-layout: %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef SPARSA_WITH_CUDA
  sparsa::bench::g_program = "bench-coactivation-layout";
#endif
  try {
    return run(parse_args(argc, argv));
  } catch (const sparsa::Error& e) {
    std::fprintf(stderr, "bench-coactivation-layout: %s\n", e.what());
    return e.kind() == sparsa::ErrorKind::kBadInput ? 2 : 1;
  }
}
