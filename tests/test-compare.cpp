// Mask comparison: the metrics against a brute-force reference on random masks of odd sizes and
// against hand-computed tiny cases; mask-set loading (packbits, names, column counts); the
// ablation series; and `sparsa compare` on the golden mask files and on a pruned folder, with
// bad input (mismatched shapes or key sets) exiting 2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "sparsa/error.h"
#include "sparsa/mask_compare.h"
#include "sparsa/prune.h"
#include "sparsa/report.h"
#include "sparsa/store.h"
#include "sparsa/safetensors.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_sparsa;
using test::TempDir;

fs::path golden(const std::string& name) { return test::shared_dir() / "golden" / name; }
std::string fmt_4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// ---- brute-force reference on boolean matrices (1 = pruned) ----

struct Ref {
  double jaccard, hamming, sparsity_a, sparsity_b, cosine;
};

// Over the positions idx of the [rows, cols] matrices.
Ref reference(const Mask& a, const Mask& b, const std::vector<float>& wa, const std::vector<float>& wb,
              const std::vector<int64_t>& idx) {
  double inter = 0, uni = 0, diff = 0, pa = 0, pb = 0, dot = 0, na = 0, nb = 0;
  for (int64_t i : idx) {
    const bool ka = !a.pruned[i], kb = !b.pruned[i];
    inter += ka && kb;
    uni += ka || kb;
    diff += ka != kb;
    pa += !ka;
    pb += !kb;
    const double x = ka ? wa[i] : 0.0, y = kb ? wb[i] : 0.0;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  const double n = static_cast<double>(idx.size());
  return {uni > 0 ? inter / uni : 1.0, diff / n, pa / n, pb / n,
          na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : std::nan("")};
}

BitMatrix to_bits(const Mask& m) {
  BitMatrix b(m.rows, m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) b.set(r, c, m.at(r, c));
  return b;
}

Mask random_mask(int64_t rows, int64_t cols, double p, std::mt19937& rng) {
  Mask m(rows, cols);
  std::bernoulli_distribution d(p);
  for (auto& v : m.pruned) v = d(rng);
  return m;
}

Tensor masked_weights(const std::vector<float>& w, const Mask& m) {
  Tensor t({m.rows, m.cols});
  for (size_t i = 0; i < w.size(); ++i) t.data[i] = m.pruned[i] ? 0.0f : w[i];
  return t;
}

void expect_feature(const FeatureMetrics& f, size_t i, const Ref& r, bool with_cosine) {
  EXPECT_NEAR(f.jaccard[i], r.jaccard, 1e-12);
  EXPECT_NEAR(f.hamming[i], r.hamming, 1e-12);
  EXPECT_NEAR(f.sparsity_a[i], r.sparsity_a, 1e-12);
  EXPECT_NEAR(f.sparsity_b[i], r.sparsity_b, 1e-12);
  if (!with_cosine) return;
  if (std::isnan(r.cosine)) EXPECT_TRUE(std::isnan(f.cosine[i]));
  else EXPECT_NEAR(f.cosine[i], r.cosine, 1e-9);
}

TEST(CompareMasks, MatchesBruteForceOnRandomOddSizes) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (auto [rows, cols, p] : {std::tuple{13, 37, 0.5}, {1, 1, 0.3}, {7, 129, 0.9}, {65, 70, 0.1}, {3, 64, 1.0}}) {
    SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " p=" << p);
    const Mask a = random_mask(rows, cols, p, rng), b = random_mask(rows, cols, 0.5, rng);
    std::vector<float> wa(static_cast<size_t>(rows * cols)), wb(wa.size());
    for (auto& v : wa) v = normal(rng);
    for (size_t i = 0; i < wb.size(); ++i) wb[i] = 0.5f * wa[i] + normal(rng);
    const Tensor ta = masked_weights(wa, a), tb = masked_weights(wb, b);
    const MatrixComparison c = compare_masks(to_bits(a), to_bits(b), &ta, &tb);

    std::vector<int64_t> all(static_cast<size_t>(rows * cols));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    const Ref whole = reference(a, b, wa, wb, all);
    EXPECT_NEAR(c.counts.jaccard(), whole.jaccard, 1e-12);
    EXPECT_NEAR(c.counts.hamming(), whole.hamming, 1e-12);
    EXPECT_NEAR(c.counts.sparsity_a(), whole.sparsity_a, 1e-12);
    EXPECT_NEAR(c.counts.sparsity_b(), whole.sparsity_b, 1e-12);
    ASSERT_TRUE(c.cosine.has_value());
    if (std::isnan(whole.cosine)) EXPECT_TRUE(std::isnan(*c.cosine));
    else EXPECT_NEAR(*c.cosine, whole.cosine, 1e-9);

    ASSERT_EQ(c.per_row.jaccard.size(), static_cast<size_t>(rows));
    ASSERT_EQ(c.per_col.jaccard.size(), static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int64_t> idx;
      for (int64_t j = 0; j < cols; ++j) idx.push_back(r * cols + j);
      expect_feature(c.per_row, static_cast<size_t>(r), reference(a, b, wa, wb, idx), true);
    }
    for (int64_t j = 0; j < cols; ++j) {
      std::vector<int64_t> idx;
      for (int64_t r = 0; r < rows; ++r) idx.push_back(r * cols + j);
      expect_feature(c.per_col, static_cast<size_t>(j), reference(a, b, wa, wb, idx), true);
    }
  }
}

