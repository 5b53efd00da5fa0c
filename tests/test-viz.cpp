// The figures (sparsa/viz.h): every kind renders a PNG of the requested size whose pixels
// show the data (read back with cairo's own PNG reader and checked with simple statistics:
// dark/light regions, colours that must appear, bar areas in proportion), colour maps whose
// luminance runs one way, and bad input that must fail with sparsa::Error.
//
// With SPARSA_VIZ_SAMPLES=DIR set, the figures drawn from the golden masks are also written
// to DIR for a person to look at.
#include <cairo.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "sparsa/bitmatrix.h"
#include "sparsa/error.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"
#include "sparsa/coactivation.h"
#include "sparsa/store.h"
#include "sparsa/study_figures.h"
#include "sparsa/viz.h"
#include "test_support.h"

namespace sparsa {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using viz::Rgb;

// ---- reading a PNG back ----

struct Pixels {
  int width = 0, height = 0;
  std::vector<Rgb> px;  // [height, width]
  Rgb at(int x, int y) const { return px[static_cast<size_t>(y) * width + x]; }
};

Pixels read_png(const fs::path& p) {
  cairo_surface_t* s = cairo_image_surface_create_from_png(p.c_str());
  EXPECT_EQ(cairo_surface_status(s), CAIRO_STATUS_SUCCESS) << p;
  Pixels out;
  out.width = cairo_image_surface_get_width(s);
  out.height = cairo_image_surface_get_height(s);
  const int stride = cairo_image_surface_get_stride(s);
  const unsigned char* data = cairo_image_surface_get_data(s);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      const uint32_t v = *reinterpret_cast<const uint32_t*>(data + y * stride + 4 * x);
      out.px.push_back({((v >> 16) & 255) / 255.0, ((v >> 8) & 255) / 255.0, (v & 255) / 255.0});
    }
  cairo_surface_destroy(s);
  return out;
}

// Saves the image and reads it back.
Pixels saved(const viz::Image& img, const TempDir& dir, const std::string& name = "fig.png") {
  img.save(dir / name);
  return read_png(dir / name);
}

double luminance(Rgb c) { return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b; }
double distance(Rgb a, Rgb b) { return std::max({std::abs(a.r - b.r), std::abs(a.g - b.g), std::abs(a.b - b.b)}); }

// Mean luminance over the box [x0, x1) × [y0, y1) given as fractions of the image size.
double mean_luminance(const Pixels& p, double x0, double x1, double y0, double y1) {
  double sum = 0;
  int n = 0;
  for (int y = static_cast<int>(y0 * p.height); y < static_cast<int>(y1 * p.height); ++y)
    for (int x = static_cast<int>(x0 * p.width); x < static_cast<int>(x1 * p.width); ++x, ++n) sum += luminance(p.at(x, y));
  return sum / n;
}

int64_t count_close(const Pixels& p, Rgb c, double tol = 0.03) {
  return std::count_if(p.px.begin(), p.px.end(), [&](Rgb q) { return distance(q, c) <= tol; });
}

// The colour of `c` drawn with opacity `alpha` over white.
Rgb over_white(Rgb c, double alpha) {
  return {alpha * c.r + 1 - alpha, alpha * c.g + 1 - alpha, alpha * c.b + 1 - alpha};
}

BitMatrix filled(int64_t rows, int64_t cols, const std::function<bool(int64_t, int64_t)>& f) {
  BitMatrix m(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m.set(r, c, f(r, c));
  return m;
}

// The central box of a figure, inside the plot area of every layout.
constexpr double kIn0 = 0.35, kIn1 = 0.6;

// ---- spy plots ----

TEST(VizSpy, RendersRequestedSize) {
  TempDir dir;
  const BitMatrix m = filled(20, 30, [](int64_t r, int64_t c) { return (r + c) % 3 == 0; });
  viz::SpyOptions opt;
  opt.frame.width = 640;
  opt.frame.height = 480;
  const Pixels p = saved(viz::spy_plot(m, opt), dir);
  EXPECT_EQ(p.width, 640);
  EXPECT_EQ(p.height, 480);
  EXPECT_EQ(viz::spy_plot(m, {}).width(), 1000);
  EXPECT_EQ(viz::spy_plot(m, {}).height(), 800);
}

TEST(VizSpy, AllSetIsDarkAllClearIsLight) {
  TempDir dir;
  for (const int64_t n : {40, 3000}) {  // one block per entry, and a density raster
    const BitMatrix ones = filled(n, n, [](int64_t, int64_t) { return true; });
    const BitMatrix zeros(n, n);
    EXPECT_LT(mean_luminance(saved(viz::spy_plot(ones, {}), dir), kIn0, kIn1, kIn0, kIn1), 0.2) << n;
    EXPECT_GT(mean_luminance(saved(viz::spy_plot(zeros, {}), dir), kIn0, kIn1, kIn0, kIn1), 0.9) << n;
  }
}

TEST(VizSpy, DensityRasterOfHalfFilledMatrixIsMidTone) {
  TempDir dir;
  std::mt19937_64 rng(7);
  BitMatrix m(4000, 6000);  // 6000 = 93 words + 48 bits
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t w = 0; w < m.words_per_row(); ++w)
      m.row(r)[w] = rng() & (w + 1 < m.words_per_row() ? ~uint64_t{0} : (uint64_t{1} << 48) - 1);
  const Pixels p = saved(viz::spy_plot(m, {}), dir);
  const double lum = mean_luminance(p, kIn0, kIn1, kIn0, kIn1);
  EXPECT_GT(lum, 0.25);
  EXPECT_LT(lum, 0.75);
  // Every pixel covers about 50 entries, so hardly any is close to black or white.
  int64_t mid = 0, all = 0;
  for (int y = static_cast<int>(kIn0 * p.height); y < kIn1 * p.height; ++y)
    for (int x = static_cast<int>(kIn0 * p.width); x < kIn1 * p.width; ++x, ++all) {
      const double l = luminance(p.at(x, y));
      mid += l > 0.15 && l < 0.85;
    }
  EXPECT_GT(static_cast<double>(mid) / all, 0.99);
}

