// Unit tests of the pruning building blocks against straightforward references.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/prune.h"
#include "test_support.h"

namespace sparsa {
namespace {

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Tensor t({rows, cols});
  for (auto& v : t.data) v = n(rng);
  return t;
}

TEST(Mask, PackbitsLayoutIsNumpys) {
  Mask m(2, 10);
  m.pruned[0] = 1;           // row 0, col 0 -> bit 7 of byte 0
  m.pruned[9] = 1;           // row 0, col 9 -> bit 6 of byte 1
  m.pruned[10 + 7] = 1;      // row 1, col 7 -> bit 0 of byte 0
  const auto p = pack_mask(m);
  ASSERT_EQ(p.size(), 4u);  // [2, ceil(10 / 8)]
  EXPECT_EQ(p[0], 0x80);
  EXPECT_EQ(p[1], 0x40);
  EXPECT_EQ(p[2], 0x01);
  EXPECT_EQ(p[3], 0x00);
  EXPECT_EQ(unpack_mask(p.data(), 2, 10).pruned, m.pruned);
}

TEST(Targets, ParseAndLabel) {
  EXPECT_EQ(parse_sparsity("0.5").label(), "u50");
  EXPECT_EQ(parse_nm("2:4").label(), "2-4");
  EXPECT_DOUBLE_EQ(parse_nm("4:8").fraction(), 0.5);
  for (const char* bad : {"1.5", "0", "1", "-0.2", "abc", "0.5x", ""}) EXPECT_THROW(parse_sparsity(bad), Error) << bad;
  for (const char* bad : {"3:2", "2:2", "0:4", "2-4", "2:", ":4", "a:b", "2:4:8"}) EXPECT_THROW(parse_nm(bad), Error) << bad;
  EXPECT_THROW(parse_prune_method("obs"), Error);
  EXPECT_EQ(parse_prune_method("sparsegpt"), PruneMethod::kSparseGPT);
}

TEST(Magnitude, ThresholdIncludesTies) {
  Tensor w({1, 6});
  w.data = {0.5f, -0.1f, 0.1f, 0.3f, -0.1f, 2.0f};
  // sorted |w| = .1 .1 .1 .3 .5 2; index floor(6 * 0.3) = 1 -> threshold .1: three entries pruned.
  const Mask m = magnitude_mask(w, parse_sparsity("0.3"));
  EXPECT_EQ(m.pruned, (std::vector<uint8_t>{0, 1, 1, 0, 1, 0}));
}

TEST(Magnitude, NMPrunesSmallestOfEachGroup) {
  Tensor w({1, 8});
  w.data = {4, -1, 3, 2, 0.5f, -8, 7, 0.25f};
  const Mask m = magnitude_mask(w, parse_nm("2:4"));
  EXPECT_EQ(m.pruned, (std::vector<uint8_t>{0, 1, 0, 1, 1, 0, 0, 1}));
}

TEST(Wanda, RowWiseWithActivationNorms) {
  Tensor w({2, 4});
  w.data = {1, 1, 1, 1, 4, 3, 2, 1};
  const std::vector<float> sq{1, 4, 9, 16};  // norms 1 2 3 4
  // row 0 scores 1 2 3 4; row 1 scores 4 6 6 4 -> ties broken towards the lower index.
  const Mask m = wanda_mask(w, sq, parse_sparsity("0.5"));
  EXPECT_EQ(m.pruned, (std::vector<uint8_t>{1, 1, 0, 0, 1, 0, 0, 1}));
  const Mask nm = wanda_mask(w, sq, parse_nm("1:2"));
  EXPECT_EQ(nm.pruned, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0, 0, 1}));
  EXPECT_TRUE(mask_is_nm(nm, 1, 2));
}

