// llama2.c checkpoints (the legacy "version 0" .bin written by export.py / model.py):
// 7 int32 header fields, then fp32 weights in a fixed order. A negative vocab_size means the
// classifier is stored separately (unshared) at the end.
#include <cstring>
#include <string>

#include "sparsa/error.h"
#include "sparsa/input_file.h"
#include "sparsa/model.h"

namespace sparsa {
namespace {

struct Llama2cHeader {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// Reads consecutive fp32 tensors from the weight section, checking they stay inside it.
class WeightCursor {
 public:
  explicit WeightCursor(const std::vector<float>& data) : data_(data) {}
  Tensor take(std::vector<int64_t> shape) {
    Tensor t(std::move(shape));
    SPARSA_ASSERT(pos_ + t.numel() <= data_.size());  // sizes were checked against the header
    std::memcpy(t.ptr(), data_.data() + pos_, t.numel() * sizeof(float));
    pos_ += t.numel();
    return t;
  }
  void skip(size_t n) { pos_ += n; }

 private:
  const std::vector<float>& data_;
  size_t pos_ = 0;
};

// llama2.c rotates adjacent pairs (2i, 2i+1) of each head; the forward pass here rotates
// (i, i + head_dim/2) like HF. Reordering the rows of wq and wk so that old row 2i becomes
// row i and 2i+1 becomes i + head_dim/2 makes the two identical (q·k is unchanged because
// q and k are permuted alike).
Tensor interleaved_to_half_rows(const Tensor& w, int64_t n_heads, int64_t head_dim) {
  Tensor out(w.shape);
  const int64_t cols = w.dim(1), half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < head_dim; ++i) {
      const int64_t dst = h * head_dim + (i % 2 == 0 ? i / 2 : half + i / 2);
      std::memcpy(out.ptr() + dst * cols, w.ptr() + (h * head_dim + i) * cols, cols * sizeof(float));
    }
  return out;
}

}  // namespace

Model load_llama2c_model(const std::filesystem::path& path) {
  const InputFile in(path);
  const uint64_t file_size = in.size();
  Llama2cHeader h{};
  if (file_size < sizeof(h)) bad_input("{}: truncated llama2.c header ({} bytes)", path.string(), file_size);
  in.read_at(0, &h, sizeof(h));
  if (static_cast<uint32_t>(h.dim) == 0x616b3432u)
    bad_input("{}: llama2.c export version 1/2 files (magic 'ak42') are not supported; export the legacy format", path.string());
  if (h.dim <= 0 || h.hidden_dim <= 0 || h.n_layers <= 0 || h.n_heads <= 0 || h.n_kv_heads <= 0 ||
      h.vocab_size == 0 || h.seq_len <= 0 || h.dim % h.n_heads != 0 || h.n_heads % h.n_kv_heads != 0 ||
      (h.dim / h.n_heads) % 2 != 0)
    bad_input("{}: implausible llama2.c header (dim {}, hidden {}, layers {}, heads {}, kv heads {}, vocab {}, seq {})",
              path.string(), h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len);

  ModelConfig c;
  c.model_type = "llama2c";
  c.vocab_size = h.vocab_size < 0 ? -static_cast<int64_t>(h.vocab_size) : h.vocab_size;
  c.tie_word_embeddings = h.vocab_size > 0;
  c.hidden_size = h.dim;
  c.intermediate_size = h.hidden_dim;
  c.num_layers = h.n_layers;
  c.num_heads = h.n_heads;
  c.num_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.max_position = h.seq_len;
  c.norm_eps = 1e-5f;
  c.embed_dim = h.dim;
  c.rope.theta = 10000.0f;

  // In 128 bits: header fields below 2^31 keep every term below 2^96, so a header whose sizes
  // overflow 64 bits cannot wrap around to the file's size.
  using u128 = unsigned __int128;
  const u128 d = c.hidden_size, f = c.intermediate_size, L = c.num_layers, V = c.vocab_size;
  const u128 kv = c.kv_dim(), hs = c.head_dim;
  const u128 per_layer = d + d * d + 2 * d * kv + d * d + d + 3 * d * f;
  const u128 floats = V * d + L * per_layer + d + 2 * static_cast<u128>(c.max_position) * (hs / 2) + (c.tie_word_embeddings ? 0 : V * d);
  const u128 expected = sizeof(h) + floats * sizeof(float);
  if (file_size != expected)
    bad_input("{}: file is {} bytes but its header (dim {}, layers {}, vocab {}) implies {}", path.string(), file_size,
              h.dim, h.n_layers, h.vocab_size,
              expected >> 64 ? std::string("more than 2^64 bytes") : std::to_string(static_cast<uint64_t>(expected)) + " bytes");
  const auto n_floats = static_cast<uint64_t>(floats);

  std::vector<float> data = naming_out_of_memory(
      [&] { return fmt::format("loading the weights of {} ({} bytes)", path.string(), n_floats * sizeof(float)); },
      [&] { return std::vector<float>(n_floats); });
  in.read_at(sizeof(h), data.data(), n_floats * sizeof(float));

  Model m;
  m.config = c;
  m.source = path;
  WeightCursor w(data);
  const auto D = static_cast<int64_t>(d), F = static_cast<int64_t>(f), KV = static_cast<int64_t>(kv);
  m.embed = w.take({c.vocab_size, D});
  m.blocks.resize(static_cast<size_t>(c.num_layers));
  // Each kind of tensor is stored for all layers together: [L, ...].
  for (auto& b : m.blocks) b.attn_norm = w.take({D});
  for (auto& b : m.blocks) b.linear(LinearRole::kQ).weight = interleaved_to_half_rows(w.take({D, D}), c.num_heads, c.head_dim);
  for (auto& b : m.blocks) b.linear(LinearRole::kK).weight = interleaved_to_half_rows(w.take({KV, D}), c.num_kv_heads, c.head_dim);
  for (auto& b : m.blocks) b.linear(LinearRole::kV).weight = w.take({KV, D});
  for (auto& b : m.blocks) b.linear(LinearRole::kO).weight = w.take({D, D});
  for (auto& b : m.blocks) b.mlp_norm = w.take({D});
  for (auto& b : m.blocks) b.linear(LinearRole::kGate).weight = w.take({F, D});  // w1
  for (auto& b : m.blocks) b.linear(LinearRole::kDown).weight = w.take({D, F});  // w2
  for (auto& b : m.blocks) b.linear(LinearRole::kUp).weight = w.take({F, D});    // w3
  m.final_norm = w.take({D});
  w.skip(2 * c.max_position * (hs / 2));  // precomputed RoPE tables: recomputed here
  m.lm_head = c.tie_word_embeddings ? m.embed : w.take({c.vocab_size, D});
  check_finite_weights(m);
  return m;
}

}  // namespace sparsa
