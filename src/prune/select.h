// Selection helpers shared by the pruning methods (internal).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "sparsa/prune.h"

namespace sparsa {

// Sets mask[i] = 1 for the k lowest of scores[0..count) (ties towards the lower index, as a
// stable ascending sort would order them). `scratch` is reused between calls.
void mark_lowest(const float* scores, int64_t count, int64_t k, uint8_t* mask, std::vector<int32_t>& scratch);

// scores: [rows, cols] -> per row, the n lowest of every group of m columns.
Mask nm_mask_from_scores(const float* scores, int64_t rows, int64_t cols, int n, int m);

// scores: [rows, cols] -> per row, the k lowest.
Mask row_lowest_mask(const float* scores, int64_t rows, int64_t cols, int64_t k);

// sorted(values)[k], like torch.sort(values)[0][k].
float kth_smallest(std::vector<float> values, int64_t k);

// Error(kBadInput) "<what> holds nan at [r, c]; ..." for the first NaN or Inf of v [n / cols, cols].
void check_finite_scores(const float* v, size_t n, int64_t cols, std::string_view what);

// floor(count * ratio), computed in double as the reference's int(numel * ratio).
inline int64_t ratio_count(int64_t count, double ratio) { return static_cast<int64_t>(static_cast<double>(count) * ratio); }

}  // namespace sparsa