// SparseGPT written the slow, obvious way in double precision: for each column in order,
// prune by the block mask, spread the error over the remaining columns with the inverse
// Hessian's Cholesky row. Used to check the blocked fp32 implementation.
Mask naive_sparsegpt(std::vector<double>& W, int64_t rows, int64_t cols, std::vector<double> H, const SparsityTarget& t,
                     int64_t block, double percdamp) {
  const int64_t n = cols;
  for (int64_t j = 0; j < n; ++j)
    if (H[j * n + j] == 0) {
      H[j * n + j] = 1;
      for (int64_t r = 0; r < rows; ++r) W[r * n + j] = 0;
    }
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) mean += H[j * n + j] / n;
  for (int64_t j = 0; j < n; ++j) H[j * n + j] += percdamp * mean;
  // inverse by Gauss-Jordan, then upper Cholesky U with inv = UᵀU
  std::vector<double> inv(n * n, 0.0), a = H;
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (int64_t c = 0; c < n; ++c) {
    const double p = a[c * n + c];
    for (int64_t k = 0; k < n; ++k) { a[c * n + k] /= p; inv[c * n + k] /= p; }
    for (int64_t r = 0; r < n; ++r)
      if (r != c) {
        const double f = a[r * n + c];
        for (int64_t k = 0; k < n; ++k) { a[r * n + k] -= f * a[c * n + k]; inv[r * n + k] -= f * inv[c * n + k]; }
      }
  }
  std::vector<double> U(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = inv[i * n + i];
    for (int64_t k = 0; k < i; ++k) s -= U[k * n + i] * U[k * n + i];
    U[i * n + i] = std::sqrt(s);
    for (int64_t j = i + 1; j < n; ++j) {
      double v = inv[i * n + j];
      for (int64_t k = 0; k < i; ++k) v -= U[k * n + i] * U[k * n + j];
      U[i * n + j] = v / U[i * n + i];
    }
  }
  Mask mask(rows, cols);
  for (int64_t i1 = 0; i1 < n; i1 += block) {
    const int64_t i2 = std::min(i1 + block, n);
    if (!t.is_nm()) {
      std::vector<std::pair<double, int64_t>> s;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = i1; c < i2; ++c) s.push_back({W[r * n + c] * W[r * n + c] / (U[c * n + c] * U[c * n + c]), r * n + c});
      std::sort(s.begin(), s.end());
      const double thresh = s[static_cast<size_t>(static_cast<double>(s.size()) * t.ratio)].first;
      for (auto& [v, idx] : s) mask.pruned[idx] = v <= thresh;
    }
    for (int64_t i = i1; i < i2; ++i) {
      if (t.is_nm() && (i - i1) % t.m == 0)
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<std::pair<double, int64_t>> s;
          for (int64_t c = i; c < std::min(i + t.m, i2); ++c) s.push_back({W[r * n + c] * W[r * n + c] / (U[c * n + c] * U[c * n + c]), c});
          std::stable_sort(s.begin(), s.end(), [](auto& a, auto& b) { return a.first < b.first; });
          for (int k = 0; k < t.n && k < static_cast<int>(s.size()); ++k) mask.pruned[r * n + s[k].second] = 1;
        }
      for (int64_t r = 0; r < rows; ++r) {
        const double w = W[r * n + i], q = mask.at(r, i) ? 0.0 : w, err = (w - q) / U[i * n + i];
        for (int64_t c = i; c < n; ++c) W[r * n + c] -= err * U[i * n + c];
        W[r * n + i] = q;
      }
    }
  }
  return mask;
}

void check_sparsegpt_against_naive(const SparsityTarget& t, int64_t rows, int64_t cols, int64_t block) {
  const Tensor w0 = random_matrix(rows, cols, 3);
  const Tensor x = random_matrix(3 * cols, cols, 4);  // [tokens, cols]
  Tensor h({cols, cols});
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < x.dim(0); ++k) s += x.data[k * cols + i] * x.data[k * cols + j];
      h.data[i * cols + j] = static_cast<float>(2.0 * s);
    }
  for (int64_t i = 0; i < cols; ++i) h.data[i * cols + 5] = h.data[5 * cols + i] = 0.0f;  // input 5 is dead
  std::vector<double> wd(w0.data.begin(), w0.data.end()), hd(h.data.begin(), h.data.end());
  const Mask ref = naive_sparsegpt(wd, rows, cols, hd, t, block, 0.01);
  Tensor w = w0;
  const Mask got = sparsegpt_prune(w, h, t, block, 0.01);
  int64_t same = 0;
  for (size_t i = 0; i < ref.pruned.size(); ++i) same += ref.pruned[i] == got.pruned[i];
  EXPECT_EQ(same, static_cast<int64_t>(ref.pruned.size()));
  double num = 0, den = 0;
  for (size_t i = 0; i < wd.size(); ++i) {
    num += (wd[i] - w.data[i]) * (wd[i] - w.data[i]);
    den += wd[i] * wd[i];
    if (got.pruned[i]) EXPECT_EQ(w.data[i], 0.0f);
  }
  EXPECT_LT(std::sqrt(num / den), 1e-4);
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(w.data[r * cols + 5], 0.0f) << "dead input column must be zero";
  if (t.is_nm()) EXPECT_TRUE(mask_is_nm(got, t.n, t.m));
}

TEST(SparseGPT, UnstructuredMatchesNaiveReference) { check_sparsegpt_against_naive(parse_sparsity("0.5"), 13, 40, 16); }
TEST(SparseGPT, NMMatchesNaiveReference) { check_sparsegpt_against_naive(parse_nm("2:4"), 11, 48, 16); }
TEST(SparseGPT, OddBlockAndSparsity) { check_sparsegpt_against_naive(parse_sparsity("0.37"), 7, 45, 7); }

