// bench-coactivation: all-pairs Hamming distances and k-means on a features x tokens bit matrix,
// sparsa against numpy / scikit-learn (bench/coactivation_reference.py) on identical inputs.
//
// The matrix is generated here, deterministically: 64 co-activation groups, each active on its
// own random subset of the tokens (5-30 %); 70 % of the features follow a group (set with
// probability 0.6 when the group is active) on top of their own base rate, drawn log-uniformly
// from 0.5 % to 30 %. It is written to DIR/bits.npy (uint8 [features, tokens / 8], bits LSB
// first = numpy.unpackbits(bitorder="little")), together with the k-means++ seeding as
// DIR/init.npy (float32 [k, tokens]) and the sampled pairs, then the Python side runs on the
// same files and its timings and results come back through DIR/reference.json.
//
// usage: bench-coactivation [--features N] [--tokens N] [--k N] [--seed N] [--dir DIR]
//                           [--python EXE] [--no-reference] [--threads N] [--isa auto|avx2|avx512]
//                           [--repeat N]
// --isa avx2 runs the AVX2 kernels on an AVX-512 CPU: what a CPU without AVX-512 runs.
// --repeat N (default 3): both sides time all-pairs Hamming (into a fresh buffer each time) and
// Lloyd N times and report the first run (what a script that calls each once pays) and the run of
// median wall time. They differ: scikit-learn's first KMeans fit in a process is about 3x its later
// ones. Before either side runs, the bench writes and frees 4 GiB: on a virtual machine the first
// touch of memory the guest has not used yet also costs the host's page faults (measured: a first
// Hamming run of 1.04 s, then 0.44 s), which would otherwise fall on whichever side ran first.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "machine.h"
#include "sparsa/coactivation.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Wall-clock and CPU seconds (all threads of the process) of one call: on a shared machine the
// CPU seconds are the fairer comparison, both are reported.
struct Seconds {
  double wall = 0, cpu = 0;
};
template <typename F>
Seconds timed(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  f();
  return {seconds_since(t0), static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC};
}

// The first of n calls (n >= 1) and the one of median wall time.
struct Repeated {
  Seconds first, median;
};
template <typename F>
Repeated repeated(int n, F&& f) {
  std::vector<Seconds> runs;
  for (int i = 0; i < n; ++i) runs.push_back(timed(f));
  const Seconds first = runs.front();
  std::sort(runs.begin(), runs.end(), [](const Seconds& a, const Seconds& b) { return a.wall < b.wall; });
  return {first, runs[runs.size() / 2]};
}
Seconds seconds_of(const nlohmann::json& wall_cpu) { return {wall_cpu[0].get<double>(), wall_cpu[1].get<double>()}; }

double unit(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * 0x1.0p-53; }

sparsa::BitMatrix generate(int64_t features, int64_t tokens, uint64_t seed) {
  constexpr int kGroups = 64;
  std::mt19937_64 g(seed);
  std::vector<std::vector<bool>> group_on(kGroups, std::vector<bool>(static_cast<size_t>(tokens)));  // [groups][tokens]
  for (auto& on : group_on) {
    const double rate = 0.05 + 0.25 * unit(g);
    for (int64_t t = 0; t < tokens; ++t) on[t] = unit(g) < rate;
  }
  sparsa::BitMatrix m(features, tokens);
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t f = 0; f < features; ++f) {
    std::mt19937_64 r(seed * 1000003 + static_cast<uint64_t>(f));
    const double base = 0.005 * std::pow(60.0, unit(r));  // 0.5 % .. 30 %
    const int group = unit(r) < 0.7 ? static_cast<int>(r() % kGroups) : -1;
    for (int64_t t = 0; t < tokens; ++t)
      if (unit(r) < base || (group >= 0 && group_on[group][t] && unit(r) < 0.6)) m.set(f, t);
  }
  return m;
}

