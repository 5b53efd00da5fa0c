// bench-sparse-gemv: the activation-sparse GEMV (sparsa/sparse_gemv.h) against cuBLAS dense GEMV,
// the ideal (bytes that must be read ÷ the read bandwidth cuBLAS reaches on the largest shape in
// this run) and the TEAL Triton anchor of issue #8, measured the anchor's way: each variant is a
// CUDA graph of 16 launches over 16 different weight buffers (so launch gaps and L2 reuse are
// out), timed with CUDA events, median over --reps replays, divided by 16.
//
// usage: bench-sparse-gemv [--type bf16|f16] [--batch N] [--reps N] [--tune-file F] [--retune]
//                          [--csv FILE]
//   --type       weight and cuBLAS element type (default bf16)
//   --batch      x rows, 1..8 (default 1); the anchor exists for batch 1 only
//   --reps       graph replays per figure, at least 100 (default 200)
//   --tune-file  tuning table to read and extend (default sparse-gemv-tune.json); untuned
//                (shape, sparsity) keys are tuned first and the table is saved
//   --retune     tune every key again even when the table has it
//   --csv        also write one CSV row per (shape, sparsity)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "sparsa/cuda.h"
#include "sparsa/sparse_gemv.h"

namespace {

constexpr int kBuffers = 16;  // weight buffers per graph, as the anchor
constexpr double kSparsities[] = {0.0, 0.25, 0.4, 0.5, 0.7, 0.9};

struct Shape {
  int64_t out, in;              // W is out × in (the anchor's notation); Wᵀ is [in, out]
  double anchor_dense_us;       // cuBLAS dense GEMV in the anchor, fp16 (0: not measured)
  double anchor_teal_us[6];     // TEAL at kSparsities (0: not measured)
};

// Issue #8's anchor table (one H200, fp16, batch 1).
const Shape kShapes[] = {
    {4096, 4096, 14.5, {12.7, 11.0, 10.1, 9.6, 8.5, 7.7}},
    {14336, 4096, 30.8, {32.7, 26.5, 22.9, 21.7, 19.5, 18.3}},
    {4096, 14336, 32.1, {33.6, 28.5, 24.8, 22.3, 19.7, 18.2}},
    {28672, 8192, 109.3, {115.4, 90.8, 76.3, 71.7, 65.7, 56.7}},
    {8192, 28672, 0.0, {0, 0, 0, 0, 0, 0}},
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench-sparse-gemv: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "bench-sparse-gemv: %s: cuBLAS status %d\n", what, static_cast<int>(s));
    std::exit(1);
  }
}

// Median microseconds of one launch: `enqueue(i)` for i < kBuffers captured into one graph,
// replayed `reps` times after a warm-up, each replay timed with events.
template <typename Enqueue>
double graph_median_us(cudaStream_t stream, int reps, Enqueue enqueue) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  for (int i = 0; i < kBuffers; ++i) enqueue(i);
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int w = 0; w < 3; ++w) check(cudaGraphLaunch(exec, stream), "warm-up");
  std::vector<float> ms(reps);
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(start, stream), "record");
    check(cudaGraphLaunch(exec, stream), "replay");
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    check(cudaEventElapsedTime(&ms[r], start, stop), "elapsed");
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[reps / 2] * 1e3 / kBuffers;
}