TEST(VizSpy, SmallMatrixIsBlackAndWhiteInProportion) {
  TempDir dir;
  std::mt19937 rng(3);
  std::vector<uint8_t> bytes(60 * 80);
  for (auto& b : bytes) b = (rng() % 4) == 0;  // 25 % set, as a uint8 view
  const Pixels p = saved(viz::spy_plot(viz::BoolMatrixView(bytes.data(), 60, 80), {}), dir);
  int64_t black = 0, white = 0, other = 0;
  for (int y = static_cast<int>(kIn0 * p.height); y < kIn1 * p.height; ++y)
    for (int x = static_cast<int>(kIn0 * p.width); x < kIn1 * p.width; ++x) {
      const double l = luminance(p.at(x, y));
      (l < 0.02 ? black : l > 0.98 ? white : other) += 1;
    }
  EXPECT_EQ(other, 0);
  EXPECT_NEAR(static_cast<double>(black) / (black + white), 0.25, 0.06);
}

TEST(VizSpy, RowsRunDownColumnsRunRight) {
  TempDir dir;
  const BitMatrix left = filled(100, 100, [](int64_t, int64_t c) { return c < 50; });
  const BitMatrix top = filled(100, 100, [](int64_t r, int64_t) { return r < 50; });
  const Pixels pl = saved(viz::spy_plot(left, {}), dir);
  EXPECT_LT(mean_luminance(pl, 0.3, 0.38, 0.4, 0.6), 0.05);
  EXPECT_GT(mean_luminance(pl, 0.6, 0.68, 0.4, 0.6), 0.95);
  const Pixels pt = saved(viz::spy_plot(top, {}), dir);
  EXPECT_LT(mean_luminance(pt, 0.3, 0.6, 0.25, 0.35), 0.05);
  EXPECT_GT(mean_luminance(pt, 0.3, 0.6, 0.65, 0.75), 0.95);
}

TEST(VizSpy, GradientOrderReordersRowsAndMarksTheReference) {
  TempDir dir;
  const BitMatrix top = filled(100, 100, [](int64_t r, int64_t) { return r < 50; });
  std::vector<int64_t> reversed(100);
  std::iota(reversed.rbegin(), reversed.rend(), int64_t{0});
  const Pixels p = saved(viz::gradient_spy_plot(top, reversed, 99, {}), dir);
  EXPECT_GT(mean_luminance(p, 0.3, 0.6, 0.25, 0.35), 0.95);  // the set rows are now at the bottom
  EXPECT_LT(mean_luminance(p, 0.3, 0.6, 0.65, 0.75), 0.05);
  const Rgb red{0.86, 0.08, 0.08};
  EXPECT_GT(count_close(p, red, 0.1), 100);  // arrows and label
  const Pixels plain = saved(viz::spy_plot(top, {}), dir);
  EXPECT_LT(count_close(plain, red, 0.1), 5);
}

TEST(VizSpy, ClustersAreGroupedWithBoundariesAndStrip) {
  TempDir dir;
  // Even rows belong to cluster 1 and are full, odd rows to cluster 0 and are empty.
  const BitMatrix m = filled(120, 90, [](int64_t r, int64_t) { return r % 2 == 0; });
  std::vector<int> assignment(120);
  for (int r = 0; r < 120; ++r) assignment[r] = r % 2 == 0 ? 1 : 0;
  const Pixels p = saved(viz::clustered_spy_plot(m, assignment, {}), dir);
  EXPECT_GT(mean_luminance(p, 0.3, 0.6, 0.25, 0.35), 0.95);  // cluster 0 (empty rows) on top
  EXPECT_LT(mean_luminance(p, 0.3, 0.6, 0.65, 0.75), 0.05);
  EXPECT_GT(count_close(p, {0.86, 0.08, 0.08}, 0.1), 300);  // the boundary line
  EXPECT_GT(count_close(p, viz::categorical_color(0), 0.02), 1000);
  EXPECT_GT(count_close(p, viz::categorical_color(1), 0.02), 1000);
}

TEST(VizSpy, BadInput) {
  const BitMatrix m(10, 10);
  EXPECT_THROW(viz::spy_plot(BitMatrix(0, 5), {}), Error);
  EXPECT_THROW(viz::gradient_spy_plot(m, {0, 1, 2}, 0, {}), Error);  // too short
  std::vector<int64_t> dup(10, 0);
  EXPECT_THROW(viz::gradient_spy_plot(m, dup, 0, {}), Error);
  std::vector<int64_t> id(10);
  std::iota(id.begin(), id.end(), int64_t{0});
  EXPECT_THROW(viz::gradient_spy_plot(m, id, 10, {}), Error);
  EXPECT_THROW(viz::clustered_spy_plot(m, std::vector<int>(9, 0), {}), Error);
  EXPECT_THROW(viz::clustered_spy_plot(m, std::vector<int>(10, -1), {}), Error);
  viz::SpyOptions tiny;
  tiny.frame.width = 50;
  EXPECT_THROW(viz::spy_plot(m, tiny), Error);
}

TEST(VizImage, SaveIsAtomicAndFailsCleanly) {
  TempDir dir;
  const viz::Image img = viz::spy_plot(BitMatrix(5, 5), {});
  img.save(dir / "a.png");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 1);  // no temp file left
  EXPECT_EQ(test::read_file(dir / "a.png"), img.png());
  EXPECT_EQ(img.png().substr(1, 3), "PNG");
  try {
    img.save(dir / "missing-folder" / "a.png");
    FAIL() << "saving into a missing folder must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("missing-folder"), std::string::npos);
  }
}