Mask mask_of(int64_t rows, int64_t cols, std::vector<uint8_t> v) {
  Mask m(rows, cols);
  m.pruned = std::move(v);
  return m;
}

TEST(CompareMasks, HandComputedTinyCase) {
  // kept a: (0,1) (0,2) (1,0) (1,1); kept b: (0,2) (0,3) (1,0) (1,1): 3 shared of 5 kept by either.
  const Mask a = mask_of(2, 4, {1, 0, 0, 1, 0, 0, 1, 1});
  const Mask b = mask_of(2, 4, {1, 1, 0, 0, 0, 0, 1, 1});
  const MatrixComparison c = compare_masks(to_bits(a), to_bits(b));
  EXPECT_DOUBLE_EQ(c.counts.jaccard(), 0.6);
  EXPECT_DOUBLE_EQ(c.counts.hamming(), 0.25);
  EXPECT_DOUBLE_EQ(c.counts.sparsity_a(), 0.5);
  EXPECT_FALSE(c.cosine.has_value());
  EXPECT_EQ(c.per_row.jaccard, (std::vector<double>{1.0 / 3.0, 1.0}));
  EXPECT_EQ(c.per_row.hamming, (std::vector<double>{0.5, 0.0}));
  EXPECT_EQ(c.per_col.jaccard, (std::vector<double>{1.0, 0.5, 1.0, 0.0}));
  EXPECT_EQ(c.per_col.hamming, (std::vector<double>{0.0, 0.5, 0.0, 0.5}));
  EXPECT_TRUE(c.per_row.cosine.empty());

  // Both sides prune everything: the kept sets are equal (empty), Jaccard 1.
  const Mask full = mask_of(1, 3, {1, 1, 1});
  EXPECT_DOUBLE_EQ(compare_masks(to_bits(full), to_bits(full)).counts.jaccard(), 1.0);
  // Orthogonal weights: cosine 0; one side all zero: undefined (NaN), skipped by summaries.
  Tensor w1({1, 3}), w2({1, 3}), zero({1, 3});
  w1.data = {1, 0, 0};
  w2.data = {0, 2, 0};
  const Mask none = mask_of(1, 3, {0, 0, 0});
  EXPECT_DOUBLE_EQ(*compare_masks(to_bits(none), to_bits(none), &w1, &w2).cosine, 0.0);
  EXPECT_TRUE(std::isnan(*compare_masks(to_bits(none), to_bits(none), &w1, &zero).cosine));
  const Stat s = summarize({1.0, std::nan(""), 3.0});
  EXPECT_EQ(s.count, 2);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 3.0);
}

