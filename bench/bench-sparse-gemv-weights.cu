// bench-sparse-gemv-weights: do weight sparsity and activation sparsity multiply? The 2:4
// weight- and activation-sparse GEMV (sparsa/sparse_gemv_2to4.h, sparse_gemv_masked.h) against the activation-sparse
// GEMV (sparsa/sparse_gemv.h, tuned through its table) and cuBLAS dense GEMV, measured as
// bench-sparse-gemv does (issue #8's anchor method, bench/gpu_graph_timer.h): a CUDA graph of 16
// launches over 16 different weight buffers (past the 50 MB L2) and 16 different x, CUDA events,
// median of --reps replays ÷ 16. Weights random in [-1, 1) (never 0); 2:4 indices random.
//
// Two activation patterns at each sparsity s (threshold = the |x| quantile of each x):
//   independent  x ~ N(0, 1) per input: a group of 4 inputs is read if any is active, a fraction
//                1 − s⁴ at batch 1, so the sparsities cannot multiply;
//   grouped      the 4 inputs of a group share |x| (random signs): whole groups go inactive
//                together, the best case, where the 2:4 kernel reads (1 − s) × 0.5625 of the bytes.
// Third kernel: 50 % unstructured weights as bitmask + packed values (SparseGemvMaskedCuda), which
// skips inactive rows one by one, so there the two sparsities can multiply.
// The 2:4 and unstructured kernels are tuned here: every candidate config timed with --tune-reps
// replays, the fastest re-timed with --reps.
//
// usage: bench-sparse-gemv-weights [--type bf16|f16] [--batch N] [--reps N] [--tune-reps N]
//                                  [--tune-file F] [--csv FILE]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gpu_graph_timer.h"
#include "sparsa/cuda.h"
#include "sparsa/sparse_gemv.h"
#include "sparsa/sparse_gemv_2to4.h"
#include "sparsa/sparse_gemv_masked.h"

namespace {

using sparsa::bench::check;

constexpr int kBuffers = 16;
constexpr double kSparsities[] = {0.0, 0.25, 0.4, 0.5, 0.7, 0.9};
constexpr int kNumSparsities = 6;
constexpr double kPackedBytes = 0.5625;  // 2:4 bytes ÷ dense bytes: (2 × 2 + 0.5) ÷ (4 × 2)
constexpr const char* kPatterns[] = {"independent", "grouped"};
constexpr double kMaskedDensity = 0.5;  // the unstructured kernel's weights: 50 % pruned

struct Shape {
  int64_t out, in;  // W is out × in; Wᵀ is [in, out]
};
const Shape kShapes[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {28672, 8192}};

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13, s ^= s >> 7, s ^= s << 17;
  return s;
}

struct Cell {
  double act_us, nm_us, masked_us;
  double rows_read, groups_read;  // fraction of weight rows / 2:4 groups the kernels read
  sparsa::GemvConfig act_config, nm_config, masked_config;
};

struct Row {
  Shape shape;
  double cublas_us;
  double masked_bytes;           // the unstructured layout's bytes ÷ dense bytes (all rows read)
  Cell cell[2][kNumSparsities];  // [pattern][sparsity]
};

// The unstructured layout (sparsa/sparse_gemv_masked.h) of a random Wᵀ [in, out] keeping each weight
// with probability 1/2 (a random bit), values random in [-1, 1), never 0.
struct MaskedLayout {
  std::vector<uint8_t> masks;     // [in, tiles × 32]
  std::vector<uint32_t> offsets;  // [in, tiles]
  std::vector<uint16_t> values;   // padded segments
  double bytes() const { return static_cast<double>(masks.size() + 4 * offsets.size() + 2 * values.size()); }
};

MaskedLayout random_masked(int64_t in, int64_t out, bool bf16, uint64_t seed) {
  const int64_t tiles = sparsa::gemv_mask_tiles(out), tile = sparsa::kGemvMaskTile;
  MaskedLayout m{std::vector<uint8_t>(static_cast<size_t>(in * tiles * tile / 8)),
                 std::vector<uint32_t>(static_cast<size_t>(in * tiles)), {}};
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  m.values.reserve(static_cast<size_t>(in * out * kMaskedDensity * 1.05));
  for (int64_t j = 0; j < in; ++j)
    for (int64_t t = 0; t < tiles; ++t) {
      m.offsets[static_cast<size_t>(j * tiles + t)] = static_cast<uint32_t>(m.values.size() / 8);
      uint8_t* bits = m.masks.data() + (j * tiles + t) * tile / 8;
      int kept = 0;
      for (int64_t c = 0; c < tile; c += 64) {
        uint64_t r = xorshift(s);
        for (int64_t b = 0; b < 64; ++b, r >>= 1)
          if ((r & 1) && t * tile + c + b < out) bits[(c + b) / 8] |= static_cast<uint8_t>(1u << (b % 8)), ++kept;
      }
      for (int k = 0; k < kept; ++k) {
        const float f = static_cast<float>((xorshift(s) >> 40) | 1) * (2.0f / 16777216.0f) - 1.0f;  // never 0
        m.values.push_back(bf16 ? sparsa::f32_to_bf16(f) : sparsa::f32_to_f16(f));
      }
      m.values.resize((m.values.size() + 7) / 8 * 8, 0);
    }
  return m;
}