// PDF renders the same recording as the PNG: a page of the figure's size (96 dpi), chosen by the
// extension on save; the PNG is unchanged by having been rendered as a vector first.
TEST(VizImage, PdfOfTheSameFigure) {
  TempDir dir;
  viz::LineChartOptions o;
  o.frame.width = 640;
  o.frame.height = 480;
  o.frame.title = "perplexity against sparsity";
  const viz::Image img = viz::line_chart({{"Wanda", {0.1, 0.5, 0.9}, {10, 20, 400}}}, o);
  const std::string png = img.png();
  const std::string pdf = img.encode(viz::FigureFormat::kPdf);
  EXPECT_EQ(pdf.rfind("%PDF-", 0), 0u);
  EXPECT_NE(pdf.find("/MediaBox [ 0 0 480 360 ]"), std::string::npos);  // 640 x 480 px at 96 dpi, in points
  EXPECT_NE(pdf.find("%%EOF"), std::string::npos);
  EXPECT_GT(pdf.size(), 2000u);
  EXPECT_EQ(img.png(), png);

  img.save(dir / "f.pdf");
  img.save(dir / "f.png");
  EXPECT_EQ(test::read_file(dir / "f.pdf").substr(0, 5), "%PDF-");
  EXPECT_EQ(test::read_file(dir / "f.png"), png);

  EXPECT_EQ(viz::parse_figure_format("pdf"), viz::FigureFormat::kPdf);
  EXPECT_EQ(viz::figure_format_name(viz::FigureFormat::kPdf), "pdf");
  EXPECT_THROW(viz::parse_figure_format("svg"), Error);
  EXPECT_THROW(viz::parse_figure_format("eps"), Error);
}

// ---- charts ----

TEST(VizCharts, LineChartDrawsEverySeries) {
  TempDir dir;
  const std::vector<viz::Series> s = {{"wanda", {4, 8, 16}, {1.2, 1.5, 1.9}}, {"sparsegpt", {4, 8, 16}, {1.1, 1.3, 1.4}}};
  for (const bool log_y : {false, true}) {
    viz::LineChartOptions opt;
    opt.log_y = log_y;
    const Pixels p = saved(viz::line_chart(s, opt), dir);
    EXPECT_EQ(p.width, 1000);
    EXPECT_GT(count_close(p, viz::categorical_color(0)), 500) << log_y;
    EXPECT_GT(count_close(p, viz::categorical_color(1)), 500) << log_y;
  }
  EXPECT_THROW(viz::line_chart({}, {}), Error);
  EXPECT_THROW(viz::line_chart({{"a", {1, 2}, {1}}}, {}), Error);
  EXPECT_THROW(viz::line_chart({{"a", {1, 2}, {1, NAN}}}, {}), Error);
  viz::LineChartOptions log;
  log.log_y = true;
  EXPECT_THROW(viz::line_chart({{"a", {1, 2}, {0, 1}}}, log), Error);
}

TEST(VizCharts, GroupedBarsHaveAreasInProportion) {
  TempDir dir;
  const Pixels p = saved(viz::bar_chart({"c0", "c1", "c2"}, {{"wanda", {10, 10, 10}}, {"sparsegpt", {5, 5, 5}}}, {}), dir);
  const double a = static_cast<double>(count_close(p, viz::categorical_color(0)));
  const double b = static_cast<double>(count_close(p, viz::categorical_color(1)));
  ASSERT_GT(b, 1000);
  EXPECT_NEAR(a / b, 2.0, 0.25);
  EXPECT_THROW(viz::bar_chart({"a", "b"}, {{"s", {1}}}, {}), Error);
  EXPECT_THROW(viz::bar_chart({"a"}, {{"s", {-1}}}, {}), Error);
  EXPECT_THROW(viz::bar_chart({}, {}, {}), Error);
}

TEST(VizCharts, HistogramShowsMarkers) {
  TempDir dir;
  viz::HistogramOptions opt;
  opt.markers.push_back({2.5, "t", "threshold", {1, 0, 1}});
  const Pixels p = saved(viz::histogram({0, 1, 2, 3, 4}, {{"h", {3, 7, 2, 1}}}, opt), dir);
  EXPECT_GT(count_close(p, {1, 0, 1}, 0.05), 150);
  EXPECT_GT(count_close(p, viz::categorical_color(0)), 5000);
  EXPECT_THROW(viz::histogram({0, 1, 1}, {{"h", {1, 2}}}, {}), Error);  // edges not increasing
  EXPECT_THROW(viz::histogram({0, 1, 2}, {{"h", {1}}}, {}), Error);
  viz::HistogramOptions log;
  log.log_y = true;
  EXPECT_THROW(viz::histogram({0, 1, 2}, {{"h", {0, 0}}}, log), Error);
}

TEST(VizCharts, ActivationHistogramMarksPlusMinusThresholds) {
  TempDir dir;
  std::vector<double> edges, counts;
  for (int i = -20; i <= 20; ++i) edges.push_back(i * 0.1);
  for (int i = 0; i < 40; ++i) counts.push_back(std::exp(-std::abs(i - 19.5) * 0.4) * 1e4);
  viz::HistogramOptions opt;
  opt.log_y = true;
  const Pixels p = saved(viz::activation_histogram(edges, counts, {{0.25, 0.3}, {0.5, 0.8}}, opt), dir);
  EXPECT_GT(count_close(p, viz::categorical_color(1), 0.05), 300);
  EXPECT_GT(count_close(p, viz::categorical_color(2), 0.05), 300);
  EXPECT_THROW(viz::activation_histogram(edges, counts, {{0.5, -1}}, opt), Error);
}

