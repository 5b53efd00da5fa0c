// The names of the devices and GPU precisions (sparsa/device.h).
#include "sparsa/device.h"

#include "sparsa/error.h"

namespace sparsa {

std::string_view device_name(Device d) {
  switch (d) {
    case Device::kCpu: return "cpu";
    case Device::kCuda: return "cuda";
  }
  return "?";
}

Device parse_device(std::string_view s) {
  for (Device d : {Device::kCpu, Device::kCuda})
    if (s == device_name(d)) return d;
  bad_input("unknown device '{}' (cpu or cuda)", s);
}

std::string_view gpu_precision_name(GpuPrecision p) {
  switch (p) {
    case GpuPrecision::kFp32: return "fp32";
    case GpuPrecision::kBf16: return "bf16";
    case GpuPrecision::kFp16: return "fp16";
  }
  return "?";
}

GpuPrecision parse_gpu_precision(std::string_view s) {
  for (GpuPrecision p : {GpuPrecision::kFp32, GpuPrecision::kBf16, GpuPrecision::kFp16})
    if (s == gpu_precision_name(p)) return p;
  bad_input("unknown GPU precision '{}' (fp32, bf16 or fp16)", s);
}

}  // namespace sparsa
