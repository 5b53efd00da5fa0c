// The GPU model against the CPU references: perplexity, Hessians, Wanda's and SparseGPT's
// selection, the whole pruning driver, and the goldens of the original implementations.
// Every test skips on machines without a CUDA device (scripts/gpu-check.sh runs them on one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "family_fixtures.h"
#include "golden_prune.h"
#include "sparsa/activations.h"
#include "sparsa/checkpoint.h"
#include "sparsa/cuda.h"
#include "sparsa/gpu.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"
#include "sparsa/study.h"
#include "sparsa/synth.h"
#include "sparsa/tasks.h"
#include "sparsa/tokenizer.h"
#include "test_support.h"

namespace sparsa {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

// The options of the GPU path (fp32, one device): the entry points pick the CUDA backend from them.
DeviceOptions cuda() {
  DeviceOptions d;
  d.device = Device::kCuda;
  return d;
}

Tensor random_tensor(int64_t rows, int64_t cols, uint64_t seed, int levels = 0) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Tensor t({rows, cols});
  for (float& v : t.data) v = levels ? static_cast<float>(static_cast<int>(g() % levels)) - levels / 2 : n(g);
  return t;
}

double agreement(const Mask& a, const Mask& b) {
  int64_t same = 0;
  for (size_t i = 0; i < a.pruned.size(); ++i) same += a.pruned[i] == b.pruned[i];
  return static_cast<double>(same) / static_cast<double>(a.pruned.size());
}

TensorI32 eval_windows(int64_t limit) {
  const auto store = TensorStore::open(test::repo_dir() / "data" / "calib-tokens.safetensors");
  TensorI32 t = store->load_i32("calib");
  t.shape[0] = std::min(limit, t.dim(0));
  t.data.resize(static_cast<size_t>(t.dim(0) * t.dim(1)));
  return t;
}

TEST(GpuPerplexity, MatchesCpuOnDemoModel) {
  SKIP_WITHOUT_GPU();
  const Model m = load_model(test::llama_demo_model());
  const TensorI32 w = eval_windows(16);
  const double cpu = perplexity(m, w).ppl;
  DeviceOptions fp32 = cuda();
  fp32.chunk_tokens = 3 * w.dim(1);  // several chunks, the last one partial
  const double gpu = perplexity(m, w, fp32).ppl;
  DeviceOptions bf16 = cuda();
  bf16.precision = GpuPrecision::kBf16;
  const double gpu_bf16 = perplexity(m, w, bf16).ppl;
  std::printf("perplexity: cpu %.6f, gpu fp32 %.6f, gpu bf16 %.6f\n", cpu, gpu, gpu_bf16);
  EXPECT_NEAR(gpu, cpu, cpu * 1e-3);  // the 0.1 %
  EXPECT_NEAR(gpu_bf16, cpu, cpu * 2e-2);
}

// OPT on the GPU (LayerNorm, learned positions, ReLU MLP, biases): the demo model's perplexity in
// fp32 mode within 1e-6 of the CPU's (issue #17), and in bf16 within 2 %.
TEST(GpuPerplexity, MatchesCpuOnOptDemoModel) {
  SKIP_WITHOUT_GPU();
  if (!std::filesystem::is_directory(test::opt_demo_model())) GTEST_SKIP() << test::opt_demo_model() << " not present";
  const Model m = load_model(test::opt_demo_model());
  const TensorI32 w = eval_windows(8);
  const double cpu = perplexity(m, w).ppl;
  DeviceOptions fp32 = cuda();
  fp32.chunk_tokens = 3 * w.dim(1);
  const double gpu = perplexity(m, w, fp32).ppl;
  DeviceOptions bf16 = cuda();
  bf16.precision = GpuPrecision::kBf16;
  const double gpu_bf16 = perplexity(m, w, bf16).ppl;
  std::printf("opt perplexity: cpu %.6f, gpu fp32 %.6f, gpu bf16 %.6f\n", cpu, gpu, gpu_bf16);
  EXPECT_NEAR(gpu, cpu, cpu * 1e-6);
  EXPECT_NEAR(gpu_bf16, cpu, cpu * 2e-2);
}

TEST(GpuPerplexity, RefusesOutOfVocabularyTokens) {
  SKIP_WITHOUT_GPU();
  const Model m = load_model(test::llama_demo_model());
  TensorI32 w = eval_windows(1);
  w.data[5] = static_cast<int32_t>(m.config.vocab_size);
  EXPECT_EQ(test::bad_input_message([&] { perplexity(m, w, cuda()); }).empty(), false);
}