TEST(VizCharts, HeatmapCellsTakeDistinctColours) {
  TempDir dir;
  const std::vector<double> v = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  for (const bool diverging : {false, true}) {
    viz::HeatmapOptions opt;
    opt.diverging = diverging;
    const Pixels p = saved(viz::heatmap(v, {"layer 0", "layer 1", "layer 2"}, {"q", "k", "v"}, opt), dir);
    std::map<uint32_t, int64_t> histogram;
    for (const Rgb& c : p.px)
      ++histogram[(static_cast<uint32_t>(c.r * 255) << 16) | (static_cast<uint32_t>(c.g * 255) << 8) |
                  static_cast<uint32_t>(c.b * 255)];
    int big = 0;  // colours that fill most of a cell
    for (const auto& [colour, n] : histogram)
      if (colour != 0xFFFFFF && n > 20000) ++big;
    EXPECT_EQ(big, 9) << diverging;
  }
  EXPECT_THROW(viz::heatmap({1, 2, 3}, {"a", "b"}, {"x", "y"}, {}), Error);
  EXPECT_THROW(viz::heatmap({NAN, NAN}, {"a"}, {"x", "y"}, {}), Error);
}

TEST(VizCharts, ScatterUsesOneColourPerCluster) {
  TempDir dir;
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0, 0.3);
  std::vector<double> x, y;
  std::vector<int> cluster;
  for (int k = 0; k < 5; ++k)
    for (int i = 0; i < 40; ++i) {
      x.push_back(k * 3 + noise(rng));
      y.push_back((k % 2) * 3 + noise(rng));
      cluster.push_back(k);
    }
  const Pixels p = saved(viz::cluster_scatter(x, y, cluster, {}), dir);
  for (int k = 0; k < 5; ++k) EXPECT_GT(count_close(p, over_white(viz::categorical_color(k), 0.8), 0.03), 100) << k;
  EXPECT_THROW(viz::cluster_scatter({1, 2}, {1, 2}, {0}, {}), Error);
  EXPECT_THROW(viz::cluster_scatter({}, {}, {}, {}), Error);
}

// ---- colours ----

TEST(VizColors, MapsRunOneWayInLuminance) {
  const auto monotone = [](const viz::ColorMap& m, int sign) {
    for (int i = 1; i <= 100; ++i)
      if (sign * (luminance(m.at(i / 100.0)) - luminance(m.at((i - 1) / 100.0))) < -1e-3) return false;
    return true;
  };
  EXPECT_TRUE(monotone(viz::ColorMap::sequential(), +1));
  EXPECT_TRUE(monotone(viz::ColorMap::density(), -1));
  const viz::ColorMap d = viz::ColorMap::diverging();
  EXPECT_GT(luminance(d.at(0.5)), 0.9);
  EXPECT_LT(luminance(d.at(0)), 0.4);
  EXPECT_LT(luminance(d.at(1)), 0.4);
  EXPECT_GT(d.at(0).b, d.at(0).r);  // blue end
  EXPECT_GT(d.at(1).r, d.at(1).b);  // red end
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < i; ++j)
      EXPECT_GT(distance(viz::categorical_color(i), viz::categorical_color(j)), 0.1) << i << " " << j;
}

// ---- figures from the golden masks, as the study draws them ----

// A mask of a golden file as [rows, cols] bytes, 1 = pruned.
Mask golden_mask(const std::string& file, const std::string& key) {
  const auto store = TensorStore::open(test::shared_dir() / "golden" / file);
  const TensorInfo& info = store->info(key);
  return unpack_mask(info.data, info.shape[0], info.shape[1] * 8);
}

int64_t hamming(const Mask& m, int64_t a, int64_t b) {
  int64_t d = 0;
  for (int64_t c = 0; c < m.cols; ++c) d += m.at(a, c) != m.at(b, c);
  return d;
}

std::vector<int64_t> distances_to(const Mask& m, int64_t ref) {
  std::vector<int64_t> d(static_cast<size_t>(m.rows));
  for (int64_t r = 0; r < m.rows; ++r) d[static_cast<size_t>(r)] = hamming(m, ref, r);
  return d;
}

// k-means (Lloyd, 15 rounds, first centroids at evenly spaced rows) of the rows of m as 0/1
// vectors: the cluster of each row.
std::vector<int> kmeans_rows(const Mask& m, int k) {
  const auto rows = static_cast<size_t>(m.rows), cols = static_cast<size_t>(m.cols);
  std::vector<double> centroids(k * cols);  // [k, cols]
  for (int j = 0; j < k; ++j)
    for (size_t c = 0; c < cols; ++c) centroids[j * cols + c] = m.pruned[(j * rows / k) * cols + c];
  std::vector<int> assign(rows, 0);
  for (int round = 0; round < 15; ++round) {
    for (size_t r = 0; r < rows; ++r) {
      double best = 1e300;
      for (int j = 0; j < k; ++j) {
        double d = 0;
        for (size_t c = 0; c < cols; ++c) {
          const double diff = m.pruned[r * cols + c] - centroids[j * cols + c];
          d += diff * diff;
        }
        if (d < best) best = d, assign[r] = j;
      }
    }
    std::vector<double> sums(k * cols, 0), counts(k, 0);
    for (size_t r = 0; r < rows; ++r) {
      counts[assign[r]] += 1;
      for (size_t c = 0; c < cols; ++c) sums[assign[r] * cols + c] += m.pruned[r * cols + c];
    }
    for (int j = 0; j < k; ++j)
      if (counts[j] > 0)
        for (size_t c = 0; c < cols; ++c) centroids[j * cols + c] = sums[j * cols + c] / counts[j];
  }
  return assign;
}

class VizGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::shared_available()) GTEST_SKIP() << "../shared is absent";
    const char* env = std::getenv("SPARSA_VIZ_SAMPLES");
    out_ = env && *env ? fs::path(env) : tmp_.path();
    fs::create_directories(out_);
  }
  void keep(const viz::Image& img, const std::string& name) {
    img.save(out_ / name);
    const Pixels p = read_png(out_ / name);
    EXPECT_EQ(p.width, img.width());
    EXPECT_EQ(p.height, img.height());
    EXPECT_LT(mean_luminance(p, 0, 1, 0, 1), 0.995) << name;  // something is drawn
  }
  TempDir tmp_;
  fs::path out_;
};

constexpr const char* kDown = "model.layers.0.mlp.down_proj.mask";

TEST_F(VizGolden, SpyPlots) {
  const Mask m = golden_mask("wanda_u50.safetensors", kDown);
  const viz::BoolMatrixView view(m.pruned.data(), m.rows, m.cols);
  viz::SpyOptions opt;
  opt.frame = {1000, 800, "Wanda 50 % mask, layer 0 down_proj", "input column", "output row (feature)"};
  opt.set_label = "pruned";
  opt.clear_label = "kept";
  keep(viz::spy_plot(view, opt), "spy-wanda-u50-down.png");
  const Mask nm = golden_mask("sparsegpt_2-4.safetensors", "model.layers.0.self_attn.q_proj.mask");
  opt.frame.title = "SparseGPT 2:4 mask, layer 0 q_proj (rows 0-63, columns 0-127)";
  std::vector<uint8_t> corner;
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t c = 0; c < 128; ++c) corner.push_back(nm.at(r, c));
  keep(viz::spy_plot(viz::BoolMatrixView(corner.data(), 64, 128), opt), "spy-sparsegpt-2-4-q-corner.png");

  const std::vector<int64_t> d = distances_to(m, 0);
  std::vector<int64_t> order(static_cast<size_t>(m.rows));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return d[a] < d[b]; });
  opt.frame.title = "Wanda 50 %, layer 0 down_proj: rows by Hamming distance to row 0";
  opt.frame.y_label = "rank by distance to row 0";
  keep(viz::gradient_spy_plot(view, order, 0, opt), "gradient-spy-wanda-u50-down.png");

  const Mask gate = golden_mask("wanda_u50.safetensors", "model.layers.0.mlp.gate_proj.mask");
  opt.frame.title = "Wanda 50 %, layer 0 gate_proj: rows by k-means cluster, k = 8";
  opt.frame.y_label = "rows grouped by cluster";
  keep(viz::clustered_spy_plot(viz::BoolMatrixView(gate.pruned.data(), gate.rows, gate.cols), kmeans_rows(gate, 8), opt),
       "clustered-spy-wanda-u50-gate-k8.png");
}

TEST_F(VizGolden, ComparisonsOfWandaAndSparseGPT) {
  const std::vector<std::string> comps = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};
  const auto wanda = TensorStore::open(test::shared_dir() / "golden" / "wanda_u50.safetensors");
  std::vector<double> jaccard;
  std::vector<std::string> rows, cols;
  for (const std::string& c : comps) cols.push_back(c.substr(c.find('.') + 1));
  for (int layer = 0; wanda->contains(fmt::format("model.layers.{}.mlp.down_proj.mask", layer)); ++layer) {
    rows.push_back(fmt::format("layer {}", layer));
    for (const std::string& c : comps) {
      const std::string key = fmt::format("model.layers.{}.{}.mask", layer, c);
      const Mask a = golden_mask("wanda_u50.safetensors", key), b = golden_mask("sparsegpt_u50.safetensors", key);
      int64_t both = 0, either = 0;
      for (size_t i = 0; i < a.pruned.size(); ++i) {
        both += a.pruned[i] && b.pruned[i];
        either += a.pruned[i] || b.pruned[i];
      }
      jaccard.push_back(static_cast<double>(both) / static_cast<double>(either));
    }
  }
  viz::HeatmapOptions hopt;
  hopt.frame = {1000, 800, "Jaccard(Wanda, SparseGPT) of the 50 % masks", "component", "layer"};
  hopt.value_label = "Jaccard index of the pruned sets";
  keep(viz::heatmap(jaccard, rows, cols, hopt), "heatmap-jaccard-wanda-sparsegpt.png");

  const Mask w = golden_mask("wanda_u50.safetensors", kDown), s = golden_mask("sparsegpt_u50.safetensors", kDown);
  const std::vector<int64_t> dw = distances_to(w, 0), ds = distances_to(s, 0);
  std::vector<double> edges;
  for (int e = 400; e <= 580; e += 6) edges.push_back(e);
  std::vector<double> hw(edges.size() - 1, 0), hs(edges.size() - 1, 0);
  for (size_t i = 1; i < dw.size(); ++i) {  // row 0 itself (distance 0) left out
    ASSERT_TRUE(dw[i] >= 400 && dw[i] < 580 && ds[i] >= 400 && ds[i] < 580) << dw[i] << " " << ds[i];
    hw[static_cast<size_t>((dw[i] - 400) / 6)] += 1;
    hs[static_cast<size_t>((ds[i] - 400) / 6)] += 1;
  }
  viz::HistogramOptions hist;
  hist.frame = {1000, 800, "Hamming distance to row 0, layer 0 down_proj masks", "Hamming distance (of 1024 columns)",
                "rows"};
  keep(viz::histogram(edges, {{"Wanda 50 %", hw}, {"SparseGPT 50 %", hs}}, hist), "hist-hamming-down.png");

  const std::vector<int> cw = kmeans_rows(w, 8), cs = kmeans_rows(s, 8);
  std::vector<double> sw(8, 0), ss(8, 0);
  for (size_t i = 0; i < cw.size(); ++i) {
    sw[static_cast<size_t>(cw[i])] += 1;
    ss[static_cast<size_t>(cs[i])] += 1;
  }
  viz::BarChartOptions bopt;
  bopt.frame = {1000, 800, "Cluster sizes, k = 8, layer 0 down_proj", "cluster", "rows"};
  keep(viz::bar_chart({"0", "1", "2", "3", "4", "5", "6", "7"}, {{"Wanda", sw}, {"SparseGPT", ss}}, bopt),
       "bars-cluster-sizes-k8.png");
}

