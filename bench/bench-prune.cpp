// bench-prune: CPU time per pruning method and stage on the demo model with the golden
// calibration set (128 x 512 tokens), as the reference procedure runs it.
//
// usage: bench-prune [--model DIR] [--calib FILE] [--nsamples N] [--threads N]
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "machine.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"

int main(int argc, char** argv) {
  std::string model_dir = std::string(SPARSA_SOURCE_DIR) + "/models/tiny-llama-15m";
  std::string calib_file = std::string(SPARSA_SOURCE_DIR) + "/../shared/golden/tokens.safetensors";
  int64_t nsamples = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) { std::fprintf(stderr, "usage: bench-prune [--model DIR] [--calib FILE] [--nsamples N] [--threads N]\n"); return 2; }
    const std::string v = argv[++i];
    if (a == "--model") model_dir = v;
    else if (a == "--calib") calib_file = v;
    else if (a == "--nsamples") nsamples = std::stoll(v);
    else if (a == "--threads") omp_set_num_threads(std::stoi(v));
    else { std::fprintf(stderr, "unknown flag %s\n", a.c_str()); return 2; }
  }
  const sparsa::Model dense = sparsa::load_model(model_dir);
  sparsa::TensorI32 calib = sparsa::TensorStore::open(calib_file)->load_i32("calib");
  nsamples = std::min(nsamples, calib.dim(0));
  calib.shape[0] = nsamples;
  calib.data.resize(static_cast<size_t>(nsamples * calib.dim(1)));

  std::printf("machine: %s, %d threads\n", sparsa::bench::cpu_model().c_str(), omp_get_max_threads());
  std::printf("model: %s, calibration %lld x %lld tokens\n\n", model_dir.c_str(), static_cast<long long>(nsamples),
              static_cast<long long>(calib.dim(1)));
  std::printf("| method | target | calibration forward s | statistics s | selection/update s | total s |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  for (auto method : {sparsa::PruneMethod::kMagnitude, sparsa::PruneMethod::kWanda, sparsa::PruneMethod::kSparseGPT})
    for (const char* target : {"0.5", "2:4", "4:8"}) {
      sparsa::Model m = dense;
      sparsa::PruneOptions opt;
      opt.method = method;
      opt.target = std::string(target).find(':') != std::string::npos ? sparsa::parse_nm(target) : sparsa::parse_sparsity(target);
      const auto r = sparsa::prune_model(m, calib, opt);
      std::printf("| %s | %s | %.2f | %.2f | %.2f | %.2f |\n", std::string(sparsa::prune_method_name(method)).c_str(),
                  opt.target.label().c_str(), r.timings.forward, r.timings.stats, r.timings.select, r.timings.total);
      std::fflush(stdout);
    }
  std::printf("\nstatistics time includes the dense forward pass the observers ride on.\n");
  return 0;
}