TEST(GpuHessian, MatchesBruteForce) {
  SKIP_WITHOUT_GPU();
  const int64_t n = 300, d = 67;
  const Tensor x = random_tensor(n, d, 1);
  DeviceBuffer<float> x_dev(x.data), h(std::vector<float>(static_cast<size_t>(d * d), 0.0f));
  hessian_accumulate_cuda(h.data(), x_dev.data(), nullptr, GpuPrecision::kFp32, n, d, 0.5f);
  const std::vector<float> got = h.download();
  double worst = 0;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i; j < d; ++j) {
      double want = 0;
      for (int64_t t = 0; t < n; ++t) want += 0.5 * x.data[t * d + i] * x.data[t * d + j];
      worst = std::max(worst, std::fabs(got[i * d + j] - want) / (1.0 + std::fabs(want)));
    }
  EXPECT_LT(worst, 1e-5);
}

TEST(GpuWanda, SameMasksAsCpuWithTies) {
  SKIP_WITHOUT_GPU();
  for (const char* spec : {"0.5", "0.3", "0.9", "2:4", "4:8", "3:7"}) {
    const std::string s = spec;
    const SparsityTarget t = s.find(':') != std::string::npos ? parse_nm(s) : parse_sparsity(s);
    const Tensor w = random_tensor(37, 301, 2, /*levels=*/9);  // many equal scores
    std::vector<float> sqnorm(301);
    for (size_t j = 0; j < sqnorm.size(); ++j) sqnorm[j] = static_cast<float>(1 + j % 3);
    const Mask want = wanda_mask(w, sqnorm, t);
    std::vector<float> norm(sqnorm.size());
    for (size_t j = 0; j < norm.size(); ++j) norm[j] = std::sqrt(sqnorm[j]);
    DeviceBuffer<float> w_dev(w.data), norm_dev(norm);
    DeviceBuffer<uint8_t> mask_dev(w.numel());
    wanda_mask_cuda(w_dev.data(), norm_dev.data(), mask_dev.data(), 37, 301, t);
    Mask got(37, 301);
    got.pruned = mask_dev.download();
    EXPECT_EQ(got.pruned, want.pruned) << spec;
  }
}

TEST(GpuSparseGpt, AgreesWithCpu) {
  SKIP_WITHOUT_GPU();
  const int64_t rows = 96, cols = 300, n = 512;
  const Tensor x = random_tensor(n, cols, 3);
  for (const char* spec : {"0.5", "2:4"}) {
    const std::string s = spec;
    const SparsityTarget t = s.find(':') != std::string::npos ? parse_nm(s) : parse_sparsity(s);
    Tensor h({cols, cols});
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        double v = 0;
        for (int64_t k = 0; k < n; ++k) v += x.data[k * cols + i] * x.data[k * cols + j];
        h.data[i * cols + j] = static_cast<float>(2.0 * v / n);
      }
    for (int64_t i = 0; i < cols; i += 50)  // a few dead inputs: their rows and columns are zero
      for (int64_t j = 0; j < cols; ++j) h.data[i * cols + j] = h.data[j * cols + i] = 0;
    Tensor w_cpu = random_tensor(rows, cols, 4), h_cpu = h;
    DeviceBuffer<float> w_dev(w_cpu.data), h_dev(h.data);
    DeviceBuffer<uint8_t> mask_dev(static_cast<size_t>(rows * cols));
    const Mask want = sparsegpt_prune(w_cpu, h_cpu, t, 128, 0.01);
    sparsegpt_prune_cuda(w_dev.data(), h_dev.data(), mask_dev.data(), rows, cols, t, 128, 0.01);
    Mask got(rows, cols);
    got.pruned = mask_dev.download();
    const std::vector<float> w_gpu = w_dev.download();
    double num = 0, den = 0;
    for (size_t i = 0; i < w_gpu.size(); ++i) {
      num += (w_gpu[i] - w_cpu.data[i]) * (w_gpu[i] - w_cpu.data[i]);
      den += w_cpu.data[i] * w_cpu.data[i];
    }
    std::printf("sparsegpt %s: mask agreement %.5f, weight error %.2e\n", spec, agreement(got, want), std::sqrt(num / den));
    EXPECT_GE(agreement(got, want), 0.995) << spec;
    EXPECT_LT(std::sqrt(num / den), 1e-2) << spec;
    EXPECT_EQ(got.count(), want.count()) << spec;
    if (t.is_nm()) EXPECT_TRUE(mask_is_nm(got, t.n, t.m));
  }
}

