// Random-weight LLaMA-family models of real shapes (sparsa/synth.h).
#include "sparsa/synth.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "sparsa/atomic_file.h"
#include "sparsa/checkpoint.h"
#include "sparsa/error.h"
#include "sparsa/safetensors.h"

namespace sparsa {
namespace {

// SplitMix64: a fast, well-mixed stream per (seed, tensor, row).
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
};

uint64_t mix(uint64_t a, uint64_t b) { return SplitMix{a * 0x2545f4914f6cdd1dull + b}.next(); }

// t [rows, cols] ~ N(0, std^2): Box-Muller pairs, one stream per row.
void fill_normal(Tensor& t, uint64_t seed, float std) {
  const int64_t rows = t.rank() == 2 ? t.dim(0) : 1, cols = static_cast<int64_t>(t.numel()) / rows;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    SplitMix g{mix(seed, static_cast<uint64_t>(r))};
    float* row = t.ptr() + r * cols;
    for (int64_t c = 0; c < cols; c += 2) {
      const double radius = std::sqrt(-2.0 * std::log(g.uniform())), angle = 6.283185307179586 * g.uniform();
      row[c] = static_cast<float>(radius * std::cos(angle)) * std;
      if (c + 1 < cols) row[c + 1] = static_cast<float>(radius * std::sin(angle)) * std;
    }
  }
}

void check_config(const ModelConfig& c) {
  if (c.arch != Arch::kLlama) bad_input("synth: only the LLaMA family is generated");
  if (c.vocab_size < 1 || c.hidden_size < 1 || c.intermediate_size < 1 || c.num_layers < 1 || c.num_heads < 1 ||
      c.num_kv_heads < 1 || c.max_position < 2)
    bad_input("synth: vocab, hidden, intermediate, layers, heads and kv heads must be at least 1, context at least 2");
  if (c.num_heads % c.num_kv_heads != 0)
    bad_input("synth: {} heads are not a multiple of {} KV heads", c.num_heads, c.num_kv_heads);
  if (c.hidden_size % c.num_heads != 0 || (c.hidden_size / c.num_heads) % 2 != 0)
    bad_input("synth: hidden size {} must be {} heads times an even head size", c.hidden_size, c.num_heads);
}

ModelConfig llama_shape(int64_t d, int64_t ff, int64_t layers, int64_t heads, int64_t kv_heads, int64_t vocab,
                        int64_t context) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.model_type = "llama";
  c.hidden_size = c.embed_dim = d;
  c.intermediate_size = ff;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = d / heads;
  c.vocab_size = vocab;
  c.max_position = context;
  c.norm_eps = 1e-5f;
  return c;
}

}  // namespace

ModelConfig synth_config(std::string_view preset) {
  if (preset == "tiny") return llama_shape(256, 688, 2, 4, 4, 1024, 512);
  if (preset == "7b") return llama_shape(4096, 11008, 32, 32, 32, 32000, 4096);
  if (preset == "13b") return llama_shape(5120, 13824, 40, 40, 40, 32000, 4096);
  if (preset == "70b") return llama_shape(8192, 28672, 80, 64, 8, 32000, 4096);
  if (preset == "8b") {  // LLaMA-3-8B: GQA and the 128k vocabulary
    ModelConfig c = llama_shape(4096, 14336, 32, 32, 8, 128256, 8192);
    c.rope.theta = 500000.0f;
    c.local_rope = c.rope;
    return c;
  }
  bad_input("unknown synth preset '{}' (tiny, 7b, 8b, 13b, 70b)", preset);
}

Model synth_model(const ModelConfig& config, uint64_t seed, float init_std) {
  ModelConfig c = config;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.embed_dim = c.hidden_size;
  check_config(c);
  Model m;
  m.config = c;
  m.blocks.resize(static_cast<size_t>(c.num_layers));
  m.source = "synth";
  uint64_t stream = 0;
  for (HfTensor& t : hf_tensors(m)) {
    *t.tensor = Tensor(t.shape);
    if (t.shape.size() == 1)
      std::fill(t.tensor->data.begin(), t.tensor->data.end(), 1.0f);  // norms
    else
      fill_normal(*t.tensor, mix(seed, ++stream), init_std);
  }
  if (c.tie_word_embeddings) m.lm_head = m.embed;
  return m;
}

void write_hf_model(const Model& m, const std::filesystem::path& dir, DType dtype) {
  if (dtype != DType::BF16 && dtype != DType::F16 && dtype != DType::F32)
    bad_input("synth: weights are written as bfloat16, float16 or float32");
  const ModelConfig& c = m.config;
  create_output_folder(dir);
  const nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},         {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},    {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads}, {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position}, {"vocab_size", c.vocab_size},
      {"rms_norm_eps", c.norm_eps},           {"rope_theta", c.rope.theta},
      {"tie_word_embeddings", c.tie_word_embeddings}, {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_id},       {"torch_dtype", torch_dtype_name(dtype)},
      {"sparsa_synthetic", true}};
  write_file_atomic(dir / "config.json", config.dump(2) + "\n");

  std::vector<std::vector<uint16_t>> halves;  // converted copies, alive until written
  std::vector<TensorToWrite> out;
  for (const HfConstTensor& t : hf_tensors(m)) {
    const void* data = t.tensor->ptr();
    if (dtype != DType::F32) {
      std::vector<uint16_t>& h = halves.emplace_back(t.tensor->numel());
      const float* src = t.tensor->ptr();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < static_cast<int64_t>(h.size()); ++i)
        h[static_cast<size_t>(i)] = dtype == DType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
      data = h.data();
    }
    out.push_back({t.name, dtype, t.shape, data});
  }
  write_safetensors(dir / "model.safetensors", out, {{"format", "pt"}, {"sparsa", "synthetic"}});
}

TensorI32 synth_tokens(int64_t n_samples, int64_t seqlen, int64_t vocab, uint64_t seed) {
  if (n_samples < 1 || seqlen < 1 || vocab < 1) bad_input("synth: samples, seqlen and vocab must be at least 1");
  TensorI32 t({n_samples, seqlen});
  SplitMix g{mix(seed, 0x70c3)};
  for (int32_t& v : t.data) v = static_cast<int32_t>(g.next() % static_cast<uint64_t>(vocab));
  return t;
}

}  // namespace sparsa