// Random 16-bit weights (bf16 or fp16 bit patterns of values in [-1, 1), never 0), from a fast
// xorshift so that half a gigabyte takes well under a second.
std::vector<uint16_t> random_half_bits(size_t n, bool bf16, uint64_t seed) {
  std::vector<uint16_t> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& h : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    const float f = static_cast<float>((s >> 40) | 1) * (2.0f / 16777216.0f) - 1.0f;  // odd: never 0
    h = bf16 ? sparsa::f32_to_bf16(f) : sparsa::f32_to_f16(f);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string type_name = "bf16", tune_file = "sparse-gemv-tune.json", csv;
  int64_t batch = 1;
  int reps = 200;
  bool retune = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return std::string(argv[++i]);
    };
    if (a == "--type") type_name = next();
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--tune-file") tune_file = next();
    else if (a == "--retune") retune = true;
    else if (a == "--csv") csv = next();
    else {
      std::fprintf(stderr, "usage: bench-sparse-gemv [--type bf16|f16] [--batch N] [--reps N] [--tune-file F] [--retune] [--csv FILE]\n");
      return 2;
    }
  }
  if ((type_name != "bf16" && type_name != "f16") || batch < 1 || batch > sparsa::kGemvMaxBatch || reps < 100) {
    std::fprintf(stderr, "bench-sparse-gemv: --type bf16|f16, --batch 1..%lld, --reps >= 100\n",
                 static_cast<long long>(sparsa::kGemvMaxBatch));
    return 2;
  }
  if (sparsa::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench-sparse-gemv: no CUDA device\n");
    return 1;
  }
  const bool bf16 = type_name == "bf16";
  const sparsa::DType dtype = bf16 ? sparsa::DType::BF16 : sparsa::DType::F16;
  const cudaDataType_t cublas_type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  auto table = sparsa::GemvTuneTable::load(tune_file);

  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  cublasHandle_t handle;
  check(cublasCreate(&handle), "cublasCreate");
  check(cublasSetStream(handle, stream), "cublasSetStream");
  void* cublas_workspace;
  constexpr size_t kCublasWorkspace = 32 << 20;
  check(cudaMalloc(&cublas_workspace, kCublasWorkspace), "workspace");
  check(cublasSetWorkspace(handle, cublas_workspace, kCublasWorkspace), "cublasSetWorkspace");

  struct Row {
    const Shape* shape;
    double dense_us;
    double sparse_us[6];
    double active[6];  // fraction of weight rows read: inputs active in any batch row
    sparsa::GemvConfig config[6];
  };
  std::vector<Row> rows;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const Shape& shape : kShapes) {
    const int64_t in = shape.in, out = shape.out, n = in * out;
    const auto host_w = random_half_bits(static_cast<size_t>(n), bf16, static_cast<uint64_t>(in + out));
    std::vector<void*> w(kBuffers), xh(kBuffers), yh(kBuffers);
    std::vector<float*> x(kBuffers), y(kBuffers);
    std::vector<std::vector<float>> host_x(kBuffers, std::vector<float>(static_cast<size_t>(batch * in)));
    for (int i = 0; i < kBuffers; ++i) {
      check(cudaMalloc(&w[i], n * 2), "weights");
      check(cudaMemcpy(w[i], host_w.data(), n * 2, cudaMemcpyHostToDevice), "upload weights");
      for (float& v : host_x[i]) v = normal(rng);
      const auto half_x = random_half_bits(static_cast<size_t>(batch * in), bf16, 1000 + i);  // cuBLAS's x
      check(cudaMalloc(&x[i], batch * in * 4), "x");
      check(cudaMalloc(&xh[i], batch * in * 2), "x half");
      check(cudaMalloc(&y[i], batch * out * 4), "y");
      check(cudaMalloc(&yh[i], batch * out * 2), "y half");
      check(cudaMemcpy(x[i], host_x[i].data(), batch * in * 4, cudaMemcpyHostToDevice), "upload x");
      check(cudaMemcpy(xh[i], half_x.data(), batch * in * 2, cudaMemcpyHostToDevice), "upload x half");
    }

    Row row{&shape, 0.0, {}, {}, {}};
    const float one = 1.0f, zero = 0.0f;
    // y = W x with W [out, in] row-major = column-major [in, out], hence op T.
    auto dense = [&](int i) {
      check(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(batch),
                         static_cast<int>(in), &one, w[i], cublas_type, static_cast<int>(in), xh[i], cublas_type,
                         static_cast<int>(in), &zero, yh[i], cublas_type, static_cast<int>(out), CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx");
    };
    dense(0);
    check(cudaStreamSynchronize(stream), "cuBLAS warm-up");
    row.dense_us = graph_median_us(stream, reps, dense);

    const sparsa::GemvShape gshape{dtype, batch, in, out};
    for (int k = 0; k < 6; ++k) {
      const double s = kSparsities[k];
      const sparsa::GemvKey key{gshape, sparsa::gemv_sparsity_bin(static_cast<float>(s))};
      if (retune || !table.find(key)) {
        std::fprintf(stderr, "tuning %s ...\n", key.str().c_str());
        sparsa::tune_sparse_gemv(gshape, static_cast<float>(s), table, 20);
        table.save(tune_file);
      }
      const sparsa::SparseGemvCuda plan(gshape, static_cast<float>(s), table);
      std::vector<float> t(kBuffers);
      int64_t active_rows = 0;
      for (int i = 0; i < kBuffers; ++i) {
        t[i] = sparsa::sparsity_threshold(host_x[i], static_cast<float>(s));
        for (int64_t j = 0; j < in; ++j) {
          bool any = false;
          for (int64_t b = 0; b < batch; ++b) any |= std::abs(host_x[i][b * in + j]) > t[i];
          active_rows += any;
        }
      }
      row.active[k] = static_cast<double>(active_rows) / (static_cast<double>(kBuffers) * in);
      row.config[k] = plan.config();
      row.sparse_us[k] = graph_median_us(stream, reps, [&](int i) { plan.run(w[i], x[i], y[i], t[i], stream); });
    }
    rows.push_back(row);
    for (int i = 0; i < kBuffers; ++i) {
      cudaFree(w[i]), cudaFree(x[i]), cudaFree(xh[i]), cudaFree(y[i]), cudaFree(yh[i]);
    }
    std::fprintf(stderr, "done %lld x %lld\n", static_cast<long long>(out), static_cast<long long>(in));
  }

  // The read bandwidth cuBLAS reaches on the largest shape (the first of the largest).
  const Row* largest = &rows[0];
  for (const Row& r : rows)
    if (r.shape->in * r.shape->out > largest->shape->in * largest->shape->out) largest = &r;
  const double bw = static_cast<double>(largest->shape->in * largest->shape->out) * 2 / (largest->dense_us * 1e-6);

  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  std::printf("\n%s, %s weights, batch %lld, %d graph replays of %d launches; cuBLAS reads %lld x %lld at %.2f TB/s\n",
              prop.name, type_name.c_str(), static_cast<long long>(batch), reps, kBuffers,
              static_cast<long long>(largest->shape->out), static_cast<long long>(largest->shape->in), bw / 1e12);
  std::printf("cell: sparse µs (× vs cuBLAS, %% of ideal = ideal ÷ measured) [TEAL anchor µs]; ideal = rows active in\n"
              "any batch row × row bytes ÷ that bandwidth (= (1 − s) × bytes ÷ bandwidth at batch 1)\n\n");
  std::printf("| W (out × in) | cuBLAS µs | s=0 | s=0.25 | s=0.4 | s=0.5 | s=0.7 | s=0.9 |\n|---|---:|---|---|---|---|---|---|\n");
  std::ofstream csv_out;
  if (!csv.empty()) {
    csv_out.open(csv);
    csv_out << "type,batch,out,in,sparsity,active_rows,cublas_us,sparse_us,speedup,ideal_us,anchor_us,vecs,unroll,warps,split\n";
  }
  for (const Row& r : rows) {
    std::printf("| %lld × %lld | %.1f |", static_cast<long long>(r.shape->out), static_cast<long long>(r.shape->in),
                r.dense_us);
    for (int k = 0; k < 6; ++k) {
      const double ideal_us = r.active[k] * r.shape->in * r.shape->out * 2 / bw * 1e6;
      const double anchor = batch == 1 ? r.shape->anchor_teal_us[k] : 0.0;
      std::printf(" %.1f (%.2f×, %.0f%%)", r.sparse_us[k], r.dense_us / r.sparse_us[k], 100.0 * ideal_us / r.sparse_us[k]);
      if (anchor > 0) std::printf(" [%.1f]", anchor);
      std::printf(" |");
      if (csv_out.is_open()) {
        const auto& c = r.config[k];
        csv_out << type_name << ',' << batch << ',' << r.shape->out << ',' << r.shape->in << ',' << kSparsities[k] << ','
                << r.active[k] << ',' << r.dense_us << ',' << r.sparse_us[k] << ',' << r.dense_us / r.sparse_us[k] << ',' << ideal_us << ','
                << anchor << ',' << c.vecs << ',' << c.unroll << ',' << c.warps << ',' << c.split << '\n';
      }
    }
    std::printf("\n");
  }
  cublasDestroy(handle);
  cudaFree(cublas_workspace);
  cudaStreamDestroy(stream);
  return 0;
}