TEST(GpuSparseGpt, RefusesBlocksLargerThanTheKernel) {
  SKIP_WITHOUT_GPU();
  DeviceBuffer<float> w(16), h(16);
  DeviceBuffer<uint8_t> mask(16);
  EXPECT_FALSE(test::bad_input_message([&] {
                 sparsegpt_prune_cuda(w.data(), h.data(), mask.data(), 4, 4, parse_sparsity("0.5"), 256, 0.01);
               }).empty());
}

// The driver on a synthetic model: the GPU path's masks against the CPU path's.
TEST(GpuPrune, MatchesCpuDriverOnSyntheticModel) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = synth_config("tiny");
  c.num_kv_heads = 2;  // GQA
  const Model dense = synth_model(c, 7);
  const TensorI32 calib = synth_tokens(8, 128, c.vocab_size, 7);
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT, PruneMethod::kMagnitude}) {
    PruneOptions opt;
    opt.method = method;
    opt.target = parse_sparsity("0.5");
    Model cpu = dense, gpu = dense;
    const PruneResult a = prune_model(cpu, calib, opt);
    DeviceOptions g = cuda();
    g.chunk_tokens = 3 * 128;
    const PruneResult b = prune_model(gpu, calib, opt, g);
    ASSERT_EQ(a.linears.size(), b.linears.size());
    for (size_t i = 0; i < a.linears.size(); ++i) {
      EXPECT_EQ(a.linears[i].name, b.linears[i].name);
      EXPECT_GE(agreement(a.linears[i].mask, b.linears[i].mask), 0.995)
          << prune_method_name(method) << " " << a.linears[i].name;
    }
    // Block 0 sees identical inputs on both paths: its weights must agree closely.
    const Tensor& wa = cpu.blocks[0].linear(LinearRole::kQ).weight;
    const Tensor& wb = gpu.blocks[0].linear(LinearRole::kQ).weight;
    double num = 0, den = 0;
    for (size_t i = 0; i < wa.numel(); ++i) {
      num += (wa.data[i] - wb.data[i]) * (wa.data[i] - wb.data[i]);
      den += wa.data[i] * wa.data[i];
    }
    std::printf("%s: block 0 q_proj relative weight difference %.2e, mask agreement %.5f\n",
                std::string(prune_method_name(method)).c_str(), std::sqrt(num / den),
                agreement(a.linears[0].mask, b.linears[0].mask));
    EXPECT_LT(std::sqrt(num / den), 1e-3) << prune_method_name(method);
  }
}

// The multi-GPU path (NCCL all-reduce of the statistics, linears pruned across ranks and
// broadcast): on one GPU through NCCL it must give the single-device results exactly; with two
// or more GPUs, the same up to the order in which the samples' statistics are summed.
TEST(GpuPrune, DataParallelPathMatchesOneDevice) {
  SKIP_WITHOUT_GPU();
  if (!gpu_nccl_available()) GTEST_SKIP() << "NCCL cannot be loaded";
  ModelConfig c = synth_config("tiny");
  c.num_kv_heads = 2;
  const Model dense = synth_model(c, 11);
  const TensorI32 calib = synth_tokens(6, 96, c.vocab_size, 11);
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    PruneOptions opt;
    opt.method = method;
    opt.target = parse_nm("2:4");
    DeviceOptions single = cuda();
    single.chunk_tokens = 2 * 96;  // the same chunks: Wanda's sums are then bit-identical
    Model one = dense;
    const PruneResult a = prune_model(one, calib, opt, single);
    for (int devices = 1; devices <= std::min(cuda_device_count(), 4); ++devices) {
      DeviceOptions g = single;
      g.devices = devices;
      g.force_nccl = true;
      Model many = dense;
      const PruneResult b = prune_model(many, calib, opt, g);
      ASSERT_EQ(a.linears.size(), b.linears.size());
      for (size_t i = 0; i < a.linears.size(); ++i) {
        const double agree = agreement(a.linears[i].mask, b.linears[i].mask);
        if (devices == 1)
          EXPECT_EQ(agree, 1.0) << a.linears[i].name;
        else
          EXPECT_GE(agree, 0.995) << devices << " GPUs, " << a.linears[i].name;
      }
      std::printf("%s over %d GPU(s) through NCCL: masks compared with one device\n",
                  std::string(prune_method_name(method)).c_str(), devices);
    }
  }
}

