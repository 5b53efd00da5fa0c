// Jaccard / Hamming / sparsity / cosine between two masks, per matrix and per feature, and
// between two mask sets with overlap summaries per layer and component.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>

#include "sparsa/error.h"
#include "sparsa/mask_compare.h"

namespace sparsa {
namespace {

double ratio(int64_t num, int64_t den) { return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : 0.0; }

double cosine_of(double dot, double na, double nb) {
  if (na <= 0.0 || nb <= 0.0) return std::numeric_limits<double>::quiet_NaN();
  return dot / std::sqrt(na * nb);
}

void push_counts(FeatureMetrics& f, const OverlapCounts& c) {
  f.jaccard.push_back(c.jaccard());
  f.hamming.push_back(c.hamming());
  f.sparsity_a.push_back(c.sparsity_a());
  f.sparsity_b.push_back(c.sparsity_b());
}

// Adds 1 to count[c] for every set bit c of the row `words`.
void count_columns(const uint64_t* words, int64_t n_words, std::vector<int64_t>& count) {
  for (int64_t i = 0; i < n_words; ++i)
    for (uint64_t w = words[i]; w != 0; w &= w - 1) ++count[static_cast<size_t>(i * 64 + std::countr_zero(w))];
}

// Per-matrix, per-row and per-column cosines of two [rows, cols] weights.
void add_cosines(const Tensor& wa, const Tensor& wb, MatrixComparison& out) {
  const int64_t rows = out.rows, cols = out.cols;
  std::vector<double> col_dot(static_cast<size_t>(cols), 0.0), col_na(col_dot), col_nb(col_dot);
  double dot = 0, na = 0, nb = 0;
  out.per_row.cosine.reserve(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = wa.ptr() + r * cols;
    const float* b = wb.ptr() + r * cols;
    double rd = 0, ra = 0, rb = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double x = a[c], y = b[c];
      rd += x * y;
      ra += x * x;
      rb += y * y;
      col_dot[c] += x * y;
      col_na[c] += x * x;
      col_nb[c] += y * y;
    }
    out.per_row.cosine.push_back(cosine_of(rd, ra, rb));
    dot += rd;
    na += ra;
    nb += rb;
  }
  out.per_col.cosine.reserve(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) out.per_col.cosine.push_back(cosine_of(col_dot[c], col_na[c], col_nb[c]));
  out.cosine = cosine_of(dot, na, nb);
}

GroupOverlap make_group(int64_t layer, std::string component) {
  GroupOverlap g;
  g.layer = layer;
  g.component = std::move(component);
  return g;
}

// Pools the matrices selected by `key` into groups (sorted by key).
template <typename Key, typename KeyFn, typename MakeFn>
std::vector<GroupOverlap> group_by(const std::vector<MatrixComparison>& ms, KeyFn key, MakeFn make) {
  std::map<Key, std::vector<const MatrixComparison*>> groups;
  for (const auto& m : ms) groups[key(m)].push_back(&m);
  std::vector<GroupOverlap> out;
  for (const auto& [k, members] : groups) {
    GroupOverlap g = make(k);
    std::vector<double> jac, ham;
    for (const MatrixComparison* m : members) {
      g.counts += m->counts;
      jac.push_back(m->counts.jaccard());
      ham.push_back(m->counts.hamming());
    }
    g.matrices = static_cast<int64_t>(members.size());
    g.jaccard = summarize(jac);
    g.hamming = summarize(ham);
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

double OverlapCounts::jaccard() const {
  const int64_t kept_union = kept_both + differ;  // kept by both + kept by exactly one
  return kept_union > 0 ? static_cast<double>(kept_both) / static_cast<double>(kept_union) : 1.0;
}
double OverlapCounts::hamming() const { return ratio(differ, positions); }
double OverlapCounts::sparsity_a() const { return ratio(pruned_a, positions); }
double OverlapCounts::sparsity_b() const { return ratio(pruned_b, positions); }

OverlapCounts& OverlapCounts::operator+=(const OverlapCounts& o) {
  positions += o.positions;
  pruned_a += o.pruned_a;
  pruned_b += o.pruned_b;
  kept_both += o.kept_both;
  differ += o.differ;
  return *this;
}

Stat summarize(const std::vector<double>& values) {
  Stat s;
  double sum = 0;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    s.min = s.count == 0 ? v : std::min(s.min, v);
    s.max = s.count == 0 ? v : std::max(s.max, v);
    sum += v;
    ++s.count;
  }
  if (s.count > 0) s.mean = sum / static_cast<double>(s.count);
  return s;
}

MatrixComparison compare_masks(const BitMatrix& a, const BitMatrix& b, const Tensor* wa, const Tensor* wb) {
  SPARSA_ASSERT(a.rows() == b.rows() && a.cols() == b.cols());
  MatrixComparison out;
  out.rows = a.rows();
  out.cols = a.cols();
  const int64_t rows = out.rows, cols = out.cols, n_words = a.words_per_row();
  std::vector<int64_t> col_a(static_cast<size_t>(cols), 0), col_b(col_a), col_differ(col_a), col_union(col_a);
  std::vector<uint64_t> x(static_cast<size_t>(n_words)), u(static_cast<size_t>(n_words));
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t* pa = a.row(r);
    const uint64_t* pb = b.row(r);
    OverlapCounts c;
    c.positions = cols;
    int64_t pruned_union = 0;
    for (int64_t i = 0; i < n_words; ++i) {
      x[i] = pa[i] ^ pb[i];
      u[i] = pa[i] | pb[i];
      c.pruned_a += std::popcount(pa[i]);
      c.pruned_b += std::popcount(pb[i]);
      c.differ += std::popcount(x[i]);
      pruned_union += std::popcount(u[i]);
    }
    c.kept_both = cols - pruned_union;
    push_counts(out.per_row, c);
    out.counts += c;
    count_columns(pa, n_words, col_a);
    count_columns(pb, n_words, col_b);
    count_columns(x.data(), n_words, col_differ);
    count_columns(u.data(), n_words, col_union);
  }
  for (int64_t c = 0; c < cols; ++c) {
    OverlapCounts k;
    k.positions = rows;
    k.pruned_a = col_a[c];
    k.pruned_b = col_b[c];
    k.differ = col_differ[c];
    k.kept_both = rows - col_union[c];
    push_counts(out.per_col, k);
  }
  if (wa != nullptr && wb != nullptr) {
    SPARSA_ASSERT(wa->numel() == static_cast<size_t>(rows * cols) && wb->numel() == wa->numel());
    add_cosines(*wa, *wb, out);
  }
  return out;
}

MaskSetComparison compare_mask_sets(const MaskSet& a, const MaskSet& b) {
  MaskSetComparison out;
  out.a = a.source();
  out.b = b.source();
  for (const MaskInfo& mb : b.matrices())
    if (a.find(mb.name) == nullptr) bad_input("{}: matrix '{}' has no mask in {}", b.source(), mb.name, a.source());
  for (const MaskInfo& ma : a.matrices()) {
    const MaskInfo* mb = b.find(ma.name);
    if (mb == nullptr) bad_input("{}: matrix '{}' has no mask in {}", a.source(), ma.name, b.source());
    if (ma.rows != mb->rows || ma.cols != mb->cols)
      bad_input("matrix '{}' is [{}, {}] in {} but [{}, {}] in {}", ma.name, ma.rows, ma.cols, a.source(), mb->rows,
                mb->cols, b.source());
    const std::optional<Tensor> wa = a.load_weight(ma), wb = b.load_weight(*mb);
    MatrixComparison m = compare_masks(a.load_pruned(ma), b.load_pruned(*mb), wa ? &*wa : nullptr, wb ? &*wb : nullptr);
    m.name = ma.name;
    m.layer = ma.layer;
    m.component = ma.component;
    out.matrices.push_back(std::move(m));
  }
  out.overall = group_by<int>(out.matrices, [](const MatrixComparison&) { return 0; },
                              [](int) { return make_group(-1, ""); }).front();
  out.by_layer = group_by<int64_t>(out.matrices, [](const MatrixComparison& m) { return m.layer; },
                                   [](int64_t l) { return make_group(l, ""); });
  out.by_component = group_by<std::string>(out.matrices, [](const MatrixComparison& m) { return m.component; },
                                           [](const std::string& c) { return make_group(-1, c); });
  using LayerComponent = std::pair<int64_t, std::string>;
  out.by_layer_component = group_by<LayerComponent>(
      out.matrices, [](const MatrixComparison& m) { return LayerComponent{m.layer, m.component}; },
      [](const LayerComponent& k) { return make_group(k.first, k.second); });
  return out;
}

}  // namespace sparsa