// A minimal .npy (version 1.0) writer for a C-order array.
void write_npy(const std::filesystem::path& path, const char* dtype, const std::vector<int64_t>& shape,
               const void* data, size_t bytes) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = std::string("{'descr': '") + dtype + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  header.resize(((header.size() + 11) / 64 + 1) * 64 - 11, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

int main(int argc, char** argv) {
  int64_t features = 11008, tokens = 16384, pairs = 100000;
  int k = 16, repeat = 3;
  uint64_t seed = 1;
  std::string dir = "bench-coactivation-data", python = "python3";
  bool reference = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-reference") { reference = false; continue; }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: bench-coactivation [--features N] [--tokens N] [--k N] [--seed N] [--dir DIR] "
                           "[--python EXE] [--no-reference] [--threads N] [--isa auto|avx2|avx512] [--repeat N]\n");
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--features") features = std::stoll(v);
    else if (a == "--tokens") tokens = std::stoll(v);
    else if (a == "--k") k = std::stoi(v);
    else if (a == "--seed") seed = std::stoull(v);
    else if (a == "--dir") dir = v;
    else if (a == "--python") python = v;
    else if (a == "--repeat" && std::stoi(v) >= 1) repeat = std::stoi(v);
    else if (a == "--threads") omp_set_num_threads(std::stoi(v));
    else if (a == "--isa" && (v == "auto" || v == "avx2" || v == "avx512"))
      sparsa::force_kernel_isa(v == "avx2" ? sparsa::KernelIsa::kAvx2 : v == "avx512" ? sparsa::KernelIsa::kAvx512 : sparsa::KernelIsa::kAuto);
    else { std::fprintf(stderr, "unknown flag %s\n", a.c_str()); return 2; }
  }
  if (tokens % 8 != 0) { std::fprintf(stderr, "--tokens must be a multiple of 8\n"); return 2; }
  std::filesystem::create_directories(dir);

  auto t0 = std::chrono::steady_clock::now();
  {  // see the header: memory the host has backed, for both sides
    std::vector<uint8_t> warm(size_t{4} << 30);
    for (size_t i = 0; i < warm.size(); i += 4096) warm[i] = 1;
  }
  const sparsa::BitMatrix m = generate(features, tokens, seed);
  std::fprintf(stderr, "generated %lld x %lld bits in %.1f s\n", static_cast<long long>(features),
               static_cast<long long>(tokens), seconds_since(t0));
  std::vector<uint8_t> bytes(static_cast<size_t>(features * tokens / 8));  // [features, tokens / 8]
  for (int64_t f = 0; f < features; ++f)
    std::memcpy(bytes.data() + f * tokens / 8, m.row(f), static_cast<size_t>(tokens / 8));
  write_npy(std::filesystem::path(dir) / "bits.npy", "|u1", {features, tokens / 8}, bytes.data(), bytes.size());

  // Hamming, all pairs.
  // Into a fresh, uninitialised buffer (as numpy's product gets one): [features, features].
  const auto n2 = static_cast<size_t>(features * features);
  std::unique_ptr<int32_t[]> ham;
  const Repeated ham_runs = repeated(repeat, [&] {
    ham.reset();  // one result held at a time, as on the Python side
    ham.reset(new int32_t[n2]);
    sparsa::hamming_all_pairs_into(m, {ham.get(), n2});
  });
  bool popcount_same = false;  // the popcount kernel alone, for the table (and its equality)
  const Seconds popcount_s = timed([&] {
    std::unique_ptr<int32_t[]> d(new int32_t[n2]);
    sparsa::hamming_all_pairs_into(m, {d.get(), n2}, sparsa::AllPairsMethod::kPopcount);
    popcount_same = std::equal(d.get(), d.get() + n2, ham.get());
  });
  std::mt19937_64 g(seed + 7);
  std::vector<int64_t> pair_idx(static_cast<size_t>(2 * pairs));  // [pairs, 2]
  for (int64_t& v : pair_idx) v = static_cast<int64_t>(g() % static_cast<uint64_t>(features));
  write_npy(std::filesystem::path(dir) / "pairs.npy", "<i8", {pairs, 2}, pair_idx.data(), pair_idx.size() * 8);

  // k-means: one seeding, then Lloyd from it (what scikit-learn gets as init).
  sparsa::KMeansOptions opt;
  opt.k = k;
  std::vector<float> init;  // [k, tokens]
  const Seconds seed_s = timed([&] { init = sparsa::kmeans_plus_plus(m, k, seed); });
  write_npy(std::filesystem::path(dir) / "init.npy", "<f4", {k, tokens}, init.data(), init.size() * 4);
  sparsa::KMeansResult km;
  const Repeated lloyd_runs = repeated(repeat, [&] { km = sparsa::kmeans_from(m, init, opt); });
  const Seconds ham_s = ham_runs.first, lloyd_s = lloyd_runs.first;
  const sparsa::ClusterQuality q = sparsa::cluster_quality(m, km.labels, k);

  std::printf("machine: %s, %d threads, popcount kernel %s, bit-sliced kernel %s\n", sparsa::bench::cpu_model().c_str(),
              omp_get_max_threads(), sparsa::active_hamming_kernels().popcount, sparsa::active_hamming_kernels().bitsliced);
  int64_t set = 0;
  for (int64_t f = 0; f < features; ++f) set += m.row_count(f);
  const double density = static_cast<double>(set) / static_cast<double>(features * tokens);
  const bool sliced = sparsa::bitsliced_hamming_available() && density <= sparsa::kBitSlicedMaxDensity;
  std::printf("input: %lld features x %lld tokens, %.2f %% bits set (seed %llu)\n\n", static_cast<long long>(features),
              static_cast<long long>(tokens), 100.0 * density, static_cast<unsigned long long>(seed));
  std::printf("sparsa: all-pairs Hamming %.3f s (CPU %.3f s, %s kernel; the popcount kernel alone %.3f s, CPU %.3f s, "
              "%s), k-means++ seeding %.3f s (CPU %.3f s), Lloyd %d iterations %.3f s (CPU %.3f s); first runs "
              "(median of %d: Hamming %.3f s, Lloyd %.3f s)\n",
              ham_s.wall, ham_s.cpu, sliced ? "bit-sliced" : "popcount", popcount_s.wall, popcount_s.cpu,
              popcount_same ? "identical distances" : "DIFFERENT DISTANCES", seed_s.wall, seed_s.cpu, km.iterations,
              lloyd_s.wall, lloyd_s.cpu, repeat, ham_runs.median.wall, lloyd_runs.median.wall);
  if (!reference) return 0;
  const std::string cmd = python + " " + std::string(SPARSA_SOURCE_DIR) + "/bench/coactivation_reference.py " + dir + " " + std::to_string(repeat);
  std::fprintf(stderr, "running %s\n", cmd.c_str());
  if (std::system(cmd.c_str()) != 0) { std::fprintf(stderr, "the reference script failed\n"); return 1; }
  const nlohmann::json ref = nlohmann::json::parse(std::ifstream(std::filesystem::path(dir) / "reference.json"));

  int64_t pair_mismatch = 0, row_mismatch = 0;
  const auto& sample = ref["hamming_sample"];
  for (int64_t p = 0; p < pairs; ++p)
    pair_mismatch += sample[p].get<int64_t>() != ham[pair_idx[2 * p] * features + pair_idx[2 * p + 1]];
  const auto& row_sums = ref["hamming_row_sums"];
  for (int64_t f = 0; f < features; ++f) {
    int64_t s = 0;
    for (int64_t j = 0; j < features; ++j) s += ham[f * features + j];
    row_mismatch += row_sums[f].get<int64_t>() != s;
  }
  const std::vector<int32_t> sk_labels = ref["labels"].get<std::vector<int32_t>>();
  const double inertia = ref["inertia"].get<double>();
  const double ari = sparsa::adjusted_rand_index(km.labels, sk_labels);

  std::printf("reference: numpy %s, scikit-learn %s, %d CPUs\n\n", ref["numpy"].get<std::string>().c_str(),
              ref["sklearn"].get<std::string>().c_str(), ref["cpus"].get<int>());
  const Seconds ref_ham = seconds_of(ref["hamming_seconds"]), ref_km = seconds_of(ref["kmeans_seconds"]);
  const Seconds ref_ham_median = seconds_of(ref["hamming_median_seconds"]);
  const Seconds ref_km_median = seconds_of(ref["kmeans_median_seconds"]);
  std::printf("\n| task | sparsa s (CPU s) | numpy / scikit-learn s (CPU s) | speed-up wall (CPU) | agreement |\n"
              "|---|---:|---:|---:|---|\n");
  std::printf("| all-pairs Hamming, %lld x %lld, first run | %.3f (%.3f) | %.3f (%.3f) | %.1fx (%.1fx) | %lld / %lld sampled pairs "
              "differ, %lld / %lld row sums differ |\n",
              static_cast<long long>(features), static_cast<long long>(features), ham_s.wall, ham_s.cpu, ref_ham.wall,
              ref_ham.cpu, ref_ham.wall / ham_s.wall, ref_ham.cpu / ham_s.cpu, static_cast<long long>(pair_mismatch),
              static_cast<long long>(pairs), static_cast<long long>(row_mismatch), static_cast<long long>(features));
  std::printf("| all-pairs Hamming, popcount kernel only | %.3f (%.3f) | | %.1fx (%.1fx) | %s |\n", popcount_s.wall,
              popcount_s.cpu, ref_ham.wall / popcount_s.wall, ref_ham.cpu / popcount_s.cpu,
              popcount_same ? "every distance equal to the row above" : "DIFFERS from the row above");
  std::printf("| k-means k = %d, Lloyd from the same k-means++ seeding, first run | %.3f (%.3f), %d it | %.3f (%.3f), %d it | "
              "%.1fx (%.1fx) | objective %.6g vs %.6g (%+.4f %%), ARI of labels %.4f |\n",
              k, lloyd_s.wall, lloyd_s.cpu, km.iterations, ref_km.wall, ref_km.cpu, ref["n_iter"].get<int>(),
              ref_km.wall / lloyd_s.wall, ref_km.cpu / lloyd_s.cpu, km.objective, inertia,
              100.0 * (km.objective - inertia) / inertia, ari);
  // The same tasks, each side's run of median wall time of --repeat (warm memory, warm libraries).
  std::printf("| all-pairs Hamming, median of %d runs | %.3f (%.3f) | %.3f (%.3f) | %.1fx (%.1fx) | as above |\n", repeat,
              ham_runs.median.wall, ham_runs.median.cpu, ref_ham_median.wall, ref_ham_median.cpu,
              ref_ham_median.wall / ham_runs.median.wall, ref_ham_median.cpu / ham_runs.median.cpu);
  std::printf("| k-means, median of %d runs | %.3f (%.3f) | %.3f (%.3f) | %.1fx (%.1fx) | as above |\n", repeat,
              lloyd_runs.median.wall, lloyd_runs.median.cpu, ref_km_median.wall, ref_km_median.cpu,
              ref_km_median.wall / lloyd_runs.median.wall, ref_km_median.cpu / lloyd_runs.median.cpu);
  std::printf("\nclusters: separation %.3f (between %.4f / within %.4f), sizes", q.separation, q.between, q.within);
  for (int64_t size : q.sizes) std::printf(" %lld", static_cast<long long>(size));
  std::printf("\n");
  std::printf("numpy unpacking the bits to float32 (untimed above): %.3f s\n", ref["unpack_seconds"].get<double>());
  return popcount_same && pair_mismatch == 0 && row_mismatch == 0 && std::abs(km.objective - inertia) <= 0.01 * inertia ? 0 : 1;
}