// Resuming (PruneOptions::first_layer) and the per-block hook on the GPU: the hook sees the
// blocks in order, each with its final weights already in the model; a run resumed after block k
// from those weights gives bit-identical masks and weights for the remaining blocks.
TEST(GpuPrune, ResumedRunEqualsUninterruptedOne) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = synth_config("tiny");
  const Model dense = synth_model(c, 5);
  const TensorI32 calib = synth_tokens(4, 64, c.vocab_size, 5);
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT, PruneMethod::kMagnitude}) {
    PruneOptions opt;
    opt.method = method;
    opt.target = parse_sparsity("0.5");
    Model full = dense;
    std::vector<int64_t> order;
    std::vector<Block> finished;  // each block as the hook saw it
    opt.on_block = [&](int64_t layer, std::span<const LinearPruneResult> linears) {
      order.push_back(layer);
      ASSERT_EQ(linears.size(), arch_info(c.arch).roles.size());
      for (const LinearPruneResult& lr : linears) {
        EXPECT_EQ(lr.layer, layer);
        const Tensor& w = full.blocks[static_cast<size_t>(layer)].linear(lr.role).weight;
        for (size_t i = 0; i < w.numel(); ++i)
          if (lr.mask.pruned[i]) ASSERT_EQ(w.data[i], 0.0f) << lr.name << ": hook called before the weights were final";
      }
      finished.push_back(full.blocks[static_cast<size_t>(layer)]);
    };
    const PruneResult a = prune_model(full, calib, opt, cuda());
    std::vector<int64_t> expected(static_cast<size_t>(c.num_layers));
    for (int64_t l = 0; l < c.num_layers; ++l) expected[static_cast<size_t>(l)] = l;
    EXPECT_EQ(order, expected) << prune_method_name(method);

    const int64_t k = c.num_layers / 2;
    Model resumed = dense;  // blocks 0..k-1 as the hook saw them, the rest dense
    for (int64_t l = 0; l < k; ++l) resumed.blocks[static_cast<size_t>(l)] = finished[static_cast<size_t>(l)];
    opt.on_block = {};
    opt.first_layer = k;
    const PruneResult b = prune_model(resumed, calib, opt, cuda());
    const size_t per_block = arch_info(c.arch).roles.size();
    ASSERT_EQ(b.linears.size(), a.linears.size() - static_cast<size_t>(k) * per_block);
    for (size_t i = 0; i < b.linears.size(); ++i) {
      const LinearPruneResult& x = a.linears[static_cast<size_t>(k) * per_block + i];
      EXPECT_EQ(b.linears[i].name, x.name);
      EXPECT_EQ(b.linears[i].mask.pruned, x.mask.pruned) << prune_method_name(method) << " " << x.name;
      EXPECT_EQ(resumed.blocks[static_cast<size_t>(x.layer)].linear(x.role).weight.data,
                full.blocks[static_cast<size_t>(x.layer)].linear(x.role).weight.data) << x.name;
    }
  }
}

// The goldens of the original implementations, on the GPU in fp32, with the CPU tests' floors.
// ---- activations on the GPU: `acts --device cuda` (issue #17 item 3) ----

// max over layers and points of |y - x| / |x|.
double worst_relative(const ActivationThresholds& x, const ActivationThresholds& y) {
  double worst = 0;
  for (size_t l = 0; l < x.t.size(); ++l)
    for (size_t p = 0; p < kNumObsPoints; ++p)
      worst = std::max(worst, std::fabs(static_cast<double>(x.t[l][p]) - y.t[l][p]) / std::fabs(x.t[l][p]));
  return worst;
}

