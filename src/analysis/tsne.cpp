// t-SNE of the features in 2-D (van der Maaten & Hinton 2008; Barnes-Hut: van der Maaten 2014),
// optimised as scikit-learn does: early exaggeration 12 with momentum 0.5 for 250 steps, then
// momentum 0.8, per-coordinate gains. Input affinities come from Hamming or Jaccard distances
// between the bit rows, each row's bandwidth set by binary search to the target perplexity.
// Every sum runs in a fixed order, so the thread count never changes the result.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>

#include "analysis/coactivation_common.h"
#include "sparsa/coactivation.h"
#include "sparsa/parallel.h"

namespace sparsa {
namespace {

constexpr double kExaggeration = 12;
constexpr int kExplorationSteps = kTsneExaggerationSteps;
constexpr int64_t kDistanceRows = 256;  // rows of distances computed at once

// Sparse symmetric affinities P, rows in CSR form.
struct Affinities {
  std::vector<int64_t> start;  // [rows + 1]
  std::vector<int64_t> col;    // [nnz]
  std::vector<double> p;       // [nnz], sums to 1 over all entries
};

// Conditional probabilities p_{j|i} ∝ exp(-beta d_j) whose entropy is log(perplexity). [count]
void conditional_probabilities(const double* d, int64_t count, double perplexity, double* p) {
  const double target = std::log(perplexity), dmin = *std::min_element(d, d + count);
  double beta = 1, lo = 0, hi = std::numeric_limits<double>::infinity();
  for (int step = 0; step < 200; ++step) {
    double sum = 0, weighted = 0;
    for (int64_t j = 0; j < count; ++j) {
      p[j] = std::exp(-beta * (d[j] - dmin));
      sum += p[j];
      weighted += (d[j] - dmin) * p[j];
    }
    const double entropy = std::log(sum) + beta * weighted / sum;
    for (int64_t j = 0; j < count; ++j) p[j] /= sum;
    if (std::abs(entropy - target) < 1e-5) break;
    if (entropy > target) lo = beta, beta = std::isinf(hi) ? beta * 2 : (beta + hi) / 2;
    else hi = beta, beta = (beta + lo) / 2;
  }
}

// Distances from rows [begin, end) to all rows under the chosen measure. [end - begin, rows]
std::vector<double> feature_distances(const BitMatrix& m, const std::vector<int32_t>& counts, int64_t begin,
                                      int64_t end, FeatureDistance kind) {
  std::vector<int64_t> rows(static_cast<size_t>(end - begin));
  std::iota(rows.begin(), rows.end(), begin);
  const std::vector<int32_t> ham = hamming_to(m, rows);  // [end - begin, rows]
  const int64_t n = m.rows();
  std::vector<double> d(ham.size());
  for (int64_t i = begin; i < end; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int32_t h = ham[(i - begin) * n + j];
      if (kind == FeatureDistance::kHamming) {
        d[(i - begin) * n + j] = static_cast<double>(h) / static_cast<double>(m.cols());
      } else {
        const int32_t both = (counts[i] + counts[j] - h) / 2, either = counts[i] + counts[j] - both;
        d[(i - begin) * n + j] = either == 0 ? 0.0 : 1.0 - static_cast<double>(both) / either;
      }
    }
  return d;
}

// P over each row's `neighbours` nearest rows (all other rows when neighbours == rows - 1),
// symmetrised as (p_{j|i} + p_{i|j}) / (2 rows).
Affinities affinities(const BitMatrix& m, int64_t neighbours, double perplexity, FeatureDistance kind) {
  const int64_t n = m.rows();
  std::vector<int32_t> counts(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) counts[i] = static_cast<int32_t>(m.row_count(i));
  std::vector<int64_t> nb(static_cast<size_t>(n * neighbours));  // [rows, neighbours]
  std::vector<double> pc(nb.size());                              // [rows, neighbours] p_{j|i}
  for (int64_t b = 0; b < n; b += kDistanceRows) {
    const int64_t e = std::min(n, b + kDistanceRows);
    const std::vector<double> d = feature_distances(m, counts, b, e, kind);
    ParallelFailure failure;
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = b; i < e; ++i)
      failure.run([&] {
        const double* row = d.data() + (i - b) * n;
        std::vector<int64_t> idx(static_cast<size_t>(n));
        std::iota(idx.begin(), idx.end(), 0);
        idx.erase(idx.begin() + i);
        auto closer = [&](int64_t x, int64_t y) { return row[x] < row[y] || (row[x] == row[y] && x < y); };
        std::partial_sort(idx.begin(), idx.begin() + neighbours, idx.end(), closer);
        std::vector<double> dn(static_cast<size_t>(neighbours));
        for (int64_t t = 0; t < neighbours; ++t) nb[i * neighbours + t] = idx[t], dn[t] = row[idx[t]];
        conditional_probabilities(dn.data(), neighbours, perplexity, pc.data() + i * neighbours);
      });
    failure.rethrow_if_any([&] { return fmt::format("finding the {} nearest of {} features", neighbours, n); });
  }
  struct Edge {
    int64_t i, j;
    double p;
  };
  std::vector<Edge> edges;
  edges.reserve(2 * nb.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < neighbours; ++t) {
      const double p = pc[i * neighbours + t] / (2.0 * static_cast<double>(n));
      edges.push_back({i, nb[i * neighbours + t], p});
      edges.push_back({nb[i * neighbours + t], i, p});
    }
  std::sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) { return a.i != b.i ? a.i < b.i : a.j < b.j; });
  Affinities a;
  a.start.assign(static_cast<size_t>(n + 1), 0);
  for (size_t e = 0; e < edges.size(); ++e) {
    if (e > 0 && edges[e].i == edges[e - 1].i && edges[e].j == edges[e - 1].j) {
      a.p.back() += edges[e].p;
      continue;
    }
    a.col.push_back(edges[e].j);
    a.p.push_back(edges[e].p);
    ++a.start[edges[e].i + 1];
  }
  std::partial_sum(a.start.begin(), a.start.end(), a.start.begin());
  return a;
}

