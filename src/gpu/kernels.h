// src/gpu/kernels.h — launchers of the GPU model's kernels (private to src/gpu). Each is defined
// in the .cu file named beside it, enqueues on the default stream and checks the launch.
// Arguments are valid here (sizes > 0, within grid limits); callers in *.cpp validate.
// Element types: `half_bf16` selects bf16 (true) or fp16 (false) for the void* half buffers.
#pragma once

#include <cstdint>

namespace sparsa::gpu {

// ---- convert.cu ----
// y[i] = half(x[i]) (round to nearest even). x: [n] fp32, y: [n] bf16/fp16. `stream`: a
// cudaStream_t (nullptr: the default stream).
void launch_to_half(const float* x, void* y, int64_t n, bool half_bf16, void* stream = nullptr);
// y[i] = float(x[i]). x: [n] bf16/fp16, y: [n] fp32.
void launch_from_half(const void* x, float* y, int64_t n, bool half_bf16);
// w[i] = 0 where mask[i] != 0. w: [n] of `element_bytes` (4: fp32, 2: bf16/fp16) elements.
void launch_apply_mask(void* w, const uint8_t* mask, int64_t n, int element_bytes);
// y[r, c] += b[c]. y: [rows, cols], b: [cols].
void launch_add_bias(float* y, const float* b, int64_t rows, int64_t cols);
// x[t, :] = table[tokens[t], :]. table: [vocab, dim], x: [n, dim]; ids already validated.
void launch_gather_rows(const float* table, const int32_t* tokens, float* x, int64_t n, int64_t dim);
// y[i] = x[i] * s.
void launch_scale(float* y, const float* x, float s, int64_t n);

// ---- attention.cu ----
// scores: [n_rows, seqlen] fp32, row r is query position r % seqlen; writes p [n_rows, seqlen]
// (fp32 when half_out is false, else bf16/fp16): softmax over keys 0..pos of scores * scale,
// zero for later keys.
void launch_causal_softmax(const float* scores, void* p, int64_t n_rows, int64_t seqlen, float scale,
                           bool half_out, bool half_bf16);

// ---- nll.cu ----
// logits: [n, vocab]; targets: [n] -> nll[t] = logsumexp(logits[t]) - logits[t, targets[t]], in
// double from the fp32 max and sum (the CPU reference's expression).
void launch_row_nll(const float* logits, const int32_t* targets, double* nll, int64_t n, int64_t vocab);

// ---- stats.cu ----
// acc[c] += Σ_t x[t, c]^2, summed in fp32 per slice of kSqsumSlice tokens and over slices in
// double, in a fixed order. x: [n_tokens, cols] fp32 (x_half null) or bf16/fp16 (x32 null);
// acc: [cols]; partial: scratch [ceil(n_tokens / kSqsumSlice), cols].
inline constexpr int64_t kSqsumSlice = 256;
void launch_col_sqsum(const float* x32, const void* x_half, bool half_bf16, double* acc, float* partial,
                      int64_t n_tokens, int64_t cols);
// out[c] = float(sqrt(float(acc[c] / samples))): the norm Wanda scales |w| with.
void launch_mean_sqrt(const double* acc, float* out, int64_t cols, int64_t samples);

// ---- wanda.cu ----
// score = |w| * norm[c]; unstructured: per row the k lowest (ties towards the lower column);
// N:M: per row the n lowest of every group of m. mask [rows, cols], 1 = pruned.
void launch_row_lowest(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols, int64_t k);
void launch_nm_lowest(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols, int n, int m);

// ---- sparsegpt.cu ----
inline constexpr int kSparseGptMaxBlock = 128;
// Dead inputs: h[j, j] == 0 -> h[j, j] = 1 and w[:, j] = 0. Then h[j, j] += percdamp * mean(diag).
// h: [cols, cols], w: [rows, cols].
void launch_sparsegpt_prepare(float* h, float* w, int64_t rows, int64_t cols, float percdamp);
// Zeroes the strict lower triangle of the row-major h [n, n].
void launch_zero_lower(float* h, int64_t n);
// score[r, c] = w[r, i1 + c]^2 / hinv[i1 + c, i1 + c]^2 for c < count. score: [rows, count].
void launch_block_scores(const float* w, const float* hinv, float* score, int64_t rows, int64_t cols, int64_t i1,
                         int64_t count);
// One column block [i1, i1 + count) of every row: select (unstructured: score <= thresh, else
// N:M), then the column-by-column update with Hinv[i1:, i1:]; writes Q into w, the mask, and
// err [rows, count]. count <= kSparseGptMaxBlock.
void launch_sparsegpt_block(float* w, const float* hinv, uint8_t* mask, float* err, int64_t rows, int64_t cols,
                            int64_t i1, int64_t count, float thresh, int n, int m);

}  // namespace sparsa::gpu

namespace sparsa::gpu {
// Bytes of scratch launch_kth_smallest needs for n values.
size_t kth_smallest_temp_bytes(int64_t n);
// sorted(values)[k] (like torch.sort(values)[0][k]) for n finite values >= 0; `sorted` [n] and
// `temp` are scratch. Waits for the result (one small device-to-host copy).
float kth_smallest_device(const float* values, float* sorted, void* temp, size_t temp_bytes, int64_t n, int64_t k);
}  // namespace sparsa::gpu