// The GPU window runner against the CPU's on the demo model (fp32): the histograms' thresholds,
// the thresholds re-calibrated on sparsified activations, the sparsified perplexity and a bitset.
// The dense profile is well conditioned (1e-5). Anything computed with activations zeroed at a
// hard threshold is not: half the values sit at the median of |x|, where they are densest, so a
// rounding difference flips some, and each flip moves the values downstream. Measured on the CPU
// alone: thresholds scaled by 1 + 1e-6 move the sparsified perplexity by 0.34 % and the
// re-calibrated thresholds by 1.5e-3; the same CPU code gave 21.79 on the GPU machine's 16-thread host and
// 21.91 on a 2-core one. So these compare within the golden tolerance of sparsified perplexity
// (golden/README.md: 1 %), and the re-calibrated thresholds within 1e-2.
// Zero-shot task scores on the GPU (choices padded to one length, in several chunks) against the
// CPU's, choice by choice: log-likelihoods within 1e-4 (the bound of the transformers check, issue
// #21), the same greedy flags, predictions and accuracies.
TEST(GpuTasks, ScoresMatchCpuChoiceByChoice) {
  SKIP_WITHOUT_GPU();
  const Model m = load_model(test::llama_demo_model());
  const Task task = load_task(test::repo_dir() / "data" / "tasks" / "persuasion-next.jsonl");
  const auto tokenizer = HfTokenizer::load(test::llama_demo_model() / "tokenizer.json");
  const EncodedTask t = encode_task(task, *tokenizer, m.config);
  DeviceOptions g = cuda();
  g.chunk_tokens = 4096;  // a few dozen choices a chunk: several chunks, the last one partial
  const TaskScore a = score_task(m, t), b = score_task(m, t, g);
  ASSERT_EQ(a.items.size(), b.items.size());
  double worst = 0;
  int64_t greedy = 0;
  for (size_t i = 0; i < a.items.size(); ++i) {
    ASSERT_EQ(a.items[i].choices.size(), b.items[i].choices.size());
    for (size_t c = 0; c < a.items[i].choices.size(); ++c) {
      const ChoiceScore &x = a.items[i].choices[c], &y = b.items[i].choices[c];
      worst = std::max(worst, std::fabs(x.loglik - y.loglik));
      EXPECT_EQ(x.greedy, y.greedy) << "item " << i << " choice " << c;
      EXPECT_EQ(x.tokens, y.tokens);
      EXPECT_EQ(x.chars, y.chars);
      greedy += y.greedy;
    }
    EXPECT_EQ(a.items[i].pred, b.items[i].pred) << "item " << i;
    EXPECT_EQ(a.items[i].pred_norm, b.items[i].pred_norm) << "item " << i;
  }
  std::printf("task %s: %lld items, worst |loglik GPU - CPU| %.2e, %lld greedy choices, acc %.4f / %.4f, acc_norm "
              "%.4f / %.4f, %.2f s GPU / %.2f s CPU\n",
              a.name.c_str(), static_cast<long long>(a.n), worst, static_cast<long long>(greedy), b.acc, a.acc,
              b.acc_norm, a.acc_norm, b.seconds, a.seconds);
  EXPECT_LT(worst, 1e-4);
  EXPECT_EQ(a.acc, b.acc);
  EXPECT_EQ(a.acc_norm, b.acc_norm);
  EXPECT_EQ(a.tokens, b.tokens);
}

TEST(GpuActs, ProfilePerplexityAndBitsMatchCpu) {
  SKIP_WITHOUT_GPU();
  const Model m = load_model(test::llama_demo_model());
  const TensorI32 w = eval_windows(8);
  DeviceOptions g = cuda();
  g.chunk_tokens = 3 * w.dim(1);  // several chunks, the last one partial
  const std::unique_ptr<WindowRunner> gpu = make_window_runner(g);
  const ActivationProfile a = capture_activation_profile(m, w), b = capture_activation_profile(m, w, {}, *gpu);
  ASSERT_EQ(a.tokens, b.tokens);
  const ActivationThresholds ta = a.thresholds(0.5), tb = b.thresholds(0.5);
  const double dense_err = worst_relative(ta, tb);
  const ActivationThresholds sa = capture_activation_profile(m, w, ta).thresholds(0.5);
  const ActivationThresholds sb = capture_activation_profile(m, w, ta, {}, *gpu).thresholds(0.5);
  const double sparse_err = worst_relative(sa, sb);
  const double ppl_cpu = sparsified_perplexity(m, w, ta, DeviceOptions{}).ppl;
  const double ppl_gpu = sparsified_perplexity(m, w, ta, g).ppl;
  const std::vector<BitsetRequest> req = {{2, ObsPoint::kDownIn, ta.t[2][3]}};
  const BitMatrix bits_cpu = capture_activation_bits(m, w, req)[0], bits_gpu = capture_activation_bits(m, w, req, {}, *gpu)[0];
  ASSERT_EQ(bits_cpu.rows(), bits_gpu.rows());
  ASSERT_EQ(bits_cpu.cols(), bits_gpu.cols());
  int64_t differ = 0;
  for (int64_t r = 0; r < bits_cpu.rows(); ++r)
    for (int64_t c = 0; c < bits_cpu.cols(); ++c) differ += bits_cpu.get(r, c) != bits_gpu.get(r, c);
  const double bit_share = static_cast<double>(differ) / static_cast<double>(bits_cpu.rows() * bits_cpu.cols());
  std::printf("acts on the gpu: thresholds worst relative difference %.2e (dense), %.2e (re-calibrated on "
              "sparsified activations); sparsified perplexity cpu %.6f gpu %.6f; bitset bits differing %.2e\n",
              dense_err, sparse_err, ppl_cpu, ppl_gpu, bit_share);
  EXPECT_LE(dense_err, 1e-5);
  EXPECT_LE(sparse_err, 1e-2);
  EXPECT_LE(std::fabs(ppl_gpu - ppl_cpu) / ppl_cpu, 1e-2);
  EXPECT_LE(bit_share, 1e-4);
}

