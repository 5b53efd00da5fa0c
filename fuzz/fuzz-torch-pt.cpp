// Fuzzes the torch.save reader (zip archive + restricted unpickler) through load_torch_bytes;
// every tensor of an accepted file is converted, which reads every byte its view addresses.
#include <variant>

#include "fuzz_input.h"
#include "sparsa/torch_pt.h"

namespace {

void visit(const sparsa::PtValue& v, int depth) {
  if (depth > 1000) __builtin_trap();
  if (v.is<sparsa::PtTensor>()) {
    (void)v.as<sparsa::PtTensor>().contiguous_bytes();
    (void)v.as<sparsa::PtTensor>().to_f32();
  } else if (v.is<sparsa::PtList>()) {
    for (const auto& x : v.as<sparsa::PtList>().items) visit(x, depth + 1);
  } else if (v.is<sparsa::PtTuple>()) {
    for (const auto& x : v.as<sparsa::PtTuple>().items) visit(x, depth + 1);
  } else if (v.is<sparsa::PtDict>()) {
    for (const auto& item : v.as<sparsa::PtDict>().items()) visit(item.second, depth + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sparsa::fuzz::expect_parse_or_error([&] { visit(sparsa::load_torch_bytes(data, size, "fuzz.pt"), 0); });
  return 0;
}