// [groups, words(out)] random 2:4 index words: each nibble one of the 6 pairs idx0 < idx1.
std::vector<uint32_t> random_indices(int64_t groups, int64_t out, uint64_t seed) {
  static constexpr uint32_t kPairs[6] = {0 | 1 << 2, 0 | 2 << 2, 0 | 3 << 2, 1 | 2 << 2, 1 | 3 << 2, 2 | 3 << 2};
  const int64_t words = sparsa::gemv_2to4_index_words(out);
  std::vector<uint32_t> v(static_cast<size_t>(groups * words), 0);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t w = 0; w < words; ++w) {
      uint64_t r = xorshift(s);  // 8 base-6 digits of one draw (6^8 << 2^64)
      uint32_t& word = v[static_cast<size_t>(g * words + w)];
      for (int64_t o = 8 * w; o < std::min(out, 8 * w + 8); ++o, r /= 6) word |= kPairs[r % 6] << (o % 8 * 4);
    }
  return v;
}

// x [batch, in] of the pattern (0 independent, 1 grouped).
std::vector<float> random_x(int pattern, int64_t batch, int64_t in, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(batch * in));
  for (size_t j = 0; j < x.size(); j += pattern == 0 ? 1 : 4) {
    const float magnitude = std::abs(normal(rng));
    for (size_t k = 0; k < (pattern == 0 ? 1u : 4u); ++k) x[j + k] = (rng() & 1 ? magnitude : -magnitude);
  }
  return x;
}

// Fractions of the rows and of the groups of 4 with an input active in any batch row.
void read_fractions(const std::vector<float>& x, int64_t batch, int64_t in, float t, int64_t& rows, int64_t& groups) {
  for (int64_t g = 0; g < in / 4; ++g) {
    bool group = false;
    for (int64_t k = 0; k < 4; ++k) {
      bool row = false;
      for (int64_t b = 0; b < batch; ++b) row |= std::abs(x[static_cast<size_t>(b * in + 4 * g + k)]) > t;
      rows += row;
      group |= row;
    }
    groups += group;
  }
}

}  // namespace