TEST(SparseGPT, NonPositiveDefiniteIsARuntimeError) {
  Tensor w = random_matrix(4, 8, 1);
  Tensor h({8, 8});
  for (int64_t i = 0; i < 8; ++i) h.data[i * 8 + i] = 1.0f;
  h.data[0 * 8 + 1] = h.data[1 * 8 + 0] = 5.0f;  // indefinite
  try {
    sparsegpt_prune(w, h, parse_sparsity("0.5"), 128, 0.0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("percdamp"), std::string::npos);
  }
}

// SparseGPT prunes N:M groups inside its lazy-update blocks: a blocksize that is not a multiple of
// M would split groups between blocks (and the masks would not be N:M), so it is refused.
TEST(SparseGPT, NMWithABlocksizeThatIsNotAMultipleOfMIsRefused) {
  Tensor w = random_matrix(4, 24, 1);
  Tensor h({24, 24});
  for (int64_t i = 0; i < 24; ++i) h.data[i * 24 + i] = 1.0f;
  for (const auto& [target, block] : std::vector<std::pair<const char*, int64_t>>{{"2:4", 6}, {"4:8", 12}, {"1:3", 4}}) {
    Tensor wc = w, hc = h;
    const std::string msg = test::bad_input_message([&] { sparsegpt_prune(wc, hc, parse_nm(target), block, 0.01); });
    EXPECT_NE(msg.find(fmt::format("blocksize {} is not a multiple of M", block)), std::string::npos) << msg;
    EXPECT_EQ(wc.data, w.data) << "the weights were changed before the refusal";
  }
  for (const auto& [target, block] : std::vector<std::pair<const char*, int64_t>>{{"2:4", 8}, {"4:8", 16}, {"1:3", 6}}) {
    Tensor wc = w, hc = h;
    EXPECT_TRUE(mask_is_nm(sparsegpt_prune(wc, hc, parse_nm(target), block, 0.01), parse_nm(target).n, parse_nm(target).m));
  }
  EXPECT_NO_THROW(check_sparsegpt_blocksize(6, parse_sparsity("0.5")));  // unstructured: any blocksize
  EXPECT_THROW(check_sparsegpt_blocksize(0, parse_sparsity("0.5")), Error);
}

TEST(MaskTarget, MasksThatMissTheirNMTargetAreNeverWrittenUnderItsLabel) {
  PruneResult r;
  LinearPruneResult& lr = r.linears.emplace_back();
  lr.name = "model.layers.0.mlp.up_proj";
  lr.mask = Mask(2, 8);
  for (int64_t c : {0, 1, 4, 5, 8, 9, 12, 13}) lr.mask.pruned[static_cast<size_t>(c)] = 1;  // rows 0 and 1: 2:4
  EXPECT_NO_THROW(check_mask_target(lr.mask, parse_nm("2:4"), lr.name));
  EXPECT_NO_THROW(check_mask_target(lr.mask, parse_sparsity("0.3"), lr.name));
  test::TempDir tmp;
  write_mask_file(tmp / "ok.safetensors", r, PruneMethod::kSparseGPT, parse_nm("2:4"));
  EXPECT_TRUE(std::filesystem::exists(tmp / "ok.safetensors"));
  try {
    write_mask_file(tmp / "bad.safetensors", r, PruneMethod::kSparseGPT, parse_nm("1:4"));
    ADD_FAILURE() << "a 2:4 mask was written as 1:4";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj: the mask [2, 8] is not 1:4"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "bad.safetensors"));
}

}  // namespace
}  // namespace sparsa

namespace sparsa {
namespace {

// The driver merges per-sample statistics in sample order: one thread or two give bit-identical
// masks and weights.
TEST(Driver, ResultsDoNotDependOnThreadCount) {
  const Model dense = load_model(test::repo_dir() / "models" / "tiny-llama-15m");
  TensorI32 calib({3, 40});
  for (size_t i = 0; i < calib.numel(); ++i) calib.data[i] = static_cast<int32_t>((i * 2654435761u) % 8192);
  for (auto method : {PruneMethod::kWanda, PruneMethod::kSparseGPT}) {
    PruneOptions opt;
    opt.method = method;
    opt.target = parse_nm("2:4");
    Model one = dense, two = dense;
    omp_set_num_threads(1);
    const PruneResult r1 = prune_model(one, calib, opt);
    omp_set_num_threads(2);
    const PruneResult r2 = prune_model(two, calib, opt);
    ASSERT_EQ(r1.linears.size(), r2.linears.size());
    for (size_t i = 0; i < r1.linears.size(); ++i) EXPECT_EQ(r1.linears[i].mask.pruned, r2.linears[i].mask.pruned) << r1.linears[i].name;
    for (size_t l = 0; l < one.blocks.size(); ++l)
      for (int r = 0; r < kNumLinearRoles; ++r)
        EXPECT_EQ(one.blocks[l].linears[r].weight.data, two.blocks[l].linears[r].weight.data) << prune_method_name(method);
  }
}

}  // namespace
}  // namespace sparsa
