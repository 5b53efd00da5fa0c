// Fuzzes tokenizer.json loading (HfTokenizer::load); an accepted tokenizer then encodes and
// decodes a fixed text with ASCII, accents (precomposed and combining), a ligature, emoji.
#include "fuzz_input.h"
#include "sparsa/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = sparsa::fuzz::write_input("tokenizer.json", data, size);
  sparsa::fuzz::expect_parse_or_error([&] {
    const auto tok = sparsa::HfTokenizer::load(path);
    const std::vector<int32_t> ids = tok->encode(
        "Hello, w\xC3\xB6rld!  It's 2024 \xF0\x9F\x98\x80 <s>ok</s> "
        "Cafe\xCC\x81 \xEF\xAC\x81 \xC4\xB0",
        true);
    (void)tok->decode(ids, false);
    (void)tok->decode({0, 1, 2, -1, 1 << 30}, true);
  });
  return 0;
}
