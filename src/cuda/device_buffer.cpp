// The size check of DeviceBuffer::upload; shared by the CUDA and the CPU-only builds.
#include "sparsa/cuda.h"
#include "sparsa/error.h"

namespace sparsa::detail {

void throw_device_buffer_overflow(size_t given, size_t capacity) {
  runtime_failure("DeviceBuffer::upload: {} elements do not fit in a buffer of {}", given, capacity);
}

}  // namespace sparsa::detail
