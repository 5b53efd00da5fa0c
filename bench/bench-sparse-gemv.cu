// bench-sparse-gemv: the activation-sparse GEMV (sparsa/sparse_gemv.h) against cuBLAS dense GEMV,
// the ideal (bytes that must be read ÷ the read bandwidth cuBLAS reaches on the largest shape in
// this run) and the TEAL Triton anchor of issue #8, measured the anchor's way: each variant is a
// CUDA graph of 16 launches over 16 different weight buffers (so launch gaps and L2 reuse are
// out), timed with CUDA events, median over --reps replays, divided by 16.
//
// usage: bench-sparse-gemv [--type bf16|f16] [--batch N] [--reps N] [--tune-file F] [--retune]
//                          [--csv FILE] [--fused qkv7b|qkv8b|gateup7b|gateup8b|all]
//   --type       weight and cuBLAS element type (default bf16)
//   --batch      x rows, 1..8 (default 1); the anchor exists for batch 1 only
//   --reps       graph replays per figure, at least 100 (default 200)
//   --tune-file  tuning table to read and extend (default sparse-gemv-tune.json); untuned
//                (shape, sparsity) keys are tuned first and the table is saved
//   --retune     tune every key again even when the table has it
//   --csv        also write one CSV row per (shape, sparsity)
//   --fused      instead of the single shapes: the fused launches of one x into 2-3 matrices
//                (q/k/v, gate/up of LLaMA-2-7B and LLaMA-3-8B): per sparsity the fused launch, the
//                same products as separate launches (each tuned on its own), cuBLAS on the
//                concatenated [Σ out, in] matrix and the ideal; then the launch floor (a graph of
//                16 launches of a kernel that only reads x and writes y of the 4096 × 4096 shape).
//                The bandwidth of the ideal is cuBLAS's on 28672 × 8192 in the same run.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gpu_graph_timer.h"
#include "sparsa/cuda.h"
#include "sparsa/sparse_gemv.h"

