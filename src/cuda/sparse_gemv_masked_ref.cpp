// The unstructured-mask packer and the CPU reference of its GEMV (sparsa/sparse_gemv_masked.h).
#include "sparsa/error.h"
#include "sparsa/sparse_gemv_masked.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sparsa {
namespace {

constexpr int64_t kMaskBytes = kGemvMaskTile / 8;  // per (row, tile)
constexpr int64_t kSegmentAlign = 8;               // values per 16 bytes

void check_args(const char* who, DType type, int64_t in, int64_t out) {
  if (type != DType::F16 && type != DType::BF16)
    bad_input("{}: weight type {} is not supported (F16 or BF16)", who, dtype_name(type));
  if (in < 1 || out < 1) bad_input("{}: in {} and out {} must be at least 1", who, in, out);
}

}  // namespace

GemvMaskedWeights pack_gemv_masked(DType type, int64_t in, int64_t out, const void* wt, const uint8_t* mask) {
  check_args("pack_gemv_masked", type, in, out);
  const auto* w = static_cast<const uint16_t*>(wt);  // [in, out]
  const int64_t tiles = gemv_mask_tiles(out);
  GemvMaskedWeights p{type, in, out, std::vector<uint8_t>(static_cast<size_t>(in * tiles * kMaskBytes), 0),
                      std::vector<uint32_t>(static_cast<size_t>(in * tiles)), {}};
  std::vector<uint16_t> values;  // padded segments
  for (int64_t j = 0; j < in; ++j)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t units = static_cast<int64_t>(values.size()) / kSegmentAlign;
      if (units > UINT32_MAX) bad_input("pack_gemv_masked: more than 2^35 kept values");
      p.offsets[static_cast<size_t>(j * tiles + t)] = static_cast<uint32_t>(units);
      uint8_t* bits = p.masks.data() + (j * tiles + t) * kMaskBytes;
      for (int64_t c = 0; c < kGemvMaskTile && t * kGemvMaskTile + c < out; ++c) {
        const int64_t at = j * out + t * kGemvMaskTile + c;
        if (mask ? mask[at] == 0 : (w[at] & 0x7fffu) == 0) continue;
        bits[c / 8] |= static_cast<uint8_t>(1u << (c % 8));
        values.push_back(w[at]);
      }
      values.resize((values.size() + kSegmentAlign - 1) / kSegmentAlign * kSegmentAlign, 0);
    }
  p.values.resize(values.size() * 2);
  std::copy_n(reinterpret_cast<const uint8_t*>(values.data()), p.values.size(), p.values.data());
  return p;
}

void sparse_gemv_masked(const GemvShape& shape, const void* values, const uint8_t* masks, const uint32_t* offsets,
                        const float* x, float* y, float threshold) {
  const auto [type, batch, in, out] = shape;
  check_args("sparse_gemv_masked", type, in, out);
  if (batch < 0) bad_input("sparse_gemv_masked: negative batch {}", batch);
  const auto* v = static_cast<const uint16_t*>(values);
  const int64_t tiles = gemv_mask_tiles(out);
  std::vector<double> acc(static_cast<size_t>(out));  // [out]
  for (int64_t b = 0; b < batch; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t j = 0; j < in; ++j) {
      const float xj = x[b * in + j];
      if (!(std::abs(xj) > threshold)) continue;
      for (int64_t t = 0; t < tiles; ++t) {
        const uint8_t* bits = masks + (j * tiles + t) * kMaskBytes;
        const uint16_t* seg = v + static_cast<int64_t>(offsets[j * tiles + t]) * kSegmentAlign;
        for (int64_t c = 0; c < kGemvMaskTile && t * kGemvMaskTile + c < out; ++c) {
          if (!((bits[c / 8] >> (c % 8)) & 1u)) continue;
          const float wv = type == DType::F16 ? f16_to_f32(*seg) : bf16_to_f32(*seg);
          ++seg;
          acc[static_cast<size_t>(t * kGemvMaskTile + c)] += static_cast<double>(xj) * wv;
        }
      }
    }
    for (int64_t o = 0; o < out; ++o) y[b * out + o] = static_cast<float>(acc[static_cast<size_t>(o)]);
  }
}

}  // namespace sparsa