TEST_F(VizGolden, PerplexityAndActivations) {
  const nlohmann::json j = nlohmann::json::parse(test::read_file(test::shared_dir() / "golden" / "activation_sparsity.json"));
  viz::Series ppl{"tiny-llama-15m", {0}, {j.at("ppl_dense").get<double>()}};
  for (const auto& [k, v] : j.at("ppl").items()) {
    ppl.x.push_back(std::stod(k));
    ppl.y.push_back(v.get<double>());
  }
  viz::LineChartOptions lopt;
  lopt.frame = {1000, 800, "Perplexity with sparsified activations", "activation sparsity", "perplexity (log)"};
  lopt.log_y = true;
  keep(viz::line_chart({ppl}, lopt), "line-ppl-vs-activation-sparsity.png");

  viz::LineChartOptions sep;
  sep.frame = {1000, 800, "Separation ratio against k (made-up numbers)", "k (clusters)", "separation ratio"};
  sep.log_x = true;
  keep(viz::line_chart({{"Wanda 50 %", {2, 4, 8, 16, 32}, {1.08, 1.15, 1.21, 1.26, 1.3}},
                        {"SparseGPT 50 %", {2, 4, 8, 16, 32}, {1.05, 1.09, 1.12, 1.16, 1.18}}},
                       sep),
       "line-separation-vs-k.png");

  // Laplace-distributed activations, thresholds at the quantiles of |x|.
  std::mt19937 rng(5);
  std::exponential_distribution<double> mag(8.0);
  std::vector<double> acts;
  for (int i = 0; i < 100000; ++i) acts.push_back((rng() & 1 ? 1 : -1) * mag(rng));
  std::vector<double> abs_sorted;
  for (const double a : acts) abs_sorted.push_back(std::abs(a));
  std::sort(abs_sorted.begin(), abs_sorted.end());
  std::vector<viz::ActivationThreshold> th;
  for (const double sp : {0.25, 0.5, 0.9}) th.push_back({sp, abs_sorted[static_cast<size_t>(sp * abs_sorted.size())]});
  std::vector<double> edges, counts(80, 0);
  for (int i = 0; i <= 80; ++i) edges.push_back(-1 + i * 0.025);
  for (const double a : acts)
    if (a >= -1 && a < 1) counts[static_cast<size_t>((a + 1) / 0.025)] += 1;
  viz::HistogramOptions hopt;
  hopt.frame = {1000, 800, "Activations at down_in, layer 0 (synthetic Laplace sample)", "activation value", "count"};
  hopt.log_y = true;
  keep(viz::activation_histogram(edges, counts, th, hopt), "hist-activations-thresholds.png");

  std::normal_distribution<double> noise(0, 1.0);
  std::vector<double> x, y;
  std::vector<int> cluster;
  for (int k = 0; k < 8; ++k)
    for (int i = 0; i < 60 + 15 * k; ++i) {
      x.push_back(10 * std::cos(k * 0.785) + noise(rng));
      y.push_back(10 * std::sin(k * 0.785) + noise(rng));
      cluster.push_back(k);
    }
  viz::ScatterOptions sopt;
  sopt.frame = {1000, 800, "t-SNE of features, coloured by k-means cluster (synthetic)", "t-SNE 1", "t-SNE 2"};
  keep(viz::cluster_scatter(x, y, cluster, sopt), "scatter-tsne-k8.png");
}

TEST_F(VizGolden, PlotSpyCommand) {
  const std::string masks = (test::shared_dir() / "golden" / "wanda_u50.safetensors").string();
  const fs::path png = tmp_ / "spy.png";
  const test::CommandResult ok = test::run_sparsa(
      {"plot", "spy", "--mask", masks, "--key", kDown, "--out", png.string(), "--width", "800", "--height", "600"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const Pixels p = read_png(png);
  EXPECT_EQ(p.width, 800);
  EXPECT_EQ(p.height, 600);
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"plot", "spy", "--mask", masks, "--key", "nope", "--out", png.string()},
        std::vector<std::string>{"plot", "spy", "--mask", masks, "--key", kDown, "--cols", "2000", "--out", png.string()},
        std::vector<std::string>{"plot", "spy", "--mask", masks, "--key", kDown, "--out", "/nonexistent/x.png"}}) {
    const test::CommandResult r = test::run_sparsa(bad);
    EXPECT_NE(r.exit_code, 0) << bad[5];
    EXPECT_TRUE(test::one_line(r.err)) << r.err;
  }
}


// ---- label placement, reference lines, clipped tails ----

// Labels whose boxes overlap are pushed apart to exactly touch (plus the gap), keep their order,
// stay inside the bounds, and labels with room stay where they were wanted.
TEST(VizLabels, SpreadLabelsPushesCollidingLabelsApart) {
  const std::vector<double> want{100, 101, 102, 400}, width{40, 40, 40, 40};
  const std::vector<double> at = viz::spread_labels(want, width, 0, 1000, 4);
  ASSERT_EQ(at.size(), 4u);
  for (size_t i = 0; i + 1 < 3; ++i) EXPECT_NEAR(at[i + 1] - at[i], 44, 1e-9);
  EXPECT_NEAR((at[0] + at[1] + at[2]) / 3, 101, 1e-9);  // least squares: centred on the wanted mean
  EXPECT_DOUBLE_EQ(at[3], 400);
  // At the edge: pushed inside, order kept.
  const std::vector<double> edge = viz::spread_labels({5, 6}, {40, 40}, 0, 1000, 4);
  EXPECT_GE(edge[0] - 20, -1e-9);
  EXPECT_NEAR(edge[1] - edge[0], 44, 1e-9);
  // Given out of order, the result is in the order of `want`.
  const std::vector<double> rev = viz::spread_labels({300, 299}, {50, 50}, 0, 1000, 0);
  EXPECT_GT(rev[0], rev[1]);
  EXPECT_NEAR(rev[0] - rev[1], 50, 1e-9);
  EXPECT_TRUE(viz::spread_labels({}, {}, 0, 1, 0).empty());
}