TEST(MaskSet, ParsesLlamaAndOptNamesWithoutARoleTable) {
  EXPECT_EQ(parse_module_name("model.layers.3.mlp.down_proj").layer, 3);
  EXPECT_EQ(parse_module_name("model.layers.3.mlp.down_proj").component, "mlp.down_proj");
  EXPECT_EQ(parse_module_name("model.decoder.layers.11.self_attn.out_proj").layer, 11);
  EXPECT_EQ(parse_module_name("model.decoder.layers.11.self_attn.out_proj").component, "self_attn.out_proj");
  EXPECT_EQ(parse_module_name("model.decoder.layers.0.fc1").component, "fc1");
  EXPECT_EQ(parse_module_name("layers.2.fc2").layer, 2);
  EXPECT_EQ(parse_module_name("lm_head").layer, -1);
  EXPECT_EQ(parse_module_name("lm_head").component, "lm_head");
  EXPECT_EQ(parse_module_name("model.sublayers.4.x").layer, -1);  // "layers." must start a segment
}

TEST(MaskSet, PackbitsRoundTripMatchesThePruneHelpers) {
  std::mt19937 rng(3);
  for (auto [rows, cols] : {std::pair{5, 13}, {2, 64}, {3, 71}, {1, 1}}) {
    const Mask m = random_mask(rows, cols, 0.4, rng);
    std::vector<uint8_t> packed = pack_mask(m);
    EXPECT_EQ(packed_from_bits(to_bits(m)), packed);
    const int64_t bytes = (cols + 7) / 8;
    if (cols % 8 != 0)
      for (int64_t r = 0; r < rows; ++r) packed[r * bytes + bytes - 1] |= static_cast<uint8_t>(0xffu >> (cols % 8));
    const BitMatrix b = bits_from_packed(packed.data(), rows, cols);  // padding bits set: ignored
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_EQ(b.row_count(r), std::count(m.pruned.begin() + r * cols, m.pruned.begin() + (r + 1) * cols, 1));
      for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(b.get(r, c), m.at(r, c));
    }
  }
}

// A mask file with one "<name>.mask" per entry (and "<name>.weight" when weights are given).
struct FileMatrix {
  std::string name;
  Mask mask;
  std::vector<float> weight;  // empty: no weight entry
};
void write_mask_file(const fs::path& p, const std::vector<FileMatrix>& ms) {
  std::vector<std::vector<uint8_t>> packed;
  packed.reserve(ms.size());
  std::vector<TensorToWrite> t;
  for (const auto& m : ms) {
    packed.push_back(pack_mask(m.mask));
    t.push_back({m.name + ".mask", DType::U8, {m.mask.rows, (m.mask.cols + 7) / 8}, packed.back().data()});
    if (!m.weight.empty()) t.push_back({m.name + ".weight", DType::F32, {m.mask.rows, m.mask.cols}, m.weight.data()});
  }
  write_safetensors(p, t);
}

TEST(MaskSet, ColumnCountsComeFromWeightsThenShapesThenPacking) {
  TempDir tmp;
  std::mt19937 rng(5);
  const Mask odd = random_mask(4, 13, 0.5, rng);
  std::vector<float> w(4 * 13, 1.0f);
  write_mask_file(tmp / "with_weight.safetensors", {{"model.layers.0.fc1", odd, w}});
  write_mask_file(tmp / "bare.safetensors", {{"model.layers.0.fc1", odd, {}}});
  write_mask_file(tmp / "shapes.safetensors", {{"model.layers.0.fc1", odd, w}});

  const MaskSet with_weight = MaskSet::open(tmp / "with_weight.safetensors");
  ASSERT_EQ(with_weight.matrices().size(), 1u);
  EXPECT_EQ(with_weight.matrices()[0].cols, 13);
  EXPECT_TRUE(with_weight.matrices()[0].has_weight);
  const Tensor loaded = *with_weight.load_weight(with_weight.matrices()[0]);
  for (size_t i = 0; i < loaded.numel(); ++i) EXPECT_EQ(loaded.data[i], odd.pruned[i] ? 0.0f : 1.0f);

  const MaskSet bare = MaskSet::open(tmp / "bare.safetensors");
  EXPECT_EQ(bare.matrices()[0].cols, 16);  // 8 x packed columns
  EXPECT_FALSE(bare.load_weight(bare.matrices()[0]).has_value());
  const MaskSet shaped = MaskSet::open(tmp / "bare.safetensors", tmp / "shapes.safetensors");
  EXPECT_EQ(shaped.matrices()[0].cols, 13);
  EXPECT_FALSE(shaped.matrices()[0].has_weight);  // shapes only, not weights

  // A weight that cannot belong to the mask, a file without masks, a missing path.
  write_mask_file(tmp / "conflict.safetensors", {{"model.layers.0.fc1", odd, std::vector<float>(4 * 13)}});
  std::vector<float> wide(4 * 20, 0.0f);
  write_safetensors(tmp / "wide.safetensors", {{"model.layers.0.fc1.weight", DType::F32, {4, 20}, wide.data()}});
  EXPECT_THROW(MaskSet::open(tmp / "bare.safetensors", tmp / "wide.safetensors"), Error);
  EXPECT_THROW(MaskSet::open(tmp / "wide.safetensors"), Error);
  EXPECT_THROW(MaskSet::open(tmp / "absent.safetensors"), Error);
}