// ---- every family of the architecture table on the GPU (issue #18) ----

class GpuFamily : public ::testing::TestWithParam<std::string> {};

// fp32 mode: logits within 1e-4 of transformers' (relative to the largest, max over positions),
// perplexity within 1e-5 of transformers' and 1e-6 of the CPU path's; bf16 within 2 %.
TEST_P(GpuFamily, LogitsAndPerplexityMatchTransformersAndCpu) {
  SKIP_WITHOUT_GPU();
  const std::string family = GetParam();
  const Model m = load_model(test::family_fixture(family));
  const test::FamilyReference ref = test::load_family_reference(family);
  DeviceOptions fp32 = cuda();
  fp32.chunk_tokens = ref.tokens.dim(1);  // one window per chunk: two chunks
  const double err = test::max_relative_logit_error(ref.logits, logits_cuda(m, ref.tokens, fp32), m.config.vocab_size);
  const double want = test::family_reference_info(family)["perplexity"].get<double>();
  const double cpu = perplexity(m, ref.tokens).ppl, gpu = perplexity(m, ref.tokens, fp32).ppl;
  DeviceOptions bf16 = cuda();
  bf16.precision = GpuPrecision::kBf16;
  const double gpu_bf16 = perplexity(m, ref.tokens, bf16).ppl;
  std::printf("%s: gpu fp32 logit error %.2e; perplexity transformers %.6f, cpu %.6f, gpu fp32 %.6f, gpu bf16 %.6f\n",
              family.c_str(), err, want, cpu, gpu, gpu_bf16);
  EXPECT_LE(err, 1e-4) << family;
  EXPECT_LE(std::fabs(gpu - want) / want, 1e-5) << family;
  EXPECT_LE(std::fabs(gpu - cpu) / cpu, 1e-6) << family;
  EXPECT_LE(std::fabs(gpu_bf16 - cpu) / cpu, 2e-2) << family;
}

// acts on the GPU: the thresholds of every point at 0.5, and the sparsified perplexity, as the CPU's.
TEST_P(GpuFamily, ActivationsMatchCpu) {
  SKIP_WITHOUT_GPU();
  const std::string family = GetParam();
  const Model m = load_model(test::family_fixture(family));
  const TensorI32 w = test::load_family_reference(family).tokens;
  const std::unique_ptr<WindowRunner> gpu = make_window_runner(cuda());
  const ActivationThresholds a = capture_activation_profile(m, w).thresholds(0.5);
  const ActivationThresholds b = capture_activation_profile(m, w, {}, *gpu).thresholds(0.5);
  const double worst = worst_relative(a, b);
  const double ppl_cpu = sparsified_perplexity(m, w, a, DeviceOptions{}).ppl, ppl_gpu = sparsified_perplexity(m, w, a, cuda()).ppl;
  std::printf("%s acts: thresholds worst relative difference %.2e; sparsified perplexity cpu %.6f gpu %.6f\n",
              family.c_str(), worst, ppl_cpu, ppl_gpu);
  EXPECT_LE(worst, 1e-4) << family;  // 128 tokens: a bin holds few values, one crossing moves more
  EXPECT_LE(std::fabs(ppl_gpu - ppl_cpu) / ppl_cpu, 1e-5) << family;
}