// Close thresholds: every label is drawn (its colour appears), none on top of another (the pixel
// count of each label colour grows with the number of labels, instead of being hidden).
TEST(VizLabels, CloseThresholdLabelsDoNotOverlap) {
  TempDir dir;
  std::vector<double> edges, counts;
  for (int i = -20; i <= 20; ++i) edges.push_back(i * 0.1);
  for (int i = 0; i < 40; ++i) counts.push_back(std::exp(-std::abs(i - 19.5) * 0.4) * 1e4);
  viz::HistogramOptions opt;
  opt.log_y = true;
  const std::vector<viz::ActivationThreshold> close{{0.25, 0.300}, {0.4, 0.305}, {0.5, 0.31}, {0.7, 0.315}};
  const Pixels p = saved(viz::activation_histogram(edges, counts, close, opt), dir);
  // The lines lie a pixel apart and hide one another; in the label band at the top of the plot
  // each threshold's (bold, same-length) label keeps a comparable amount of ink.
  std::vector<int64_t> ink(4, 0);
  for (int y = 0; y < p.height / 5; ++y)
    for (int x = 0; x < p.width; ++x)
      for (int i = 0; i < 4; ++i) ink[i] += distance(p.at(x, y), viz::categorical_color(i + 1)) <= 0.05;
  const auto [lo, hi] = std::minmax_element(ink.begin(), ink.end());
  EXPECT_GT(*lo, 40);
  EXPECT_LT(static_cast<double>(*hi) / static_cast<double>(*lo), 2.5);
}

TEST(VizCharts, BarChartDrawsTheReferenceLineAndCoversIt) {
  TempDir dir;
  viz::BarChartOptions plain, with_ref;
  with_ref.references.push_back({30, "dense 30.00", {0.9, 0.1, 0.6}});
  const Pixels a = saved(viz::bar_chart({"u50", "2-4"}, {{"wanda", {10, 12}}}, plain), dir, "a.png");
  const Pixels b = saved(viz::bar_chart({"u50", "2-4"}, {{"wanda", {10, 12}}}, with_ref), dir, "b.png");
  EXPECT_EQ(count_close(a, {0.9, 0.1, 0.6}, 0.05), 0);
  EXPECT_GT(count_close(b, {0.9, 0.1, 0.6}, 0.05), 300);
  // The axis now reaches 30: the bars get shorter.
  EXPECT_LT(count_close(b, viz::categorical_color(0)), 0.6 * count_close(a, viz::categorical_color(0)));
  viz::BarChartOptions bad;
  bad.references.push_back({std::nan(""), "x"});
  EXPECT_THROW(viz::bar_chart({"a"}, {{"s", {1}}}, bad), Error);
}

TEST(VizCharts, ClippedTailBinsAreLighterAndLabelled) {
  TempDir dir;
  viz::HistogramOptions opt;
  const std::vector<double> edges{0, 1, 2, 3, 4};
  const std::vector<double> counts{8, 8, 8, 8};
  const Pixels plain = saved(viz::histogram(edges, {{"h", counts}}, opt), dir, "a.png");
  opt.clipped_tails = true;
  const Pixels tails = saved(viz::histogram(edges, {{"h", counts}}, opt), dir, "b.png");
  const viz::Rgb light = over_white(viz::categorical_color(0), 0.45);
  EXPECT_LT(count_close(plain, light, 0.02), 50);  // (anti-aliased edges only)
  // Two of the four equal bins are lighter (plus the legend's swatch).
  const double lighter = static_cast<double>(count_close(tails, light, 0.02));
  const double full = static_cast<double>(count_close(tails, viz::categorical_color(0)));
  EXPECT_GT(full, 5000);
  EXPECT_NEAR(lighter / full, 1.0, 0.15);
}

// ---- t-SNE collapse ----

TEST(VizTsne, CollapsedEmbeddingsAreDetectedAndNotDrawn) {
  std::mt19937 rng(3);
  std::normal_distribution<double> n01(0, 1);
  std::vector<double> spread, tiny, line, bulk;
  for (int i = 0; i < 200; ++i) {
    const double x = 10 * n01(rng), y = 10 * n01(rng);
    spread.insert(spread.end(), {x, y});
    tiny.insert(tiny.end(), {1e-5 * x, 1e-5 * y});
    line.insert(line.end(), {x, 2 * x});
    bulk.insert(bulk.end(), {i < 190 ? 1e-6 * x : 1e3 * x, i < 190 ? 1e-6 * y : 1e3 * y});
  }
  EXPECT_FALSE(tsne_collapsed(spread));
  EXPECT_TRUE(tsne_collapsed(tiny));
  EXPECT_TRUE(tsne_collapsed(line));
  EXPECT_TRUE(tsne_collapsed(bulk));
  EXPECT_TRUE(tsne_collapsed({1.0, 2.0}));
  EXPECT_TRUE(tsne_collapsed({0, 0, std::nan(""), 1, 2, 3}));
  TsneFigure t{"wanda", 2, {}, {}, {}};
  for (size_t i = 0; i < tiny.size() / 2; ++i) {
    t.x.push_back(tiny[2 * i]);
    t.y.push_back(tiny[2 * i + 1]);
    t.cluster.push_back(static_cast<int>(i % 2));
  }
  EXPECT_THROW(tsne_figure(t), Error);
  for (size_t i = 0; i < t.x.size(); ++i) t.x[i] = spread[2 * i], t.y[i] = spread[2 * i + 1];
  EXPECT_EQ(tsne_figure(t).width(), 1000);
}

