// src/cuda/sqsum.cuh — per-feature sums of squares, Wanda's input statistics (op: sqsum.cu).
// CPU reference: the observer of sparsa::prune_model (src/prune); the public face is
// sparsa::column_sqsum_cuda / column_norm_cuda (sparsa/cuda.h).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// acc[c] += Σ_t x[t, c]^2, summed in fp32 per slice of kSqsumSlice tokens and over slices in
// double, in a fixed order. x: [n_tokens, cols] fp32 (x_half null) or bf16/fp16 (x32 null);
// acc: [cols]; partial: scratch [ceil(n_tokens / kSqsumSlice), cols]. Default stream.
inline constexpr int64_t kSqsumSlice = 256;
void launch_col_sqsum(const float* x32, const void* x_half, bool half_bf16, double* acc, float* partial,
                      int64_t n_tokens, int64_t cols);
// out[c] = float(sqrt(float(acc[c] / samples))): the norm Wanda scales |w| with.
void launch_mean_sqrt(const double* acc, float* out, int64_t cols, int64_t samples);

}  // namespace sparsa::cuda