namespace {


constexpr int kBuffers = 16;  // weight buffers per graph, as the anchor
constexpr double kSparsities[] = {0.0, 0.25, 0.4, 0.5, 0.7, 0.9};
constexpr int kLevels = 6;
constexpr int kTuneReps = 20;  // graph replays per candidate config while tuning

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
constexpr int64_t kReferenceOut = 28672, kReferenceIn = 8192;  // the bandwidth reference in --fused

// One x into 2-3 matrices of a decoder layer.
struct FusedPreset {
  const char* name;
  const char* what;
  int64_t in;
  std::vector<int64_t> outs;
};
const FusedPreset kFusedPresets[] = {
    {"qkv7b", "LLaMA-2-7B q/k/v", 4096, {4096, 4096, 4096}},
    {"qkv8b", "LLaMA-3-8B q/k/v (GQA)", 4096, {4096, 1024, 1024}},
    {"gateup7b", "LLaMA-2-7B gate/up", 4096, {11008, 11008}},
    {"gateup8b", "LLaMA-3-8B gate/up", 4096, {14336, 14336}},
};

using sparsa::bench::check;

// Median microseconds of one launch: `enqueue(i)` for i < kBuffers in one graph (gpu_graph_timer.h).
template <typename Enqueue>
double graph_median_us(cudaStream_t stream, int reps, Enqueue enqueue) {
  return sparsa::bench::graph_median_us(stream, kBuffers, reps, enqueue);
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

struct Options {
  std::string type_name = "bf16", tune_file = "sparse-gemv-tune.json", csv, fused;
  int64_t batch = 1;
  int reps = 200;
  bool retune = false;
  bool bf16() const { return type_name == "bf16"; }
  sparsa::DType dtype() const { return bf16() ? sparsa::DType::BF16 : sparsa::DType::F16; }
  cudaDataType_t cublas_type() const { return bf16() ? CUDA_R_16BF : CUDA_R_16F; }
};

// The stream every graph is captured on, and cuBLAS bound to it.
struct Gpu {
  static constexpr size_t kCublasWorkspace = 32 << 20;
  cudaStream_t stream{};
  cublasHandle_t handle{};
  void* workspace{};
  Gpu() {
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    check(cublasCreate(&handle), "cublasCreate");
    check(cublasSetStream(handle, stream), "cublasSetStream");
    check(cudaMalloc(&workspace, kCublasWorkspace), "workspace");
    check(cublasSetWorkspace(handle, workspace, kCublasWorkspace), "cublasSetWorkspace");
  }
  ~Gpu() {
    cublasDestroy(handle);
    cudaFree(workspace);
    cudaStreamDestroy(stream);
  }
  Gpu(const Gpu&) = delete;
  Gpu& operator=(const Gpu&) = delete;
};

// yh [batch, out] = W xh, W [out, in] row-major = column-major [in, out], hence op T; half in and
// out, fp32 compute.
void cublas_gemv(const Gpu& g, cudaDataType_t type, int64_t out, int64_t in, int64_t batch, const void* w,
                 const void* xh, void* yh) {
  const float one = 1.0f, zero = 0.0f;
  check(cublasGemmEx(g.handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(batch),
                     static_cast<int>(in), &one, w, type, static_cast<int>(in), xh, type, static_cast<int>(in), &zero,
                     yh, type, static_cast<int>(out), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

// Tunes (shape, s) into the table and saves it, unless the table has it and --retune is off.
void ensure_tuned(sparsa::GemvTuneTable& table, const sparsa::GemvFusedShape& shape, double s, const Options& o) {
  const sparsa::GemvFusedKey key{shape, sparsa::gemv_sparsity_bin(static_cast<float>(s))};
  if (!o.retune && table.find(key)) return;
  std::fprintf(stderr, "tuning %s ...\n", key.str().c_str());
  sparsa::tune_sparse_gemv_fused(shape, static_cast<float>(s), table, kTuneReps);
  table.save(o.tune_file);
}

// The inputs of the kBuffers launches: x ~ N(0, 1) fp32 for the sparse kernel (host copies kept for
// the thresholds) and random half x for cuBLAS, [batch, in] each.
struct Inputs {
  std::vector<std::vector<float>> host;
  std::vector<float*> x;
  std::vector<void*> xh;
  Inputs(int64_t batch, int64_t in, bool bf16, std::mt19937& rng)
      : host(kBuffers, std::vector<float>(static_cast<size_t>(batch * in))), x(kBuffers), xh(kBuffers) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int i = 0; i < kBuffers; ++i) {
      for (float& v : host[i]) v = normal(rng);
      const auto half_x = random_half_bits(static_cast<size_t>(batch * in), bf16, 1000 + i);
      check(cudaMalloc(&x[i], batch * in * 4), "x");
      check(cudaMalloc(&xh[i], batch * in * 2), "x half");
      check(cudaMemcpy(x[i], host[i].data(), batch * in * 4, cudaMemcpyHostToDevice), "upload x");
      check(cudaMemcpy(xh[i], half_x.data(), batch * in * 2, cudaMemcpyHostToDevice), "upload x half");
    }
  }
  ~Inputs() {
    for (int i = 0; i < kBuffers; ++i) cudaFree(x[i]), cudaFree(xh[i]);
  }
  Inputs(const Inputs&) = delete;
  Inputs& operator=(const Inputs&) = delete;
};

// Each buffer's threshold for sparsity s, and the fraction of weight rows that must be read:
// inputs active in any batch row, over all buffers.
struct Sparsified {
  std::vector<float> t;
  double active = 0.0;
};
Sparsified sparsify(const Inputs& inputs, double s, int64_t batch, int64_t in) {
  Sparsified r{std::vector<float>(kBuffers), 0.0};
  int64_t active_rows = 0;
  for (int i = 0; i < kBuffers; ++i) {
    r.t[i] = sparsa::sparsity_threshold(inputs.host[i], static_cast<float>(s));
    for (int64_t j = 0; j < in; ++j) {
      bool any = false;
      for (int64_t b = 0; b < batch; ++b) any |= std::abs(inputs.host[i][b * in + j]) > r.t[i];
      active_rows += any;
    }
  }
  r.active = static_cast<double>(active_rows) / (static_cast<double>(kBuffers) * in);
  return r;
}

std::string config_tag(const sparsa::GemvConfig& c) {
  return std::to_string(c.vecs) + "/" + std::to_string(c.unroll) + "/" + std::to_string(c.warps) + "/" +
         std::to_string(c.split) + (c.pdl ? "/pdl" : "");
}

void print_machine(const Options& o, double bw, int64_t ref_out, int64_t ref_in) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  std::printf("\n%s, %s weights, batch %lld, %d graph replays of %d launches; cuBLAS reads %lld x %lld at %.2f TB/s\n",
              prop.name, o.type_name.c_str(), static_cast<long long>(o.batch), o.reps, kBuffers,
              static_cast<long long>(ref_out), static_cast<long long>(ref_in), bw / 1e12);
}

// ---- the single shapes against cuBLAS and the TEAL anchor ----

int run_single(const Options& o, Gpu& g, sparsa::GemvTuneTable& table) {
  const int64_t batch = o.batch;
  struct Row {
    const Shape* shape;
    double dense_us;
    double sparse_us[kLevels];
    double active[kLevels];  // fraction of weight rows read: inputs active in any batch row
    sparsa::GemvConfig config[kLevels];
  };
  std::vector<Row> rows;
  std::mt19937 rng(7);
  for (const Shape& shape : kShapes) {
    const int64_t in = shape.in, out = shape.out, n = in * out;
    const auto host_w = random_half_bits(static_cast<size_t>(n), o.bf16(), static_cast<uint64_t>(in + out));
    std::vector<void*> w(kBuffers), yh(kBuffers);
    std::vector<float*> y(kBuffers);
    const Inputs inputs(batch, in, o.bf16(), rng);
    for (int i = 0; i < kBuffers; ++i) {
      check(cudaMalloc(&w[i], n * 2), "weights");
      check(cudaMemcpy(w[i], host_w.data(), n * 2, cudaMemcpyHostToDevice), "upload weights");
      check(cudaMalloc(&y[i], batch * out * 4), "y");
      check(cudaMalloc(&yh[i], batch * out * 2), "y half");
    }

    Row row{&shape, 0.0, {}, {}, {}};
    auto dense = [&](int i) { cublas_gemv(g, o.cublas_type(), out, in, batch, w[i], inputs.xh[i], yh[i]); };
    dense(0);
    check(cudaStreamSynchronize(g.stream), "cuBLAS warm-up");
    row.dense_us = graph_median_us(g.stream, o.reps, dense);

    const sparsa::GemvShape gshape{o.dtype(), batch, in, out};
    for (int k = 0; k < kLevels; ++k) {
      const double s = kSparsities[k];
      ensure_tuned(table, sparsa::GemvFusedShape::single(gshape), s, o);
      const sparsa::SparseGemvCuda plan(gshape, static_cast<float>(s), table);
      const Sparsified sp = sparsify(inputs, s, batch, in);
      row.active[k] = sp.active;
      row.config[k] = plan.config();
      row.sparse_us[k] = graph_median_us(g.stream, o.reps, [&](int i) { plan.run(w[i], inputs.x[i], y[i], sp.t[i], g.stream); });
    }
    rows.push_back(row);
    for (int i = 0; i < kBuffers; ++i) cudaFree(w[i]), cudaFree(y[i]), cudaFree(yh[i]);
    std::fprintf(stderr, "done %lld x %lld\n", static_cast<long long>(out), static_cast<long long>(in));
  }

  // The read bandwidth cuBLAS reaches on the largest shape (the first of the largest).
  const Row* largest = &rows[0];
  for (const Row& r : rows)
    if (r.shape->in * r.shape->out > largest->shape->in * largest->shape->out) largest = &r;
  const double bw = static_cast<double>(largest->shape->in * largest->shape->out) * 2 / (largest->dense_us * 1e-6);

  print_machine(o, bw, largest->shape->out, largest->shape->in);
  std::printf("cell: sparse µs (× vs cuBLAS, %% of ideal = ideal ÷ measured) [TEAL anchor µs]; ideal = rows active in\n"
              "any batch row × row bytes ÷ that bandwidth (= (1 − s) × bytes ÷ bandwidth at batch 1)\n\n");
  std::printf("| W (out × in) | cuBLAS µs | s=0 | s=0.25 | s=0.4 | s=0.5 | s=0.7 | s=0.9 |\n|---|---:|---|---|---|---|---|---|\n");
  std::ofstream csv_out;
  if (!o.csv.empty()) {
    csv_out.open(o.csv);
    csv_out << "type,batch,out,in,sparsity,active_rows,cublas_us,sparse_us,speedup,ideal_us,anchor_us,vecs,unroll,warps,split,pdl\n";
  }
  for (const Row& r : rows) {
    std::printf("| %lld × %lld | %.1f |", static_cast<long long>(r.shape->out), static_cast<long long>(r.shape->in),
                r.dense_us);
    for (int k = 0; k < kLevels; ++k) {
      const double ideal_us = r.active[k] * r.shape->in * r.shape->out * 2 / bw * 1e6;
      const double anchor = batch == 1 ? r.shape->anchor_teal_us[k] : 0.0;
      std::printf(" %.1f (%.2f×, %.0f%%)", r.sparse_us[k], r.dense_us / r.sparse_us[k], 100.0 * ideal_us / r.sparse_us[k]);
      if (anchor > 0) std::printf(" [%.1f]", anchor);
      std::printf(" |");
      if (csv_out.is_open()) {
        const auto& c = r.config[k];
        csv_out << o.type_name << ',' << batch << ',' << r.shape->out << ',' << r.shape->in << ',' << kSparsities[k] << ','
                << r.active[k] << ',' << r.dense_us << ',' << r.sparse_us[k] << ',' << r.dense_us / r.sparse_us[k] << ',' << ideal_us << ','
                << anchor << ',' << c.vecs << ',' << c.unroll << ',' << c.warps << ',' << c.split << ',' << c.pdl << '\n';
      }
    }
    std::printf("\n");
  }
  return 0;
}

// ---- fused launches ----

// The launch floor: reads x [in] and writes y [out], nothing else (y[o] = x[o mod in]).
__global__ void launch_floor_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t in, int64_t out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < out; o += stride) y[o] = x[o % in];
}