TEST(VizTsne, StudyRefusesTooFewIterationsNamingTheMinimum) {
  TempDir dir;
  const auto r = test::run_sparsa({"study", "--out", (dir / "s").string(), "--tsne-iterations", "499"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("at least 500"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// ---- study figures from a database (sparsa plot --db --figure) ----

// A database as a small study leaves it: dense, three methods at u50 / u70 / 2:4, an acts run.
fs::path figure_db(const TempDir& dir) {
  const fs::path db = dir / "study.duckdb";
  auto store = Store::open(db, Store::Mode::kReadWrite);
  RunInfo dense;
  dense.kind = RunKind::kDense;
  dense.architecture = "llama";
  RunWriter d = store->begin_run(dense);
  d.add_perplexity({"persuasion", PplKind::kDense, std::nullopt, 20.0, 1000, 1.0});
  d.commit();
  double ppl = 25;
  for (const char* m : {"magnitude", "wanda", "sparsegpt"})
    for (const SparsityTarget t : {SparsityTarget{0.5, 0, 0}, SparsityTarget{0.7, 0, 0}, SparsityTarget{0, 2, 4}}) {
      RunInfo info;
      info.kind = RunKind::kPrune;
      info.method = m;
      info.target = t;
      RunWriter w = store->begin_run(info);
      w.add_matrix({"model.layers.0.mlp.up_proj", 4, 8, t.fraction(), 0.0});
      w.add_perplexity({"persuasion", PplKind::kPruned, std::nullopt, ppl, 1000, 1.0});
      ppl += 3;
      w.commit();
    }
  RunInfo acts;
  acts.kind = RunKind::kActs;
  RunWriter a = store->begin_run(acts);
  std::vector<double> edges;
  std::vector<int64_t> counts;
  for (int i = -10; i <= 10; ++i) edges.push_back(0.1 * i);
  for (int i = 0; i < 20; ++i) counts.push_back(100 - 4 * std::abs(i - 10));
  a.add_act_histogram(2, ObsPoint::kAttnIn, edges, counts);
  const std::vector<ActThresholdRow> thresholds{{2, ObsPoint::kAttnIn, 0.5, 0.3}, {2, ObsPoint::kAttnIn, 0.6, 0.32}};
  a.add_act_thresholds(thresholds);
  a.add_perplexity({"persuasion", PplKind::kActSparsified, 0.5, 21.0, 1000, 1.0});
  a.commit();
  return db;
}

TEST(StudyFigures, DrawsEachFigureTheDatabaseHoldsByName) {
  TempDir dir;
  const fs::path db = figure_db(dir);
  const auto store = Store::open(db, Store::Mode::kReadOnly);
  std::vector<std::string> names;
  for (const FigureName& f : drawable_figures(*store)) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"ppl_by_structure", "ppl_vs_sparsity", "ppl_vs_act_sparsity",
                                             "act_hist_layer2_attn_in"}));
  for (const std::string& n : names) EXPECT_EQ(draw_study_figure(*store, n).width(), 1000) << n;
  // The dense line is drawn in ppl_by_structure (its default colour, dark grey, as a dashed rule).
  FigureStyle style;
  style.width = 640;
  style.title = "";
  EXPECT_EQ(draw_study_figure(*store, "ppl_by_structure", style).width(), 640);
  const std::string unknown = [&] {
    try {
      draw_study_figure(*store, "nope");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(unknown.find("ppl_by_structure, ppl_vs_sparsity"), std::string::npos) << unknown;
  EXPECT_THROW(draw_study_figure(*store, "tsne_wanda"), Error);
}

TEST(StudyFigures, PlotCommandDrawsListsAndRefuses) {
  TempDir dir;
  const fs::path db = figure_db(dir);
  const auto list = test::run_sparsa({"plot", "--db", db.string(), "--list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("act_hist_layer2_attn_in"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("hamming_hist"), std::string::npos) << list.out;  // listed as not from the database
  for (const char* ext : {".png", ".pdf"}) {
    const fs::path out = dir / (std::string("ppl") + ext);
    const auto r = test::run_sparsa({"plot", "--db", db.string(), "--figure", "ppl_by_structure", "--title", "Mine",
                                     "--width", "800", "--out", out.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::file_size(out) > 1000) << out;
  }
  const auto missing = test::run_sparsa({"plot", "--db", db.string(), "--figure", "spy_wanda", "--out",
                                         (dir / "x.png").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("not drawn from the database"), std::string::npos) << missing.err;
  EXPECT_EQ(test::run_sparsa({"plot", "--db", db.string(), "--figure", "nope", "--out", (dir / "x.png").string()})
                .exit_code,
            2);
  EXPECT_EQ(test::run_sparsa({"plot", "--db", db.string(), "--figure", "ppl_by_structure", "--out",
                              (dir / "x.svg").string()})
                .exit_code,
            2);
  EXPECT_EQ(test::run_sparsa({"plot", "--db", db.string(), "--figure", "ppl_by_structure", "--out", db.string()})
                .exit_code,
            2);
  EXPECT_EQ(test::run_sparsa({"plot", "--db", (dir / "absent.duckdb").string(), "--list"}).exit_code, 2);
  EXPECT_FALSE(fs::exists(dir / "x.png"));
}

}  // namespace
}  // namespace sparsa
