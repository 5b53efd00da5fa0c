// src/cuda/launch_util.cuh — grid sizing and element-type dispatch shared by the ops' .cu files
// (private to src/cuda; device code).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/elem.h"

namespace sparsa::cuda {

// Blocks of `threads` for a grid-stride loop over n elements: at least 1, at most max_blocks.
inline unsigned grid_stride_blocks(int64_t n, int threads, int64_t max_blocks) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : b > max_blocks ? max_blocks : b);
}

template <typename T>
struct ElemTag {
  using type = T;
};

// Calls f(ElemTag<T>{}) with T the device type of e (float, __nv_bfloat16, __half).
template <typename F>
void with_elem(Elem e, F&& f) {
  switch (e) {
    case Elem::kF32: f(ElemTag<float>{}); break;
    case Elem::kBf16: f(ElemTag<__nv_bfloat16>{}); break;
    case Elem::kF16: f(ElemTag<__half>{}); break;
  }
}

}  // namespace sparsa::cuda
