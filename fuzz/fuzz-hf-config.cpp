// Fuzzes config.json parsing (load_hf_config): accepted configs must be self-consistent enough
// for the shape arithmetic the loader does next.
#include "fuzz_input.h"
#include "sparsa/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = sparsa::fuzz::write_input("config.json", data, size);
  sparsa::fuzz::expect_parse_or_error([&] {
    const sparsa::ModelConfig c = sparsa::load_hf_config(path);
    volatile int64_t q = c.q_dim();
    (void)q;
  });
  return 0;
}
