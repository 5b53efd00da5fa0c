// src/cuda/elem.h — the element type of the device buffers an op reads or writes in the
// precision of the weights (private to src/cuda and src/gpu; plain C++, host-includable).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

enum class Elem : uint8_t { kF32, kBf16, kF16 };

inline int elem_bytes(Elem e) { return e == Elem::kF32 ? 4 : 2; }

}  // namespace sparsa::cuda