// Quadtree over the embedding for the Barnes-Hut repulsion.
class QuadTree {
 public:
  explicit QuadTree(const std::vector<double>& y) : y_(y), order_(y.size() / 2) {
    std::iota(order_.begin(), order_.end(), 0);
    double x0 = y[0], x1 = y[0], y0 = y[1], y1 = y[1];
    for (size_t i = 0; i < order_.size(); ++i) {
      x0 = std::min(x0, y[2 * i]), x1 = std::max(x1, y[2 * i]);
      y0 = std::min(y0, y[2 * i + 1]), y1 = std::max(y1, y[2 * i + 1]);
    }
    nodes_.emplace_back();
    build(0, 0, static_cast<int64_t>(order_.size()), (x0 + x1) / 2, (y0 + y1) / 2,
          std::max(x1 - x0, y1 - y0) / 2 * (1 + 1e-9) + 1e-12, 0);
  }

  // Adds point i's repulsion sum_j q_ij^2 (y_i - y_j) to force and returns sum_j q_ij (j != i),
  // with q = 1 / (1 + |y_i - y_j|^2) and far cells summarised when width / distance < theta.
  double repulsion(int64_t i, double theta, double force[2]) const {
    const double px = y_[2 * i], py = y_[2 * i + 1];
    double z = 0;
    std::vector<int64_t> stack{0};
    while (!stack.empty()) {
      const Node& nd = nodes_[stack.back()];
      stack.pop_back();
      const double dx = px - nd.com_x, dy = py - nd.com_y, d2 = dx * dx + dy * dy;
      const double width = 2 * nd.half;
      if (nd.first_child < 0 || width * width < theta * theta * d2) {
        if (nd.first_child < 0) {
          for (int64_t t = nd.begin; t < nd.end; ++t) {
            const int64_t j = order_[t];
            if (j == i) continue;
            const double ex = px - y_[2 * j], ey = py - y_[2 * j + 1], q = 1 / (1 + ex * ex + ey * ey);
            z += q, force[0] += q * q * ex, force[1] += q * q * ey;
          }
        } else {
          const double q = 1 / (1 + d2), mass = static_cast<double>(nd.end - nd.begin);
          z += mass * q, force[0] += mass * q * q * dx, force[1] += mass * q * q * dy;
        }
        continue;
      }
      for (int c = 0; c < 4; ++c)
        if (nodes_[nd.first_child + c].end > nodes_[nd.first_child + c].begin) stack.push_back(nd.first_child + c);
    }
    return z;
  }