TEST(CompareSeries, PooledPairwiseTablesMatchBruteForce) {
  TempDir tmp;
  std::mt19937 rng(11);
  const std::vector<std::string> names = {"model.layers.0.mlp.down_proj", "model.layers.0.self_attn.q_proj",
                                          "model.layers.1.mlp.down_proj"};
  std::vector<std::vector<Mask>> masks(3);
  std::vector<MaskSet> sets;
  for (int s = 0; s < 3; ++s) {
    std::vector<FileMatrix> ms;
    for (size_t k = 0; k < names.size(); ++k) {
      masks[s].push_back(random_mask(9, 24, 0.2 + 0.3 * s, rng));
      ms.push_back({names[k], masks[s].back(), {}});
    }
    write_mask_file(tmp / ("s" + std::to_string(s) + ".safetensors"), ms);
    sets.push_back(MaskSet::open(tmp / ("s" + std::to_string(s) + ".safetensors")));
  }
  const SeriesComparison sc = compare_series({&sets[0], &sets[1], &sets[2]}, {"a", "b", "c"}, 0);
  EXPECT_EQ(sc.components, (std::vector<std::string>{"mlp.down_proj", "self_attn.q_proj"}));
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) {
      double inter = 0, uni = 0, diff = 0, n = 0, pruned_i = 0;
      for (size_t k = 0; k < 2; ++k)  // layer 0: the first two matrices
        for (size_t e = 0; e < masks[i][k].pruned.size(); ++e) {
          const bool ki = !masks[i][k].pruned[e], kj = !masks[j][k].pruned[e];
          inter += ki && kj;
          uni += ki || kj;
          diff += ki != kj;
          pruned_i += !ki;
          ++n;
        }
      EXPECT_NEAR(sc.jaccard[i * 3 + j], inter / uni, 1e-12);
      EXPECT_NEAR(sc.hamming[i * 3 + j], diff / n, 1e-12);
      if (i == j) EXPECT_NEAR(sc.sparsity[i], pruned_i / n, 1e-12);
    }
  EXPECT_THROW(compare_series({&sets[0], &sets[1]}, {"a", "b"}, 7), Error);  // no matrix in layer 7
}

// ---- the CLI ----