// Microseconds a launch of launch_floor_kernel takes in a graph of kBuffers launches over
// different x and y: `blocks` blocks of `threads`, in clusters of `cluster` blocks.
double launch_floor_us(const Gpu& g, int reps, int64_t in, int64_t out, unsigned blocks, unsigned threads,
                       unsigned cluster) {
  std::vector<float*> x(kBuffers), y(kBuffers);
  for (int i = 0; i < kBuffers; ++i) {
    check(cudaMalloc(&x[i], in * 4), "floor x");
    check(cudaMalloc(&y[i], out * 4), "floor y");
    sparsa::fill_uniform_cuda(x[i], sparsa::DType::F32, in, 77u + i, g.stream);
  }
  check(cudaFuncSetAttribute(launch_floor_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1), "floor attribute");
  auto launch = [&](int i) {
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(blocks);
    config.blockDim = dim3(threads);
    config.stream = g.stream;
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeClusterDimension;
    attribute.val.clusterDim.x = cluster;
    attribute.val.clusterDim.y = 1;
    attribute.val.clusterDim.z = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
    check(cudaLaunchKernelEx(&config, launch_floor_kernel, static_cast<const float*>(x[i]), y[i], in, out), "floor launch");
  };
  launch(0);
  check(cudaStreamSynchronize(g.stream), "floor warm-up");
  const double us = graph_median_us(g.stream, reps, launch);
  for (int i = 0; i < kBuffers; ++i) cudaFree(x[i]), cudaFree(y[i]);
  return us;
}