 private:
  struct Node {
    double com_x = 0, com_y = 0, half = 0;
    int64_t begin = 0, end = 0, first_child = -1;  // points order_[begin, end); children are 4 consecutive nodes
  };

  // Fills node `id` (already allocated) with the points order_[begin, end) inside the square of
  // centre (cx, cy) and half-width `half`, splitting into four children while it holds several.
  void build(int64_t id, int64_t begin, int64_t end, double cx, double cy, double half, int depth) {
    double sx = 0, sy = 0;
    for (int64_t t = begin; t < end; ++t) sx += y_[2 * order_[t]], sy += y_[2 * order_[t] + 1];
    const double cnt = static_cast<double>(end - begin);
    nodes_[id] = {sx / cnt, sy / cnt, half, begin, end, -1};
    if (end - begin <= 1 || depth >= 48) return;
    // Quadrants in the order (x < cx, y < cy), (x < cx, y >= cy), (x >= cx, y < cy), (x >= cx, y >= cy).
    auto left = [&](int64_t j) { return y_[2 * j] < cx; };
    auto low = [&](int64_t j) { return y_[2 * j + 1] < cy; };
    const int64_t mid = std::stable_partition(order_.begin() + begin, order_.begin() + end, left) - order_.begin();
    const int64_t q1 = std::stable_partition(order_.begin() + begin, order_.begin() + mid, low) - order_.begin();
    const int64_t q3 = std::stable_partition(order_.begin() + mid, order_.begin() + end, low) - order_.begin();
    const int64_t first = static_cast<int64_t>(nodes_.size());
    nodes_[id].first_child = first;
    nodes_.resize(nodes_.size() + 4);
    const double h = half / 2;
    const int64_t bounds[5] = {begin, q1, mid, q3, end};
    const double ox[4] = {-h, -h, h, h}, oy[4] = {-h, h, -h, h};
    for (int c = 0; c < 4; ++c) {
      nodes_[first + c] = {0, 0, h, bounds[c], bounds[c], -1};
      if (bounds[c + 1] > bounds[c]) build(first + c, bounds[c], bounds[c + 1], cx + ox[c], cy + oy[c], h, depth + 1);
    }
  }

  const std::vector<double>& y_;
  std::vector<int64_t> order_;
  std::vector<Node> nodes_;
};

// Gradient of KL(P || Q) w.r.t. y (the factor 4 included), P scaled by `exaggeration`. [rows, 2]
void gradient(const Affinities& P, const std::vector<double>& y, double exaggeration, bool exact, double theta,
              std::vector<double>& grad) {
  const int64_t n = static_cast<int64_t>(y.size() / 2);
  std::vector<double> rep(y.size(), 0.0), zpart(static_cast<size_t>(n), 0.0);
  std::unique_ptr<QuadTree> tree;
  if (!exact) tree = std::make_unique<QuadTree>(y);
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    double f[2] = {0, 0}, z = 0;
    if (exact) {
      for (int64_t j = 0; j < n; ++j) {
        if (j == i) continue;
        const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1], q = 1 / (1 + dx * dx + dy * dy);
        z += q, f[0] += q * q * dx, f[1] += q * q * dy;
      }
    } else {
      z = tree->repulsion(i, theta, f);
    }
    rep[2 * i] = f[0], rep[2 * i + 1] = f[1], zpart[i] = z;
    double a[2] = {0, 0};
    for (int64_t e = P.start[i]; e < P.start[i + 1]; ++e) {
      const int64_t j = P.col[e];
      const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      const double w = P.p[e] / (1 + dx * dx + dy * dy);
      a[0] += w * dx, a[1] += w * dy;
    }
    grad[2 * i] = exaggeration * a[0], grad[2 * i + 1] = exaggeration * a[1];
  }
  const double z = std::accumulate(zpart.begin(), zpart.end(), 0.0);
  for (size_t t = 0; t < y.size(); ++t) grad[t] = 4 * (grad[t] - rep[t] / z);
}

}  // namespace

