// src/gpu/host_staging.h — page-locked host memory for fast host <-> device copies of weights
// and masks (private to src/gpu). Pageable copies of a 7B block's weights run at a fraction of
// the link's rate; copies through this buffer run at its full rate, and the conversions and
// host-side copies around them use every CPU core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sparsa/gpu.h"

namespace sparsa::gpu {

class HostStaging {
 public:
  HostStaging() = default;
  ~HostStaging();
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;

  // dst (device, n elements of precision p) = src (host fp32 [n]) rounded to p (round to
  // nearest even, as the device conversion does).
  void upload(const float* src, int64_t n, void* dst, GpuPrecision p);
  // dst (host, `bytes`) = src (device). Synchronous.
  void download(const void* src, size_t bytes, void* dst);

  // The pinned buffer itself, grown to at least `bytes` (contents not kept), for callers that
  // fill or drain it on their own (e.g. from another thread while the GPU works).
  void* reserve(size_t bytes);
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Host fp32 [n] -> dst [n] in precision p (round to nearest even), on every core.
void convert_from_f32(const float* src, int64_t n, void* dst, GpuPrecision p);
// Host [n] in precision p -> fp32 dst [n], on every core.
void convert_to_f32(const void* src, int64_t n, float* dst, GpuPrecision p);

}  // namespace sparsa::gpu