json run_json(const std::vector<std::string>& args) {
  const auto r = run_sparsa(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

struct Overlap {
  double jaccard, hamming, sparsity_a;
};
// Pooled kept-Jaccard, Hamming and a's sparsity of two golden mask files, from prune.h's unpack_mask.
Overlap golden_overlap(const std::string& fa, const std::string& fb, const std::string& only = "") {
  const auto a = SafetensorsFile::open(golden(fa)), b = SafetensorsFile::open(golden(fb));
  double inter = 0, uni = 0, diff = 0, n = 0, pruned_a = 0;
  for (const TensorInfo& t : a->tensors()) {
    if (t.name.size() < 5 || t.name.substr(t.name.size() - 5) != ".mask") continue;
    if (!only.empty() && t.name != only + ".mask") continue;
    const TensorInfo* u = b->find(t.name);
    const Mask ma = unpack_mask(t.data, t.shape[0], t.shape[1] * 8), mb = unpack_mask(u->data, t.shape[0], t.shape[1] * 8);
    for (size_t i = 0; i < ma.pruned.size(); ++i) {
      inter += !ma.pruned[i] && !mb.pruned[i];
      uni += !ma.pruned[i] || !mb.pruned[i];
      diff += ma.pruned[i] != mb.pruned[i];
      pruned_a += ma.pruned[i];
      ++n;
    }
  }
  return {inter / uni, diff / n, pruned_a / n};
}

TEST(CompareCli, GoldenWandaVsSparseGptAndMagnitudeVsWanda) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  for (auto [fa, fb] : {std::pair{"wanda_u50.safetensors", "sparsegpt_u50.safetensors"},
                        {"magnitude_u50.safetensors", "wanda_u50.safetensors"}}) {
    SCOPED_TRACE(std::string(fa) + " vs " + fb);
    const json j = run_json({"compare", golden(fa).string(), golden(fb).string(), "--json"});
    ASSERT_EQ(j["matrices"].size(), 42u);
    const auto [jac, ham, sparsity] = golden_overlap(fa, fb);
    EXPECT_NEAR(j["summary"]["overall"]["jaccard"].get<double>(), jac, 1e-12);
    EXPECT_NEAR(j["summary"]["overall"]["hamming"].get<double>(), ham, 1e-12);
    EXPECT_NEAR(j["summary"]["overall"]["sparsity_a"].get<double>(), sparsity, 1e-12);
    for (const json& m : j["matrices"]) {
      const std::string name = m["name"];
      EXPECT_EQ(name, "model.layers." + std::to_string(m["layer"].get<int>()) + "." + m["component"].get<std::string>());
      EXPECT_NEAR(m["sparsity_a"].get<double>(), 0.5, 0.01);  // magnitude also prunes ties at its threshold
      EXPECT_TRUE(m["cosine"].is_null());  // wanda / magnitude files carry no weights
      if (name == "model.layers.3.mlp.down_proj") {
        const auto [mj, mh, ms] = golden_overlap(fa, fb, name);
        EXPECT_NEAR(m["sparsity_a"].get<double>(), ms, 1e-12);
        EXPECT_NEAR(m["jaccard"].get<double>(), mj, 1e-12);
        EXPECT_NEAR(m["hamming"].get<double>(), mh, 1e-12);
        EXPECT_GE(m["per_row"]["jaccard"]["max"].get<double>(), mj);
        EXPECT_LE(m["per_row"]["jaccard"]["min"].get<double>(), mj);
      }
    }
    EXPECT_EQ(j["summary"]["by_component"].size(), 7u);
    EXPECT_EQ(j["summary"]["by_layer"].size(), 6u);
    EXPECT_EQ(j["summary"]["by_layer_component"].size(), 42u);
  }
}

TEST(CompareCli, AMaskFileWithItselfIsIdentical) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  const std::string f = golden("sparsegpt_u50.safetensors").string();
  const json j = run_json({"compare", f, f, "--json"});
  int with_cosine = 0;
  for (const json& m : j["matrices"]) {
    EXPECT_EQ(m["jaccard"].get<double>(), 1.0);
    EXPECT_EQ(m["hamming"].get<double>(), 0.0);
    EXPECT_EQ(m["per_col"]["jaccard"]["min"].get<double>(), 1.0);
    if (!m["cosine"].is_null()) {  // the two matrices whose SparseGPT-updated weights the file holds
      ++with_cosine;
      EXPECT_NEAR(m["cosine"].get<double>(), 1.0, 1e-12);
    }
  }
  EXPECT_EQ(with_cosine, 2);
}

TEST(CompareCli, FeaturesOutCsvAndJson) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  TempDir tmp;
  const std::string a = golden("wanda_2-4.safetensors").string(), b = golden("wanda_4-8.safetensors").string();
  ASSERT_EQ(run_sparsa({"compare", a, b, "--features-out", (tmp / "f.csv").string()}).exit_code, 0);
  const std::string csv = test::read_file(tmp / "f.csv");
  // a line per row and per column of every matrix; per layer: q, o [384, 384]; k, v [128, 384];
  // gate, up [1024, 384]; down [384, 1024].
  const int64_t per_layer = 2 * (384 + 384) + 2 * (128 + 384) + 2 * (1024 + 384) + (384 + 1024);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 6 * per_layer);
  const double ham = golden_overlap("wanda_2-4.safetensors", "wanda_4-8.safetensors", "model.layers.0.mlp.down_proj").hamming;
  ASSERT_EQ(run_sparsa({"compare", a, b, "--features-out", (tmp / "f.json").string()}).exit_code, 0);
  const json f = json::parse(test::read_file(tmp / "f.json"));
  for (const json& m : f["matrices"]) {
    if (m["name"] != "model.layers.0.mlp.down_proj") continue;
    double sum = 0;  // the mean of the per-row Hamming distances is the matrix's (equal row lengths)
    for (const json& v : m["per_row"]["hamming"]) sum += v.get<double>();
    EXPECT_NEAR(sum / m["per_row"]["hamming"].size(), ham, 1e-12);
    EXPECT_EQ(m["per_col"]["jaccard"].size(), 1024u);
  }
  EXPECT_EQ(run_sparsa({"compare", a, b, "--features-out", (tmp / "f.txt").string()}).exit_code, 2);
}

