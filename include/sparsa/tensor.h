// sparsa/tensor.h — element types and the dense host tensor used for CPU compute.
//
// Convention (stated once, followed everywhere): tensors are row-major; a linear layer's
// weight is [out, in] like Hugging Face nn.Linear. CPU compute is fp32; fp16/bf16 exist on
// disk and on the GPU and are converted on load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sparsa {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
// The safetensors spelling: "F32", "BF16", "U8", ...
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_f16(float f);   // round to nearest even
uint16_t f32_to_bf16(float f);  // round to nearest even

// Converts n elements of a floating dtype (F64/F32/F16/BF16) at src to fp32 at dst.
// Other dtypes are a programmer error (SPARSA_ASSERT).
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);

// A dense row-major tensor that owns its elements.
template <typename T>
struct BasicTensor {
  std::vector<int64_t> shape;
  std::vector<T> data;

  BasicTensor() = default;
  explicit BasicTensor(std::vector<int64_t> s) : shape(std::move(s)), data(count(shape)) {}

  static size_t count(const std::vector<int64_t>& s) {
    size_t n = 1;
    for (int64_t d : s) n *= static_cast<size_t>(d);
    return n;
  }
  size_t numel() const { return data.size(); }
  int64_t dim(size_t i) const { return shape.at(i); }
  size_t rank() const { return shape.size(); }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
};

using Tensor = BasicTensor<float>;
using TensorI32 = BasicTensor<int32_t>;

// "[6, 384]" for messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace sparsa
