// Fuzzes the sharded checkpoint reader: the input is model.safetensors.index.json of a folder that
// also holds two small valid shards (a.safetensors, b.safetensors). TensorStore::open must accept
// it or throw sparsa::Error, and never open a shard outside the folder; every tensor it then
// lists must load.
#include <filesystem>

#include "fuzz_input.h"
#include "sparsa/safetensors.h"

namespace {

const std::filesystem::path& checkpoint_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path d = sparsa::fuzz::scratch_dir() / "ckpt";
    std::filesystem::create_directories(d);
    const float w[6] = {1, 2, 3, 4, 5, 6};
    sparsa::write_safetensors(d / "a.safetensors", {{"x.weight", sparsa::DType::F32, {2, 3}, w}});
    sparsa::write_safetensors(d / "b.safetensors", {{"y.weight", sparsa::DType::F32, {6}, w}});
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path dir = checkpoint_dir();
  sparsa::fuzz::write_input("ckpt/model.safetensors.index.json", data, size);
  sparsa::fuzz::expect_parse_or_error([&] {
    const auto store = sparsa::TensorStore::open(dir);
    for (const std::string& name : store->names()) (void)store->load_f32(name);
  });
  return 0;
}
