// The CPU reference of the activation-sparse GEMV (sparsa/sparse_gemv.h): the same function as
// the GPU kernel, accumulated in fp64 over the active inputs in ascending order; its fused form;
// and the threshold for a target sparsity.
#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sparsa {
namespace {

// Weight element (j, o) of wt [in, out] as fp32.
float weight_at(DType type, const void* wt, int64_t index) {
  switch (type) {
    case DType::F32: return static_cast<const float*>(wt)[index];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(wt)[index]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(wt)[index]);
    default: break;
  }
  SPARSA_ASSERT(false);
  return 0.0f;
}

}  // namespace

void sparse_gemv(const GemvShape& shape, const void* wt, const float* x, float* y, float threshold) {
  const auto [type, batch, in, out] = shape;
  if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
    bad_input("sparse_gemv: weight type {} is not supported (F32, F16 or BF16)", dtype_name(type));
  if (batch < 0 || in < 0 || out < 0)
    bad_input("sparse_gemv: negative size (batch {}, in {}, out {})", batch, in, out);

  std::vector<double> acc(static_cast<size_t>(out));  // [out]
  for (int64_t b = 0; b < batch; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const float* xb = x + b * in;
    for (int64_t j = 0; j < in; ++j) {
      if (!(std::abs(xb[j]) > threshold)) continue;
      const double xj = xb[j];
      for (int64_t o = 0; o < out; ++o) acc[o] += xj * weight_at(type, wt, j * out + o);
    }
    for (int64_t o = 0; o < out; ++o) y[b * out + o] = static_cast<float>(acc[o]);
  }
}

void sparse_gemv_fused(const GemvFusedShape& shape, std::span<const GemvPart> parts, const float* x) {
  if (shape.outs.empty() || shape.outs.size() > kGemvMaxParts)
    bad_input("sparse_gemv_fused: {} parts; a fused launch takes 1..{}", shape.outs.size(), kGemvMaxParts);
  if (parts.size() != shape.outs.size())
    bad_input("sparse_gemv_fused: {} parts given for a shape of {}", parts.size(), shape.outs.size());
  for (size_t m = 0; m < parts.size(); ++m) sparse_gemv(shape.part(m), parts[m].wt, x, parts[m].y, parts[m].threshold);
}

float sparsity_threshold(std::vector<float> values, float sparsity) {
  for (float& v : values) v = std::abs(v);
  const double s = std::clamp(static_cast<double>(sparsity), 0.0, 1.0);
  const auto k = static_cast<size_t>(std::llround(s * static_cast<double>(values.size())));
  if (k == 0) return -1.0f;
  std::nth_element(values.begin(), values.begin() + (k - 1), values.end());
  return values[k - 1];
}

}  // namespace sparsa