int main(int argc, char** argv) {
  sparsa::bench::g_program = "bench-sparse-gemv-weights";
  std::string type_name = "bf16", tune_file = "sparse-gemv-tune.json", csv;
  int64_t batch = 1;
  int reps = 100, tune_reps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--type") type_name = next();
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--tune-reps") tune_reps = std::stoi(next());
    else if (a == "--tune-file") tune_file = next();
    else if (a == "--csv") csv = next();
    else {
      std::fprintf(stderr, "usage: bench-sparse-gemv-weights [--type bf16|f16] [--batch N] [--reps N] "
                           "[--tune-reps N] [--tune-file F] [--csv FILE]\n");
      return 2;
    }
  }
  if ((type_name != "bf16" && type_name != "f16") || batch < 1 || batch > sparsa::kGemvMaxBatch || reps < 100 ||
      tune_reps < 3) {
    std::fprintf(stderr, "bench-sparse-gemv-weights: --type bf16|f16, --batch 1..%lld, --reps >= 100, --tune-reps >= 3\n",
                 static_cast<long long>(sparsa::kGemvMaxBatch));
    return 2;
  }
  if (sparsa::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench-sparse-gemv-weights: no CUDA device\n");
    return 1;
  }
  const bool bf16 = type_name == "bf16";
  const sparsa::DType dtype = bf16 ? sparsa::DType::BF16 : sparsa::DType::F16;
  const sparsa::DType wtype = bf16 ? sparsa::DType::BF16 : sparsa::DType::F16;
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

  std::vector<Row> rows;
  std::mt19937 rng(7);
  for (const Shape& shape : kShapes) {
    const int64_t in = shape.in, out = shape.out, n = in * out, groups = in / 4;
    const int64_t index_words = groups * sparsa::gemv_2to4_index_words(out);
    std::vector<void*> w(kBuffers), values(kBuffers), xh(kBuffers), yh(kBuffers);
    std::vector<uint32_t*> indices(kBuffers);
    std::vector<float*> x(kBuffers), y(kBuffers);
    for (int i = 0; i < kBuffers; ++i) {
      check(cudaMalloc(&w[i], n * 2), "weights");
      check(cudaMalloc(&values[i], n), "2:4 values");  // [in / 2, out] halves
      check(cudaMalloc(&indices[i], index_words * 4), "2:4 indices");
      check(cudaMalloc(&x[i], batch * in * 4), "x");
      check(cudaMalloc(&xh[i], batch * in * 2), "x half");
      check(cudaMalloc(&y[i], batch * out * 4), "y");
      check(cudaMalloc(&yh[i], batch * out * 2), "y half");
      sparsa::fill_uniform_cuda(w[i], wtype, n, static_cast<uint32_t>(1 + i), stream);
      sparsa::fill_uniform_cuda(values[i], wtype, n / 2, static_cast<uint32_t>(101 + i), stream);
      sparsa::fill_uniform_cuda(xh[i], wtype, batch * in, static_cast<uint32_t>(201 + i), stream);
      const auto host_indices = random_indices(groups, out, static_cast<uint64_t>(i + 1));
      check(cudaMemcpy(indices[i], host_indices.data(), index_words * 4, cudaMemcpyHostToDevice), "upload indices");
    }
    // The unstructured layout at density kMaskedDensity: one random packing, copied to every buffer.
    const MaskedLayout masked = random_masked(in, out, bf16, static_cast<uint64_t>(in + out));
    std::vector<void*> masked_values(kBuffers);
    std::vector<uint8_t*> masked_masks(kBuffers);
    std::vector<uint32_t*> masked_offsets(kBuffers);
    for (int i = 0; i < kBuffers; ++i) {
      check(cudaMalloc(&masked_values[i], masked.values.size() * 2), "masked values");
      check(cudaMalloc(&masked_masks[i], masked.masks.size()), "masked masks");
      check(cudaMalloc(&masked_offsets[i], masked.offsets.size() * 4), "masked offsets");
      check(cudaMemcpy(masked_values[i], masked.values.data(), masked.values.size() * 2, cudaMemcpyHostToDevice), "upload");
      check(cudaMemcpy(masked_masks[i], masked.masks.data(), masked.masks.size(), cudaMemcpyHostToDevice), "upload");
      check(cudaMemcpy(masked_offsets[i], masked.offsets.data(), masked.offsets.size() * 4, cudaMemcpyHostToDevice),
            "upload");
    }
    check(cudaStreamSynchronize(stream), "fill");

    Row row{shape, 0.0, masked.bytes() / (2.0 * static_cast<double>(n)), {}};
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
    row.cublas_us = sparsa::bench::graph_median_us(stream, kBuffers, reps, dense);

    const sparsa::GemvShape gshape{dtype, batch, in, out};
    for (int k = 0; k < kNumSparsities; ++k) {
      const float s = static_cast<float>(kSparsities[k]);
      const sparsa::GemvKey key{gshape, sparsa::gemv_sparsity_bin(s)};
      if (!table.find(key)) {
        std::fprintf(stderr, "tuning %s ...\n", key.str().c_str());
        sparsa::tune_sparse_gemv(gshape, s, table, 20);
        table.save(tune_file);
      }
      const sparsa::SparseGemvCuda act_plan(gshape, s, table);
      for (int p = 0; p < 2; ++p) {
        Cell& cell = row.cell[p][k];
        std::vector<float> t(kBuffers);
        int64_t rows_read = 0, groups_read = 0;
        for (int i = 0; i < kBuffers; ++i) {
          const auto host_x = random_x(p, batch, in, rng);
          t[i] = sparsa::sparsity_threshold(host_x, s);
          read_fractions(host_x, batch, in, t[i], rows_read, groups_read);
          check(cudaMemcpy(x[i], host_x.data(), batch * in * 4, cudaMemcpyHostToDevice), "upload x");
        }
        cell.rows_read = static_cast<double>(rows_read) / (static_cast<double>(kBuffers) * in);
        cell.groups_read = static_cast<double>(groups_read) / (static_cast<double>(kBuffers) * groups);
        cell.act_config = act_plan.config();
        cell.act_us = sparsa::bench::graph_median_us(stream, kBuffers, reps,
                                             [&](int i) { act_plan.run(w[i], x[i], y[i], t[i], stream); });
        std::tie(cell.nm_us, cell.nm_config) = sparsa::bench::fastest_config(
            stream, kBuffers, sparsa::gemv_2to4_candidates(gshape), tune_reps, reps,
            [&](const sparsa::GemvConfig& c) { return sparsa::SparseGemv2to4Cuda(gshape, c); },
            [&](const sparsa::SparseGemv2to4Cuda& plan, int i) {
              plan.run(values[i], indices[i], x[i], y[i], t[i], stream);
            });
        std::tie(cell.masked_us, cell.masked_config) = sparsa::bench::fastest_config(
            stream, kBuffers, sparsa::gemv_masked_candidates(gshape), tune_reps, reps,
            [&](const sparsa::GemvConfig& c) { return sparsa::SparseGemvMaskedCuda(gshape, c); },
            [&](const sparsa::SparseGemvMaskedCuda& plan, int i) {
              plan.run(masked_values[i], masked_masks[i], masked_offsets[i], x[i], y[i], t[i], stream);
            });
      }
    }
    rows.push_back(row);
    for (int i = 0; i < kBuffers; ++i) {
      cudaFree(w[i]), cudaFree(values[i]), cudaFree(indices[i]), cudaFree(x[i]), cudaFree(xh[i]), cudaFree(y[i]);
      cudaFree(yh[i]), cudaFree(masked_values[i]), cudaFree(masked_masks[i]), cudaFree(masked_offsets[i]);
    }
    std::fprintf(stderr, "done %lld x %lld\n", static_cast<long long>(out), static_cast<long long>(in));
  }

  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  std::printf("\n%s, %s weights, batch %lld, %d graph replays of %d launches (2:4 and unstructured configs: the\n"
              "fastest candidate over %d replays)\n",
              prop.name, type_name.c_str(), static_cast<long long>(batch), reps, kBuffers, tune_reps);
  std::printf("act = activation-sparse kernel on dense W (reads the rows active in any batch row); 2:4 = 2:4 weights,\n"
              "reads a group of 4 rows (packed to 0.5625 of their bytes) if any row is active; unstr = 50 %% unstructured\n"
              "weights as bitmask + packed values (%.4f of the dense bytes, padding included), reads the active rows.\n"
              "×: cuBLAS µs ÷ kernel µs. bytes: read ÷ dense bytes (2:4: groups read × 0.5625; unstr: rows read × its\n"
              "ratio); product: (1 − s) × 0.5625, what multiplying sparsities would give for 2:4; measured: µs ÷ cuBLAS µs.\n",
              rows.empty() ? 0.0 : rows.back().masked_bytes);
  std::ofstream csv_out;
  if (!csv.empty()) {
    csv_out.open(csv);
    csv_out << "type,batch,out,in,pattern,sparsity,cublas_us,act_us,nm_us,masked_us,rows_read,groups_read,nm_bytes_ratio,"
               "nm_product_prediction,nm_measured_ratio,masked_bytes_ratio,masked_measured_ratio,act_config,nm_config,"
               "masked_config\n";
  }
  auto config_str = [](const sparsa::GemvConfig& c) {
    return std::to_string(c.vecs) + "/" + std::to_string(c.unroll) + "/" + std::to_string(c.warps) + "/" +
           std::to_string(c.split);
  };
  for (int p = 0; p < 2; ++p) {
    std::printf("\nx pattern: %s\n\n| W (out × in) | s | cuBLAS µs | act µs (×) | 2:4 µs (×) | unstr µs (×) | rows read | "
                "groups read | 2:4 bytes | 2:4 product | 2:4 measured | unstr bytes | unstr measured |\n"
                "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
                kPatterns[p]);
    for (const Row& r : rows)
      for (int k = 0; k < kNumSparsities; ++k) {
        const Cell& c = r.cell[p][k];
        const double bytes = c.groups_read * kPackedBytes, product = (1.0 - kSparsities[k]) * kPackedBytes;
        const double masked_bytes = c.rows_read * r.masked_bytes;
        std::printf("| %lld × %lld | %.2f | %.1f | %.1f (%.2f×) | %.1f (%.2f×) | %.1f (%.2f×) | %.3f | %.3f | %.3f | %.3f | "
                    "%.3f | %.3f | %.3f |\n",
                    static_cast<long long>(r.shape.out), static_cast<long long>(r.shape.in), kSparsities[k],
                    r.cublas_us, c.act_us, r.cublas_us / c.act_us, c.nm_us, r.cublas_us / c.nm_us, c.masked_us,
                    r.cublas_us / c.masked_us, c.rows_read, c.groups_read, bytes, product, c.nm_us / r.cublas_us,
                    masked_bytes, c.masked_us / r.cublas_us);
        if (csv_out.is_open())
          csv_out << type_name << ',' << batch << ',' << r.shape.out << ',' << r.shape.in << ',' << kPatterns[p] << ','
                  << kSparsities[k] << ',' << r.cublas_us << ',' << c.act_us << ',' << c.nm_us << ',' << c.masked_us
                  << ',' << c.rows_read << ',' << c.groups_read << ',' << bytes << ',' << product << ','
                  << c.nm_us / r.cublas_us << ',' << masked_bytes << ',' << c.masked_us / r.cublas_us << ','
                  << config_str(c.act_config) << ',' << config_str(c.nm_config) << ',' << config_str(c.masked_config)
                  << '\n';
      }
  }
  cublasDestroy(handle);
  cudaFree(cublas_workspace);
  cudaStreamDestroy(stream);
  return 0;
}
