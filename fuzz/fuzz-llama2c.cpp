// Fuzzes the llama2.c readers. The first input byte picks the file: even = a checkpoint .bin
// (load_llama2c_model), odd = a tokenizer.bin (Llama2cTokenizer::load for a vocab of 64, then
// encode and decode with it). The rest of the input is the file.
#include "fuzz_input.h"
#include "sparsa/model.h"
#include "sparsa/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool tokenizer = data[0] & 1;
  const auto path = sparsa::fuzz::write_input(tokenizer ? "tok.bin" : "model.bin", data + 1, size - 1);
  sparsa::fuzz::expect_parse_or_error([&] {
    if (tokenizer) {
      const auto tok = sparsa::Llama2cTokenizer::load(path, 64);
      const std::vector<int32_t> ids = tok->encode("Once upon a time \xC3\xA9\xF0\x9F\x98\x80", true, true);
      int32_t prev = 1;
      for (int32_t id : ids) {
        (void)tok->decode_piece(prev, id);
        prev = id;
      }
    } else {
      (void)sparsa::load_llama2c_model(path);
    }
  });
  return 0;
}
