// Fuzzes the activation thresholds file (read_thresholds_file, written by `sparsa acts
// --thresholds-out`, read by `sparsa generate --thresholds`): an accepted file has one row of four
// finite thresholds per layer in every set, sets in ascending sparsity, and selecting its first
// set's sparsity at every point works.
#include <cmath>

#include "fuzz_input.h"
#include "sparsa/activations.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = sparsa::fuzz::write_input("thresholds.json", data, size);
  sparsa::fuzz::expect_parse_or_error([&] {
    const sparsa::ThresholdsFile f = sparsa::read_thresholds_file(path);
    double previous = -1;
    for (const auto& set : f.sets) {
      if (!(set.sparsity > previous) || set.sparsity >= 1.0) std::abort();
      if (static_cast<int64_t>(set.t.size()) != f.model.num_layers) std::abort();
      for (const auto& row : set.t)
        for (float t : row)
          if (!std::isfinite(t)) std::abort();
      previous = set.sparsity;
    }
    const double s = f.sets.front().sparsity;
    if (s > 0) (void)sparsa::select_thresholds(f, sparsa::PointTargets{s, s, s, s}, path);
  });
  return 0;
}
