// src/cuda/wanda_select.cuh — Wanda's per-row selection (op: wanda_select.cu).
// CPU reference: sparsa::wanda_mask (sparsa/prune.h), the same selection (ties towards the
// lower column, as a stable sort orders them).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// score = |w| * norm[c]. w: [rows, cols], norm: [cols], mask: [rows, cols], 1 = pruned.
// Unstructured: per row the k lowest scores. Default stream.
void launch_row_lowest(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols, int64_t k);
// N:M: per row the n lowest of every group of m consecutive columns (cols % m == 0).
void launch_nm_lowest(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols, int n, int m);

}  // namespace sparsa::cuda