int run_fused(const Options& o, Gpu& g, sparsa::GemvTuneTable& table) {
  const int64_t batch = o.batch;
  std::vector<const FusedPreset*> presets;
  for (const FusedPreset& p : kFusedPresets)
    if (o.fused == "all" || o.fused == p.name) presets.push_back(&p);

  // The bandwidth reference: cuBLAS on the largest single shape.
  double bw = 0.0;
  std::mt19937 rng(7);
  {
    const int64_t n = kReferenceOut * kReferenceIn;
    const Inputs inputs(batch, kReferenceIn, o.bf16(), rng);
    std::vector<void*> w(kBuffers), yh(kBuffers);
    for (int i = 0; i < kBuffers; ++i) {
      check(cudaMalloc(&w[i], n * 2), "reference weights");
      check(cudaMalloc(&yh[i], batch * kReferenceOut * 2), "reference y");
      sparsa::fill_uniform_cuda(w[i], o.dtype(), n, 500u + i, g.stream);
    }
    auto dense = [&](int i) { cublas_gemv(g, o.cublas_type(), kReferenceOut, kReferenceIn, batch, w[i], inputs.xh[i], yh[i]); };
    dense(0);
    check(cudaStreamSynchronize(g.stream), "cuBLAS warm-up");
    bw = static_cast<double>(n) * 2 / (graph_median_us(g.stream, o.reps, dense) * 1e-6);
    for (int i = 0; i < kBuffers; ++i) cudaFree(w[i]), cudaFree(yh[i]);
  }

  print_machine(o, bw, kReferenceOut, kReferenceIn);
  std::printf("fused = one launch for all parts (16 in the graph); separate = one launch per part, each with its own\n"
              "tuned config (16 × M in the graph); cuBLAS = one GEMV on the concatenated [Σ out, in] matrix; ideal =\n"
              "rows active in any batch row × Σ out × 2 bytes ÷ that bandwidth. Every part uses the same threshold.\n"
              "config = vecs/unroll/warps/split[/pdl: programmatic dependent launch].\n");
  std::ofstream csv_out;
  if (!o.csv.empty()) {
    csv_out.open(o.csv);
    csv_out << "preset,type,batch,in,outs,sparsity,active_rows,fused_us,separate_us,cublas_us,ideal_us,fused_config,"
               "separate_configs\n";
  }
  for (const FusedPreset* p : presets) {
    const int64_t in = p->in;
    const size_t parts = p->outs.size();
    int64_t total_out = 0;
    std::vector<int64_t> first_out;  // first row of each part in the concatenated [Σ out, in] matrix
    std::string outs_tag;
    for (int64_t out : p->outs) {
      first_out.push_back(total_out);
      total_out += out;
      outs_tag += (outs_tag.empty() ? "" : "+") + std::to_string(out);
    }
    // One buffer per launch holds every part: as [Σ out, in] for cuBLAS and as the parts'
    // Wᵀ [in, out_m] one after another for the sparse kernel (the values are random either way).
    const int64_t n = total_out * in;
    const Inputs inputs(batch, in, o.bf16(), rng);
    std::vector<void*> w(kBuffers), yh(kBuffers);
    std::vector<float*> y(kBuffers);  // the parts' y [batch, out_m] one after another
    for (int i = 0; i < kBuffers; ++i) {
      check(cudaMalloc(&w[i], n * 2), "weights");
      check(cudaMalloc(&y[i], batch * total_out * 4), "y");
      check(cudaMalloc(&yh[i], batch * total_out * 2), "y half");
      sparsa::fill_uniform_cuda(w[i], o.dtype(), n, 900u + i, g.stream);
    }
    auto part_of = [&](int i, size_t m, float t) {
      return sparsa::GemvPart{static_cast<const uint16_t*>(w[i]) + first_out[m] * in, y[i] + batch * first_out[m], t};
    };
    auto dense = [&](int i) { cublas_gemv(g, o.cublas_type(), total_out, in, batch, w[i], inputs.xh[i], yh[i]); };
    dense(0);
    check(cudaStreamSynchronize(g.stream), "cuBLAS warm-up");
    const double dense_us = graph_median_us(g.stream, o.reps, dense);

    const sparsa::GemvFusedShape shape{o.dtype(), batch, in, p->outs};
    std::printf("\n### %s — %s: x [%lld] → %s\n\n", p->name, p->what, static_cast<long long>(in), outs_tag.c_str());
    std::printf("| s | fused µs | %zu separate µs | cuBLAS %lld × %lld µs | ideal µs | fused vs separate | fused vs cuBLAS | "
                "fused %% of ideal | fused config | separate configs |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
                parts, static_cast<long long>(total_out), static_cast<long long>(in));
    for (int k = 0; k < kLevels; ++k) {
      const double s = kSparsities[k];
      ensure_tuned(table, shape, s, o);
      for (size_t m = 0; m < parts; ++m) ensure_tuned(table, sparsa::GemvFusedShape::single(shape.part(m)), s, o);
      const sparsa::SparseGemvFusedCuda fused(shape, static_cast<float>(s), table);
      std::vector<sparsa::SparseGemvCuda> separate;
      std::string separate_tags;
      for (size_t m = 0; m < parts; ++m) {
        separate.emplace_back(shape.part(m), static_cast<float>(s), table);
        separate_tags += (separate_tags.empty() ? "" : ", ") + config_tag(separate.back().config());
      }
      const Sparsified sp = sparsify(inputs, s, batch, in);
      const double fused_us = graph_median_us(g.stream, o.reps, [&](int i) {
        sparsa::GemvPart launch_parts[sparsa::kGemvMaxParts];
        for (size_t m = 0; m < parts; ++m) launch_parts[m] = part_of(i, m, sp.t[i]);
        fused.run({launch_parts, parts}, inputs.x[i], g.stream);
      });
      const double separate_us = graph_median_us(g.stream, o.reps, [&](int i) {
        for (size_t m = 0; m < parts; ++m) {
          const sparsa::GemvPart part = part_of(i, m, sp.t[i]);
          separate[m].run(part.wt, inputs.x[i], part.y, part.threshold, g.stream);
        }
      });
      const double ideal_us = sp.active * static_cast<double>(n) * 2 / bw * 1e6;
      std::printf("| %.2f | %.1f | %.1f | %.1f | %.1f | %.2f× | %.2f× | %.0f%% | %s | %s |\n", s, fused_us, separate_us,
                  dense_us, ideal_us, separate_us / fused_us, dense_us / fused_us, 100.0 * ideal_us / fused_us,
                  config_tag(fused.config()).c_str(), separate_tags.c_str());
      if (csv_out.is_open())
        csv_out << p->name << ',' << o.type_name << ',' << batch << ',' << in << ',' << outs_tag << ',' << s << ','
                << sp.active << ',' << fused_us << ',' << separate_us << ',' << dense_us << ',' << ideal_us << ','
                << config_tag(fused.config()) << ",\"" << separate_tags << "\"\n";
    }
    std::fflush(stdout);
    for (int i = 0; i < kBuffers; ++i) cudaFree(w[i]), cudaFree(y[i]), cudaFree(yh[i]);
    std::fprintf(stderr, "done %s\n", p->name);
  }

  // What a launch costs before it reads any weight, for the 4096 × 4096 shape: the floor that the
  // small shapes meet at s = 0.9.
  constexpr int64_t kFloorIn = 4096, kFloorOut = 4096;
  const sparsa::GemvShape floor_shape{o.dtype(), batch, kFloorIn, kFloorOut};
  const sparsa::GemvConfig c = table.lookup(sparsa::GemvKey{floor_shape, sparsa::gemv_sparsity_bin(0.9f)});
  const auto kernel_blocks = static_cast<unsigned>(sparsa::gemv_grid_blocks(floor_shape, c));
  const double plain_us = launch_floor_us(g, o.reps, kFloorIn, kFloorOut * batch, 16, 256, 1);
  const double cluster_us = launch_floor_us(g, o.reps, kFloorIn, kFloorOut * batch, kernel_blocks,
                                            static_cast<unsigned>(c.warps * 32), static_cast<unsigned>(c.split));
  std::printf("\nlaunch floor, %lld × %lld (x and y only, no weights; graph of %d launches): %.2f µs a launch as 16 "
              "blocks of 256 threads; %.2f µs as %u blocks of %d threads in clusters of %d (the grid of the s = 0.9 "
              "config %s)\n",
              static_cast<long long>(kFloorOut), static_cast<long long>(kFloorIn), kBuffers, plain_us, cluster_us,
              kernel_blocks, c.warps * 32, c.split, config_tag(c).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sparsa::bench::g_program = "bench-sparse-gemv";
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return std::string(argv[++i]);
    };
    if (a == "--type") o.type_name = next();
    else if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--reps") o.reps = std::stoi(next());
    else if (a == "--tune-file") o.tune_file = next();
    else if (a == "--retune") o.retune = true;
    else if (a == "--csv") o.csv = next();
    else if (a == "--fused") o.fused = next();
    else {
      std::fprintf(stderr, "usage: bench-sparse-gemv [--type bf16|f16] [--batch N] [--reps N] [--tune-file F] [--retune] "
                           "[--csv FILE] [--fused qkv7b|qkv8b|gateup7b|gateup8b|all]\n");
      return 2;
    }
  }
  const bool fused_known =
      o.fused.empty() || o.fused == "all" ||
      std::any_of(std::begin(kFusedPresets), std::end(kFusedPresets), [&](const FusedPreset& p) { return o.fused == p.name; });
  if ((o.type_name != "bf16" && o.type_name != "f16") || o.batch < 1 || o.batch > sparsa::kGemvMaxBatch || o.reps < 100 ||
      !fused_known) {
    std::fprintf(stderr, "bench-sparse-gemv: --type bf16|f16, --batch 1..%lld, --reps >= 100, "
                         "--fused qkv7b|qkv8b|gateup7b|gateup8b|all\n",
                 static_cast<long long>(sparsa::kGemvMaxBatch));
    return 2;
  }
  if (sparsa::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench-sparse-gemv: no CUDA device\n");
    return 1;
  }
  sparsa::GemvTuneTable table;
  try {
    table = sparsa::GemvTuneTable::load(o.tune_file);
  } catch (const std::exception& e) {  // a malformed table: bad input
    std::fprintf(stderr, "bench-sparse-gemv: %s\n", e.what());
    return 2;
  }
  try {
    Gpu g;
    return o.fused.empty() ? run_single(o, g, table) : run_fused(o, g, table);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench-sparse-gemv: %s\n", e.what());
    return 1;
  }
}