// Wanda and SparseGPT on the GPU (fp32) against the CPU driver, calibrated on the fixture's windows.
// Wanda's masks are equal. SparseGPT's drift with the fp32 summation order, more with each block
// pruned before (its pruned outputs are the next block's calibration inputs): the fixtures calibrate
// on 128 tokens against 256-wide inputs, so the Hessians are rank-deficient and held up by the 1 %
// damping alone. Measured on an H100: every matrix of the 2-block fixtures >= 0.9999, the 4-block
// gemma3's last block 0.9926 (down_proj), its pruned perplexity 0.19 % from the CPU-pruned one.
TEST_P(GpuFamily, PruningMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const std::string family = GetParam();
  const Model dense = load_model(test::family_fixture(family));
  const TensorI32 calib = test::load_family_reference(family).tokens;
  for (PruneMethod method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    PruneOptions opt;
    opt.method = method;
    opt.target = parse_sparsity("0.5");
    Model cpu = dense, gpu = dense;
    const PruneResult a = prune_model(cpu, calib, opt);
    const PruneResult b = prune_model(gpu, calib, opt, cuda());
    ASSERT_EQ(a.linears.size(), b.linears.size());
    double worst = 1.0;
    for (size_t i = 0; i < a.linears.size(); ++i) {
      EXPECT_EQ(a.linears[i].name, b.linears[i].name);
      const double agree = agreement(a.linears[i].mask, b.linears[i].mask);
      worst = std::min(worst, agree);
      EXPECT_GE(agree, method == PruneMethod::kWanda ? 1.0 : 0.99)
          << family << " " << prune_method_name(method) << " " << a.linears[i].name;
    }
    const double ppl_cpu = perplexity(cpu, calib).ppl, ppl_gpu = perplexity(gpu, calib).ppl;
    std::printf("%s %s: worst mask agreement %.5f, pruned perplexity cpu %.6f, gpu-pruned %.6f\n", family.c_str(),
                std::string(prune_method_name(method)).c_str(), worst, ppl_cpu, ppl_gpu);
    EXPECT_NEAR(ppl_gpu, ppl_cpu, ppl_cpu * (method == PruneMethod::kWanda ? 1e-6 : 5e-3))
        << family << " " << prune_method_name(method);
    // For the transformers reload check on the GPU machine (tests/data/families/check_reload.py):
    // the GPU-pruned checkpoint, its masks, and the perplexity sparsa gives the checkpoint as
    // written (weights in the fixture's bf16) on these windows.
    if (const char* keep = std::getenv("SPARSA_KEEP_PRUNED_FAMILIES")) {
      const std::filesystem::path dir =
          std::filesystem::path(keep) / (family + "-" + std::string(prune_method_name(method)));
      save_pruned_checkpoint(gpu, test::family_fixture(family), dir);
      write_mask_file(dir / "masks.safetensors", b, method, opt.target);
      const double saved = perplexity(load_model(dir), calib).ppl;  // the weights as written (bf16)
      std::ofstream(dir / "sparsa.json") << fmt::format("{{\"ppl\": {:.17g}}}\n", saved);
    }
  }
}

// The whole study on the GPU against the same study on the CPU (fp32): dense and Wanda perplexities
// as the CPU's; SparseGPT's within its mask drift (PruningMatchesCpu); the sparsified perplexity
// within the golden tolerance (GpuActs).
TEST_P(GpuFamily, StudyMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const std::string family = GetParam();
  test::TempDir tmp;
  StudyOptions o = test::family_study_options(family, tmp / "cpu");
  const StudyResult cpu = run_study(o);
  o.out_dir = tmp / "gpu";
  o.device = cuda();
  const StudyResult gpu = run_study(o);
  using json = nlohmann::json;
  const auto rel = [](const json& a, const json& b) { return std::fabs(a.get<double>() - b.get<double>()) / a.get<double>(); };
  EXPECT_LE(rel(cpu.summary["dense_ppl"], gpu.summary["dense_ppl"]), 1e-6) << family;
  ASSERT_EQ(cpu.summary["runs"].size(), gpu.summary["runs"].size());
  for (size_t i = 0; i < cpu.summary["runs"].size(); ++i) {
    const json &a = cpu.summary["runs"][i], &b = gpu.summary["runs"][i];
    EXPECT_EQ(a["method"], b["method"]);
    EXPECT_EQ(a["structure"], b["structure"]);
    EXPECT_LE(rel(a["ppl"], b["ppl"]), a["method"] == "wanda" ? 1e-6 : 5e-3) << family << " " << a.dump() << " " << b.dump();
  }
  EXPECT_LE(rel(cpu.summary["act_ppl"]["0.5"], gpu.summary["act_ppl"]["0.5"]), 1e-2) << family;
  std::printf("%s study: dense cpu %.6f gpu %.6f; %zu runs; sparsified cpu %.6f gpu %.6f; %.1f s cpu, %.1f s gpu\n",
              family.c_str(), cpu.summary["dense_ppl"].get<double>(), gpu.summary["dense_ppl"].get<double>(),
              cpu.summary["runs"].size(), cpu.summary["act_ppl"]["0.5"].get<double>(),
              gpu.summary["act_ppl"]["0.5"].get<double>(), cpu.seconds, gpu.seconds);
}

