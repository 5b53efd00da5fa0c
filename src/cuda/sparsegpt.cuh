// src/cuda/sparsegpt.cuh — SparseGPT's device steps (op: sparsegpt.cu): Hessian preparation, the
// block scores of the unstructured threshold, the fused column-block update, and the k-th
// smallest value. CPU reference: sparsa::sparsegpt_prune (sparsa/prune.h) for the whole
// procedure; test-gpu-ops checks each step against its expression. Default stream.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparsa::cuda {

inline constexpr int kSparseGptMaxBlock = 128;

// Dead inputs: h[j, j] == 0 -> h[j, j] = 1 and w[:, j] = 0. Then h[j, j] += percdamp * mean(diag).
// h: [cols, cols], w: [rows, cols].
void launch_sparsegpt_prepare(float* h, float* w, int64_t rows, int64_t cols, float percdamp);
// Zeroes the strict lower triangle of the row-major h [n, n].
void launch_zero_lower(float* h, int64_t n);
// score[r, c] = w[r, i1 + c]^2 / hinv[i1 + c, i1 + c]^2 for c < count. score: [rows, count].
void launch_block_scores(const float* w, const float* hinv, float* score, int64_t rows, int64_t cols, int64_t i1,
                         int64_t count);
// One column block [i1, i1 + count) of every row: select (unstructured, n == 0: score <= thresh;
// else N:M), then the column-by-column update with Hinv[i1:, i1:] (upper triangle); writes Q into
// w, the mask (1 = pruned) and err [rows, count]. count <= kSparseGptMaxBlock.
void launch_sparsegpt_block(float* w, const float* hinv, uint8_t* mask, float* err, int64_t rows, int64_t cols,
                            int64_t i1, int64_t count, float thresh, int n, int m);

// Bytes of scratch kth_smallest_device needs for n values.
size_t kth_smallest_temp_bytes(int64_t n);
// sorted(values)[k] (like torch.sort(values)[0][k]) for n finite values >= 0; `sorted` [n] and
// `temp` are scratch. Waits for the result (one small device-to-host copy).
float kth_smallest_device(const float* values, float* sorted, void* temp, size_t temp_bytes, int64_t n, int64_t k);

}  // namespace sparsa::cuda