std::vector<double> tsne_2d(const BitMatrix& m, const TsneOptions& options) {
  coact::check_matrix(m, "t-SNE");
  const int64_t n = m.rows();
  if (n < 2) bad_input("t-SNE: needs at least 2 features, got {}", n);
  if (!(options.perplexity > 0)) bad_input("t-SNE: perplexity = {} must be > 0", options.perplexity);
  if (options.iterations < 1) bad_input("t-SNE: iterations = {} must be at least 1", options.iterations);
  if (!(options.theta >= 0)) bad_input("t-SNE: theta = {} must be >= 0", options.theta);
  const double perplexity = std::min(options.perplexity, static_cast<double>(n - 1) / 3);
  const bool exact = n < options.exact_below;
  const int64_t neighbours = exact ? n - 1 : std::min<int64_t>(n - 1, static_cast<int64_t>(3 * perplexity) + 1);
  const Affinities P = affinities(m, neighbours, std::max(perplexity, 1e-3), options.distance);

  const double rate = options.learning_rate > 0 ? options.learning_rate
                                                : std::max(static_cast<double>(n) / kExaggeration / 4, 50.0);
  coact::Rng rng(options.seed);
  std::vector<double> y(static_cast<size_t>(2 * n)), update(y.size(), 0.0), gains(y.size(), 1.0), grad(y.size());
  for (double& v : y) v = 1e-4 * rng.normal();
  for (int it = 0; it < options.iterations; ++it) {
    const bool exploring = it < kExplorationSteps;
    gradient(P, y, exploring ? kExaggeration : 1.0, exact, options.theta, grad);
    const double momentum = exploring ? 0.5 : 0.8;
    for (size_t t = 0; t < y.size(); ++t) {
      gains[t] = (update[t] * grad[t] < 0) ? gains[t] + 0.2 : std::max(gains[t] * 0.8, 0.01);
      update[t] = momentum * update[t] - rate * gains[t] * grad[t];
      y[t] += update[t];
    }
  }
  return y;
}

bool tsne_collapsed(const std::vector<double>& xy) {
  const size_t n = xy.size() / 2;
  if (n < 2) return true;
  for (double v : xy)
    if (!std::isfinite(v)) return true;
  // The principal standard deviations (square roots of the covariance's eigenvalues).
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) mx += xy[2 * i], my += xy[2 * i + 1];
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double a = 0, b = 0, c = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = xy[2 * i] - mx, dy = xy[2 * i + 1] - my;
    a += dx * dx, b += dx * dy, c += dy * dy;
  }
  a /= static_cast<double>(n), b /= static_cast<double>(n), c /= static_cast<double>(n);
  const double mid = (a + c) / 2, half = std::hypot((a - c) / 2, b);
  const double major = std::sqrt(mid + half), minor = std::sqrt(std::max(mid - half, 0.0));
  constexpr double kTiny = 1e-3;
  if (major < kTiny || minor < kTiny * major) return true;
  // The bulk: distances to the coordinate-wise median (outliers do not move it).
  std::vector<double> xs(n), ys(n);
  for (size_t i = 0; i < n; ++i) xs[i] = xy[2 * i], ys[i] = xy[2 * i + 1];
  const auto half_n = static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(xs.begin(), xs.begin() + half_n, xs.end());
  std::nth_element(ys.begin(), ys.begin() + half_n, ys.end());
  const double cx = xs[n / 2], cy = ys[n / 2];
  std::vector<double> dist(n);
  for (size_t i = 0; i < n; ++i) dist[i] = std::hypot(xy[2 * i] - cx, xy[2 * i + 1] - cy);
  const double far = *std::max_element(dist.begin(), dist.end());
  std::nth_element(dist.begin(), dist.begin() + half_n, dist.end());
  return dist[n / 2] < kTiny * far;
}

}  // namespace sparsa