// Pre-LN OPT (the opt-125m ... 66b layout) beside the post-LN fixture: the opt350m fixture with
// do_layer_norm_before switched on and a final LayerNorm of random scale and bias. No transformers
// reference for this variant: the GPU path against the CPU path, logits and Wanda's masks.
TEST(GpuOpt, PreLayerNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  Model m = load_model(test::family_fixture("opt350m"));
  m.config.post_layer_norm = false;
  m.final_norm = random_tensor(1, m.config.hidden_size, 3);
  m.final_norm.shape = {m.config.hidden_size};
  for (float& v : m.final_norm.data) v = 1.0f + 0.1f * v;
  m.final_norm_bias = random_tensor(1, m.config.hidden_size, 4);
  m.final_norm_bias.shape = {m.config.hidden_size};
  const TensorI32 tokens = test::load_family_reference("opt350m").tokens;
  Tensor cpu({tokens.dim(0), tokens.dim(1), m.config.vocab_size});
  ForwardBuffers buf;
  Tensor logits;
  for (int64_t w = 0; w < tokens.dim(0); ++w) {
    forward(m, tokens.ptr() + w * tokens.dim(1), tokens.dim(1), logits, buf);
    std::copy(logits.data.begin(), logits.data.end(), cpu.data.begin() + w * tokens.dim(1) * m.config.vocab_size);
  }
  const double err = test::max_relative_logit_error(cpu, logits_cuda(m, tokens, cuda()), m.config.vocab_size);
  const double ppl_cpu = perplexity(m, tokens).ppl, ppl_gpu = perplexity(m, tokens, cuda()).ppl;
  std::printf("opt pre-LN: gpu fp32 logit error to cpu %.2e; perplexity cpu %.6f, gpu %.6f\n", err, ppl_cpu, ppl_gpu);
  EXPECT_LE(err, 1e-5);
  EXPECT_LE(std::fabs(ppl_gpu - ppl_cpu) / ppl_cpu, 1e-6);
  PruneOptions opt;
  opt.method = PruneMethod::kWanda;
  opt.target = parse_sparsity("0.5");
  Model a = m, b = m;
  const PruneResult ra = prune_model(a, tokens, opt), rb = prune_model(b, tokens, opt, cuda());
  for (size_t i = 0; i < ra.linears.size(); ++i)
    EXPECT_GE(agreement(ra.linears[i].mask, rb.linears[i].mask), 0.995) << ra.linears[i].name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuFamily, ::testing::ValuesIn(test::family_names()),
                         [](const auto& info) { return info.param; });

void golden(PruneMethod method, SparsityTarget t, const char* file, double ppl, double later) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  test::GoldenPruneCase c{method, t, file, ppl, 0.999, later};
  c.max_deep_weight_error = 0.15;
  c.gpu = true;
  test::check_golden_prune(c);
}

TEST(GpuGolden, WandaU50) { golden(PruneMethod::kWanda, parse_sparsity("0.5"), "wanda_u50.safetensors", 108.3057, 0.999); }
TEST(GpuGolden, Wanda24) { golden(PruneMethod::kWanda, parse_nm("2:4"), "wanda_2-4.safetensors", 143.3333, 0.999); }
TEST(GpuGolden, SparseGptU50) {
  golden(PruneMethod::kSparseGPT, parse_sparsity("0.5"), "sparsegpt_u50.safetensors", 98.0593, 0.99);
}
TEST(GpuGolden, SparseGpt24) { golden(PruneMethod::kSparseGPT, parse_nm("2:4"), "sparsegpt_2-4.safetensors", 105.7619, 0.95); }

}  // namespace
}  // namespace sparsa
