// Fuzzes the safetensors header parser: SafetensorsFile::open validates the header; every tensor
// it accepts must lie inside the mapping, which reading all of its bytes checks (ASan).
#include "fuzz_input.h"
#include "sparsa/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = sparsa::fuzz::write_input("input.safetensors", data, size);
  sparsa::fuzz::expect_parse_or_error([&] {
    const auto file = sparsa::SafetensorsFile::open(path);
    volatile uint8_t sum = 0;
    for (const sparsa::TensorInfo& t : file->tensors()) {
      if (t.nbytes != t.numel() * sparsa::dtype_size(t.dtype)) __builtin_trap();
      for (size_t i = 0; i < t.nbytes; ++i) sum = static_cast<uint8_t>(sum + t.data[i]);
    }
  });
  return 0;
}
