// sparsa/viz.h — figures as PNG images (drawn with cairo): spy plots of boolean matrices
// (plain, ordered by a permutation, clustered), line charts, bar charts, histograms (with
// threshold markers), heatmaps and cluster-coloured scatter plots.
//
// Every figure function takes plain data and an options struct and returns an Image; call
// Image::save(path) to write it (atomically: a temporary file renamed over `path`) or
// Image::png() for the bytes. Sizes are in pixels; text, lines and margins scale with the
// figure (scale = sqrt(width * height / (1000 * 800)), at least 0.7 so that small figures
// keep readable text), so a 2000×1600 figure looks like a 1000×800 one at twice the resolution. Text uses the "DejaVu Sans" face (fontconfig falls
// back to another sans-serif face when it is missing).
//
// Errors: empty data, mismatched lengths, non-finite values, a non-positive value on a log
// axis, a size outside [200, 8000] px → Error(kBadInput) naming the field; an unwritable
// output path → Error(kRuntime) naming it.
// Thread safety: figures may be drawn concurrently from different threads; an Image is
// immutable and may be shared.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sparsa/bitmatrix.h"

namespace sparsa::viz {

// ---- colours ----

struct Rgb {
  double r = 0, g = 0, b = 0;  // each in [0, 1], sRGB
};

// A continuous colour map over [0, 1], built from control colours interpolated in the
// OKLab colour space (perceptually even steps) and tabulated at 256 points.
class ColorMap {
 public:
  // Sequential, dark blue-violet → teal → green → yellow; lightness rises monotonically.
  static ColorMap sequential();
  // Sequential, near-white → green → blue → dark violet; lightness falls monotonically
  // (used for densities: empty = light, full = dark, like a binary spy plot).
  static ColorMap density();
  // Diverging, blue → near-white (at 0.5) → red.
  static ColorMap diverging();
  // From `stops` (≥ 2 colours at evenly spaced positions 0, 1/(n-1), …, 1).
  explicit ColorMap(const std::vector<Rgb>& stops);

  Rgb at(double t) const;  // t is clamped to [0, 1]

 private:
  std::vector<Rgb> table_;  // [256]
};

// The i-th colour of the categorical palette (clusters, series): distinct hues at two
// alternating lightness levels, readable on white. Defined for every i ≥ 0 (cycles after 24).
Rgb categorical_color(int i);

// ---- the image ----

// PNG: pixels; PDF: vector (text as embedded font subsets, lines and areas as paths; the pixel
// rasters of spy plots embedded as images), a page of the figure at 96 dpi. (SVG is not offered:
// cairo 1.16's SVG surface leaks a recording surface it is given as a source.)
enum class FigureFormat : uint8_t { kPng, kPdf };
std::string_view figure_format_name(FigureFormat f);  // "png", "pdf": also the file extension
// "png" or "pdf"; Error(kBadInput) naming the choices otherwise.
FigureFormat parse_figure_format(std::string_view name);

// A finished figure: the drawing, recorded, rendered in any format on demand. Copies share the
// recording; rendering does not change it, so one Image may be rendered from several threads.
class Image {
 public:
  struct Surface;  // the cairo recording surface, opaque here
  explicit Image(std::shared_ptr<Surface> s);
  int width() const;   // pixels
  int height() const;
  std::string png() const;  // the PNG bytes
  std::string encode(FigureFormat f) const;  // the file's bytes; Error(kRuntime) on a cairo failure
  // Atomic write, in the format the extension names (.pdf; PNG for any other extension).
  // Error(kRuntime) on failure.
  void save(const std::filesystem::path& path) const;

 private:
  std::shared_ptr<Surface> surface_;
};

// Common frame options of every figure.
struct Frame {
  int width = 1000, height = 800;  // pixels
  std::string title;
  std::string x_label, y_label;
};

// ---- spy plots of boolean matrices ----

// A read-only view of a boolean matrix [rows, cols]: a BitMatrix, or row-major bytes where
// non-zero = set. The viewed data must outlive the view.
class BoolMatrixView {
 public:
  BoolMatrixView(const BitMatrix& m);  // NOLINT(google-explicit-constructor): views convert implicitly
  BoolMatrixView(const uint8_t* data, int64_t rows, int64_t cols);  // [rows, cols] 0/1
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Number of set entries of `row` in columns [c0, c1).
  int64_t count(int64_t row, int64_t c0, int64_t c1) const;

 private:
  const BitMatrix* bits_ = nullptr;
  const uint8_t* bytes_ = nullptr;
  int64_t rows_ = 0, cols_ = 0;
};

// How a spy plot draws the matrix: rows top to bottom, columns left to right, filling the
// plot area (cells need not be square). When every row and column gets at least one pixel
// (with the legend beside the plot), set entries are black and clear ones white, with a
// legend giving both shares. Otherwise each pixel
// shows the fraction of set entries in the block of the matrix it covers (density raster),
// coloured with ColorMap::density() (0 = light, 1 = dark) and explained by a colour bar.
struct SpyOptions {
  Frame frame{1000, 800, "", "column", "row"};
  std::string set_label = "set";      // what a set entry means, e.g. "pruned", "active"
  std::string clear_label = "clear";  // what a clear entry means, e.g. "kept"
};

// A spy plot of `m`.
Image spy_plot(const BoolMatrixView& m, const SpyOptions& opt);

// A co-activation gradient spy: row i of the picture is row order[i] of `m` (e.g. features
// sorted by Hamming distance to a reference feature); the picture row showing `reference_row`
// (a row index of `m`) is marked with a red arrow and a label in the right margin.
// order must be a permutation of [0, m.rows()).
Image gradient_spy_plot(const BoolMatrixView& m, const std::vector<int64_t>& order, int64_t reference_row,
                        const SpyOptions& opt);

// A clustered spy: rows grouped by cluster (cluster 0 first, original order within a
// cluster), a horizontal line between clusters, a colour strip naming each cluster on the
// left and "c<id> (n)" labels in the right margin where they fit.
// assignment: [m.rows()] cluster ids in [0, k) where k = max id + 1.
Image clustered_spy_plot(const BoolMatrixView& m, const std::vector<int>& assignment, const SpyOptions& opt);

// ---- charts ----

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length, ≥ 1 point
};