TEST(CompareCli, SeriesOnGoldenStructuresForOneLayer) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  const std::vector<std::string> files = {"wanda_u50.safetensors", "wanda_2-4.safetensors", "wanda_4-8.safetensors"};
  const json j = run_json({"compare", "--series", golden(files[0]).string(), golden(files[1]).string(),
                           golden(files[2]).string(), "--layer", "0", "--labels", "u50,2:4,4:8", "--json"});
  const json& s = j["series"];
  EXPECT_EQ(s["labels"], json({"u50", "2:4", "4:8"}));
  EXPECT_EQ(s["layer"], 0);
  EXPECT_EQ(s["components"].size(), 7u);
  for (size_t i = 0; i < 3; ++i)
    for (size_t k = 0; k < 3; ++k) {
      double inter = 0, uni = 0;  // pooled over layer 0's seven matrices
      const auto a = SafetensorsFile::open(golden(files[i])), b = SafetensorsFile::open(golden(files[k]));
      for (const TensorInfo& t : a->tensors()) {
        if (t.name.rfind("model.layers.0.", 0) != 0) continue;
        const Mask ma = unpack_mask(t.data, t.shape[0], t.shape[1] * 8);
        const Mask mb = unpack_mask(b->find(t.name)->data, t.shape[0], t.shape[1] * 8);
        for (size_t e = 0; e < ma.pruned.size(); ++e) {
          inter += !ma.pruned[e] && !mb.pruned[e];
          uni += !ma.pruned[e] || !mb.pruned[e];
        }
      }
      EXPECT_NEAR(s["jaccard"][i][k].get<double>(), inter / uni, 1e-12);
    }
}

