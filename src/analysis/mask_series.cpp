// Ablation series: one method across several mask sets on one layer, compared pairwise.
#include <algorithm>

#include "sparsa/error.h"
#include "sparsa/mask_compare.h"

namespace sparsa {
namespace {

// The matrices of `set` in `layer` (all when layer < 0), sorted by name.
std::vector<const MaskInfo*> matrices_in_layer(const MaskSet& set, int64_t layer) {
  std::vector<const MaskInfo*> out;
  for (const MaskInfo& m : set.matrices())
    if (layer < 0 || m.layer == layer) out.push_back(&m);
  std::sort(out.begin(), out.end(), [](const MaskInfo* x, const MaskInfo* y) { return x->name < y->name; });
  return out;
}

void check_same_matrices(const MaskSet& ref, const std::vector<const MaskInfo*>& ref_ms, const MaskSet& other,
                         const std::vector<const MaskInfo*>& other_ms) {
  if (ref_ms.size() != other_ms.size())
    bad_input("{} has {} matrices in the compared layer(s) but {} has {}", ref.source(), ref_ms.size(), other.source(),
              other_ms.size());
  for (size_t i = 0; i < ref_ms.size(); ++i) {
    const MaskInfo& x = *ref_ms[i];
    const MaskInfo& y = *other_ms[i];
    if (x.name != y.name) bad_input("matrix '{}' of {} has no mask in {}", x.name, ref.source(), other.source());
    if (x.rows != y.rows || x.cols != y.cols)
      bad_input("matrix '{}' is [{}, {}] in {} but [{}, {}] in {}", x.name, x.rows, x.cols, ref.source(), y.rows,
                y.cols, other.source());
  }
}

}  // namespace

SeriesComparison compare_series(const std::vector<const MaskSet*>& sets, const std::vector<std::string>& labels,
                                int64_t layer) {
  SPARSA_ASSERT(sets.size() >= 2 && labels.size() == sets.size());
  const size_t n = sets.size();
  std::vector<std::vector<const MaskInfo*>> ms(n);
  for (size_t s = 0; s < n; ++s) ms[s] = matrices_in_layer(*sets[s], layer);
  if (ms[0].empty()) bad_input("{}: no matrix in layer {}", sets[0]->source(), layer);
  for (size_t s = 1; s < n; ++s) check_same_matrices(*sets[0], ms[0], *sets[s], ms[s]);

  SeriesComparison out;
  out.labels = labels;
  out.layer = layer;
  for (const MaskInfo* m : ms[0])
    if (std::find(out.components.begin(), out.components.end(), m->component) == out.components.end())
      out.components.push_back(m->component);
  std::sort(out.components.begin(), out.components.end());
  const size_t n_comp = out.components.size();

  // bits[s][k]: the k-th matrix of set s.
  std::vector<std::vector<BitMatrix>> bits(n);
  for (size_t s = 0; s < n; ++s)
    for (const MaskInfo* m : ms[s]) bits[s].push_back(sets[s]->load_pruned(*m));

  std::vector<OverlapCounts> pooled(n * n);
  std::vector<double> jaccard_sum(n * n, 0.0);  // of the per-matrix values
  std::vector<std::vector<OverlapCounts>> per_comp(n_comp, std::vector<OverlapCounts>(n * n));
  for (size_t k = 0; k < ms[0].size(); ++k) {
    const size_t comp = static_cast<size_t>(
        std::find(out.components.begin(), out.components.end(), ms[0][k]->component) - out.components.begin());
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i; j < n; ++j) {
        const OverlapCounts c = compare_masks(bits[i][k], bits[j][k]).counts;
        OverlapCounts mirrored = c;  // (j, i): the same overlap with the sides swapped
        std::swap(mirrored.pruned_a, mirrored.pruned_b);
        pooled[i * n + j] += c;
        per_comp[comp][i * n + j] += c;
        jaccard_sum[i * n + j] += c.jaccard();
        if (j == i) continue;
        jaccard_sum[j * n + i] += c.jaccard();
        pooled[j * n + i] += mirrored;
        per_comp[comp][j * n + i] += mirrored;
      }
  }
  const auto table = [n](const std::vector<OverlapCounts>& cs, double (OverlapCounts::*metric)() const) {
    std::vector<double> t(n * n);
    for (size_t i = 0; i < n * n; ++i) t[i] = (cs[i].*metric)();
    return t;
  };
  out.jaccard = table(pooled, &OverlapCounts::jaccard);
  out.hamming = table(pooled, &OverlapCounts::hamming);
  for (double v : jaccard_sum) out.jaccard_matrix_mean.push_back(v / static_cast<double>(ms[0].size()));
  for (size_t i = 0; i < n; ++i) out.sparsity.push_back(pooled[i * n + i].sparsity_a());
  for (size_t c = 0; c < n_comp; ++c) {
    out.component_jaccard.push_back(table(per_comp[c], &OverlapCounts::jaccard));
    out.component_hamming.push_back(table(per_comp[c], &OverlapCounts::hamming));
  }
  return out;
}

}  // namespace sparsa