struct LineChartOptions {
  Frame frame;
  bool log_x = false, log_y = false;
  bool markers = true;  // a marker per point (a different shape per series)
};

// Lines through the points of each series (in the given order), one colour per series,
// with a legend right of the plot.
Image line_chart(const std::vector<Series>& series, const LineChartOptions& opt);

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category / bin, ≥ 0
};

// A horizontal line across a bar chart at value y (e.g. the dense model's perplexity), drawn
// dashed, labelled with `label` at the plot's right end and listed in the legend.
struct ReferenceLine {
  double y = 0;
  std::string label;  // e.g. "dense 12.35"
  Rgb color{0.15, 0.15, 0.15};
};

struct BarChartOptions {
  Frame frame;
  bool log_y = false;  // zero bars are then left out
  std::vector<ReferenceLine> references;  // the value axis covers them
};

// Bars for named categories; several series are drawn as grouped bars side by side with a
// legend (listing the reference lines too). categories: [n]; each series' values: [n].
Image bar_chart(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                const BarChartOptions& opt);

// A vertical line across a histogram at x, labelled at the top of the plot.
struct Marker {
  double x = 0;
  std::string label;   // short, e.g. "50 %"
  std::string legend;  // legend entry, listed once for markers sharing it; empty = none
  Rgb color{0.85, 0.1, 0.1};
};

struct HistogramOptions {
  Frame frame{1000, 800, "", "value", "count"};
  bool log_y = false;
  std::vector<Marker> markers;
  // The first and last bins also count the values beyond the outer edges (tails clipped into
  // them): those bins are drawn lighter, labelled "≤ edges[0]" / "≥ edges[n]", and the legend
  // says so.
  bool clipped_tails = false;
};

// A histogram with a numeric x axis. edges: [n + 1] increasing bin edges; each series'
// values: [n] counts; two or more series are drawn as grouped bars within each bin and listed
// in a legend (with the markers' legend entries). The x range covers the markers too.
// Marker labels sit in a row at the top of the plot, pushed apart sideways (spread_labels)
// so that none overlaps another, with a short leader line to a label's marker when it moved;
// labels that cannot fit in one row take further rows.
Image histogram(const std::vector<double>& edges, const std::vector<BarSeries>& series, const HistogramOptions& opt);

struct ActivationThreshold {
  double sparsity = 0;   // fraction of activations with |x| <= threshold, e.g. 0.5
  double threshold = 0;  // t > 0
};

// A histogram of signed activation values (one series), with a pair of lines at ±t for each
// threshold i, labelled with its sparsity in percent, coloured by categorical_color(i + 1)
// and listed in the legend as "<sparsity> %: |x| ≤ t". opt.markers are drawn too.
Image activation_histogram(const std::vector<double>& edges, const std::vector<double>& counts,
                           const std::vector<ActivationThreshold>& thresholds, HistogramOptions opt);

// Centres for labels of widths `width` wanted at centres `want` along a line, so that
// neighbours are at least `gap` apart and every label lies within [lo, hi]: labels keep their
// order (by want; ties by index) and move as little as possible (least squares). When they
// cannot fit in [lo, hi] they overflow both ends equally. want, width: [n]; returns [n] centres
// in the order of `want`.
std::vector<double> spread_labels(const std::vector<double>& want, const std::vector<double>& width, double lo,
                                  double hi, double gap);

struct HeatmapOptions {
  Frame frame;
  std::string value_label;  // colour bar title
  bool diverging = false;   // ColorMap::diverging() centred on the middle of the range; else sequential()
  double vmin = 0, vmax = 0;  // colour range; vmin == vmax means the data's min and max
  int decimals = 2;         // digits printed in cells (when the text fits the cell)
};

// A heatmap of values [rows, cols] (row-major; NaN = missing, drawn light grey) with row
// labels on the left, column labels below and a colour bar on the right.
Image heatmap(const std::vector<double>& values, const std::vector<std::string>& row_labels,
              const std::vector<std::string>& col_labels, const HeatmapOptions& opt);

struct ScatterOptions {
  Frame frame;
  double point_radius = 3.5;  // pixels at scale 1
};

// Points (x[i], y[i]) coloured by cluster[i] (ids ≥ 0, categorical_color(id)), with a
// legend "cluster <id> (n)". x, y, cluster: [n].
Image cluster_scatter(const std::vector<double>& x, const std::vector<double>& y, const std::vector<int>& cluster,
                      const ScatterOptions& opt);

}  // namespace sparsa::viz
