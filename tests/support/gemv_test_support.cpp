#include "gemv_test_support.h"

#include <cstring>
#include <random>

namespace sparsa::test {

std::vector<float> random_uniform(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> random_normal(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

RandomWeights random_weights(DType type, int64_t in, int64_t out, uint32_t seed) {
  RandomWeights w;
  w.values = random_uniform(static_cast<size_t>(in * out), -1.0f, 1.0f, seed);
  w.raw.resize(w.values.size() * dtype_size(type));
  for (size_t i = 0; i < w.values.size(); ++i) {
    const float v = w.values[i];
    if (type == DType::F32) {
      std::memcpy(w.raw.data() + 4 * i, &v, 4);
      continue;
    }
    const uint16_t h = type == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
    w.values[i] = type == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    std::memcpy(w.raw.data() + 2 * i, &h, 2);
  }
  return w;
}

std::string gpu_case_name(const ::testing::TestParamInfo<GpuCase>& info) {
  const auto& c = info.param;
  return std::string(dtype_name(c.type)) + "_b" + std::to_string(c.batch) + "_in" + std::to_string(c.in) + "_out" +
         std::to_string(c.out);
}

}  // namespace sparsa::test
