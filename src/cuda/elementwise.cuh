// src/cuda/elementwise.cuh — in-place element-wise updates of the GPU model (op: elementwise.cu):
// masking pruned weights, adding a bias or a residual, scaling, ReLU, soft-capping. CPU reference: the loops of the same names in
// test-gpu-ops (each a one-line expression). Default stream.
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// w[i] = 0 where mask[i] != 0. w: [n] of `element_bytes` (4: fp32, 2: bf16/fp16) elements.
void launch_apply_mask(void* w, const uint8_t* mask, int64_t n, int element_bytes);
// y[r, c] += b[c]. y: [rows, cols], b: [cols]. Enqueues on `stream` (a cudaStream_t; nullptr: the
// default stream).
void launch_add_bias(float* y, const float* b, int64_t rows, int64_t cols, void* stream = nullptr);
// y[i] = x[i] * s; y may alias x. x, y: [n].
void launch_scale(float* y, const float* x, float s, int64_t n);
// y[i] += x[i]. x, y: [n].
void launch_add(float* y, const float* x, int64_t n);
// x[i] = 0 where |x[i]| <= t (ActivationSparsifier's zeroing; a negative t keeps every value).
void launch_zero_small(float* x, int64_t n, float t);
// x[i] = max(x[i], 0) (sparsa::relu). x: [n].
void launch_relu(float* x, int64_t n);
// x[i] = cap · tanh(x[i] / cap) (sparsa::softcap). x: [n].
void launch_softcap(float* x, int64_t n, float cap);

}  // namespace sparsa::cuda