TEST(CompareCli, APrunedFolderAgainstTheGoldenMaskFile) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  TempDir tmp;
  const auto out = tmp / "mag";
  const auto r = run_sparsa({"prune", "--model", (test::repo_dir() / "models" / "tiny-llama-15m").string(), "--method",
                             "magnitude", "--sparsity", "0.5", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = run_json({"compare", out.string(), golden("magnitude_u50.safetensors").string(), "--json"});
  ASSERT_EQ(j["matrices"].size(), 42u);
  EXPECT_GE(j["summary"]["overall"]["jaccard"].get<double>(), 0.999);
  const json self = run_json({"compare", out.string(), out.string(), "--json"});
  for (const json& m : self["matrices"]) EXPECT_NEAR(m["cosine"].get<double>(), 1.0, 1e-12);  // the folder's weights
}

TEST(CompareCli, MismatchedShapesOrKeySetsExitTwoNamingTheMatrix) {
  TempDir tmp;
  std::mt19937 rng(2);
  const std::string name = "model.layers.0.mlp.up_proj";
  write_mask_file(tmp / "a.safetensors", {{name, random_mask(4, 16, 0.5, rng), {}}});
  write_mask_file(tmp / "b.safetensors", {{name, random_mask(5, 16, 0.5, rng), {}}});
  write_mask_file(tmp / "c.safetensors", {{name, random_mask(4, 16, 0.5, rng), {}},
                                          {"model.layers.1.mlp.up_proj", random_mask(4, 16, 0.5, rng), {}}});
  for (const auto& [x, y, what] : {std::tuple{"a", "b", name}, {"a", "c", std::string("model.layers.1.mlp.up_proj")},
                                   {"c", "a", std::string("model.layers.1.mlp.up_proj")}}) {
    const auto r = run_sparsa({"compare", (tmp / (std::string(x) + ".safetensors")).string(),
                               (tmp / (std::string(y) + ".safetensors")).string(), "--json"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  }
  EXPECT_EQ(run_sparsa({"compare", (tmp / "a.safetensors").string()}).exit_code, 2);  // one set only
  EXPECT_EQ(run_sparsa({"compare", (tmp / "a.safetensors").string(), (tmp / "nope").string()}).exit_code, 2);
  EXPECT_EQ(run_sparsa({"compare", "--series", (tmp / "a.safetensors").string(), (tmp / "c.safetensors").string(),
                        "--layer", "0", "--labels", "x"}).exit_code, 2);  // one label for two sets
  if (test::shared_available()) {
    const auto r = run_sparsa({"compare", golden("wanda_u50.safetensors").string(),
                               golden("opt_wanda_u50.safetensors").string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
  }
}


// The two "mean Jaccard"s, labelled: compare's new keys repeat its old ones (pooled = "jaccard",
// mean over matrices = "jaccard_per_matrix".mean), differ on real masks, and REPORT.md gives the
// same two numbers for the same pair.
TEST(CompareCli, PooledAndPerMatrixJaccardAreLabelledAndMatchTheReport) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  test::TempDir dir;
  const fs::path db = dir / "study.duckdb";
  const json j = run_json({"compare", golden("wanda_u50.safetensors").string(),
                           golden("sparsegpt_u50.safetensors").string(), "--db", db.string(), "--json"});
  const json& all = j["summary"]["overall"];
  EXPECT_EQ(all["jaccard_pooled"].get<double>(), all["jaccard"].get<double>());
  EXPECT_EQ(all["jaccard_mean_over_matrices"].get<double>(), all["jaccard_per_matrix"]["mean"].get<double>());
  EXPECT_NE(fmt_4(all["jaccard_pooled"].get<double>()), fmt_4(all["jaccard_mean_over_matrices"].get<double>()));
  for (const json& g : j["summary"]["by_component"])
    EXPECT_EQ(g["jaccard_pooled"].get<double>(), g["jaccard"].get<double>());
  const auto text = test::run_sparsa({"compare", golden("wanda_u50.safetensors").string(),
                                      golden("sparsegpt_u50.safetensors").string()});
  EXPECT_NE(text.out.find("pooled"), std::string::npos);
  EXPECT_NE(text.out.find(fmt_4(all["jaccard_mean_over_matrices"].get<double>())), std::string::npos) << text.out;
  {
    auto store = Store::open(db, Store::Mode::kReadWrite);
    RunInfo dense;
    dense.kind = RunKind::kDense;
    RunWriter w = store->begin_run(dense);
    w.add_perplexity({"persuasion", PplKind::kDense, std::nullopt, 20.0, 1000, 1.0});
    w.commit();
    write_study_report(*store, dir / "figures", dir / "REPORT.md");
  }
  std::ifstream in(dir / "REPORT.md");
  const std::string report((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(report.find("Jaccard, pooled | Jaccard, mean over matrices"), std::string::npos) << report;
  const std::string cells = "| " + fmt_4(all["jaccard_pooled"].get<double>()) + " | " +
                            fmt_4(all["jaccard_mean_over_matrices"].get<double>()) + " | ";
  EXPECT_NE(report.find(cells), std::string::npos) << cells << "\n" << report;
}

TEST(CompareCli, SeriesGivesBothJaccards) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
  const json j = run_json({"compare", "--series", golden("wanda_u50.safetensors").string(),
                           golden("sparsegpt_u50.safetensors").string(), "--json"});
  const json& s = j["series"];
  EXPECT_EQ(s["jaccard_pooled"], s["jaccard"]);
  const json single = run_json({"compare", golden("wanda_u50.safetensors").string(),
                                golden("sparsegpt_u50.safetensors").string(), "--json"});
  EXPECT_NEAR(s["jaccard_mean_over_matrices"][0][1].get<double>(),
              single["summary"]["overall"]["jaccard_mean_over_matrices"].get<double>(), 1e-12);
  EXPECT_EQ(s["jaccard_mean_over_matrices"][1][1].get<double>(), 1.0);
}

}  // namespace
}  // namespace sparsa
