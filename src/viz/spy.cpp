// Spy plots of boolean matrices: plain, rows in a given order with a reference row marked,
// and rows grouped by cluster.
#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <numeric>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "viz/axes.h"

namespace sparsa::viz {

BoolMatrixView::BoolMatrixView(const BitMatrix& m) : bits_(&m), rows_(m.rows()), cols_(m.cols()) {}

BoolMatrixView::BoolMatrixView(const uint8_t* data, int64_t rows, int64_t cols)
    : bytes_(data), rows_(rows), cols_(cols) {
  if (rows < 0 || cols < 0 || (rows * cols > 0 && data == nullptr)) bad_input("boolean matrix: bad shape or no data");
}

int64_t BoolMatrixView::count(int64_t row, int64_t c0, int64_t c1) const {
  SPARSA_ASSERT(row >= 0 && row < rows_ && c0 >= 0 && c0 <= c1 && c1 <= cols_);
  int64_t n = 0;
  if (bytes_) {
    const uint8_t* p = bytes_ + row * cols_;
    for (int64_t c = c0; c < c1; ++c) n += p[c] != 0;
    return n;
  }
  const uint64_t* w = bits_->row(row);
  for (int64_t c = c0; c < c1;) {  // whole words where possible
    const int64_t word = c >> 6, bit = c & 63;
    const int64_t take = std::min<int64_t>(64 - bit, c1 - c);
    const uint64_t mask = take == 64 ? ~uint64_t{0} : ((uint64_t{1} << take) - 1) << bit;
    n += std::popcount(w[word] & mask);
    c += take;
  }
  return n;
}

namespace {

constexpr double kStripWidth = 10, kStripGap = 4, kArrow = 9;

void check_matrix(const BoolMatrixView& m) {
  if (m.rows() == 0 || m.cols() == 0) bad_input("spy plot: the matrix is empty ({} x {})", m.rows(), m.cols());
}

double set_fraction(const BoolMatrixView& m) {
  int64_t total = 0;
  for (int64_t r = 0; r < m.rows(); ++r) total += m.count(r, 0, m.cols());
  return static_cast<double>(total) / static_cast<double>(m.rows() * m.cols());
}

std::vector<LegendEntry> binary_legend(const SpyOptions& opt, double fraction) {
  return {{fmt::format("{} ({:.1f} %)", opt.set_label, 100 * fraction), kBlack, Glyph::kBox, 0},
          {fmt::format("{} ({:.1f} %)", opt.clear_label, 100 * (1 - fraction)), kWhite, Glyph::kBox, 0}};
}

// True when some row or column of m gets less than one pixel of the plot.
bool needs_density(const BoolMatrixView& m, const Plot& p) { return m.rows() > p.area.h || m.cols() > p.area.w; }

// The area of a spy plot: x over the columns, y over the picture rows (row 0 on top).
// right_extra: the kind's marks and the key (legend or colour bar).
Plot spy_layout(const Canvas& c, const BoolMatrixView& m, const SpyOptions& opt, double top, double right_extra) {
  Axis x{0, static_cast<double>(m.cols()), false, false, true, {}, opt.frame.x_label};
  Axis y{0, static_cast<double>(m.rows()), false, true, true, {}, opt.frame.y_label};
  Plot p = layout_plot(c, top, std::move(x), std::move(y), right_extra);
  snap_to_pixels(p);
  return p;
}

// Draws picture row i = matrix row order[i] into the plot area, pixel by pixel: the fraction
// of set entries each pixel covers through the density map, or (density = false, every entry
// at least one pixel) black / white.
void draw_matrix(const Canvas& c, const BoolMatrixView& m, const std::vector<int64_t>& order, const Plot& p,
                 bool density) {
  const int W = static_cast<int>(p.area.w), H = static_cast<int>(p.area.h);
  const int64_t R = m.rows(), C = m.cols();
  const ColorMap map = ColorMap::density();
  cairo_surface_t* img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
  const int stride = cairo_image_surface_get_stride(img);
  unsigned char* data = cairo_image_surface_get_data(img);
  std::vector<int64_t> c0(static_cast<size_t>(W)), c1(static_cast<size_t>(W));
  for (int x = 0; x < W; ++x) {
    c0[x] = x * C / W;
    c1[x] = std::max(c0[x] + 1, (x + 1) * C / W);
  }
  for (int y = 0; y < H; ++y) {
    const int64_t r0 = y * R / H, r1 = std::max(r0 + 1, (y + 1) * R / H);
    auto* row = reinterpret_cast<uint32_t*>(data + static_cast<size_t>(y) * stride);
    for (int x = 0; x < W; ++x) {
      int64_t set = 0;
      for (int64_t r = r0; r < r1; ++r) set += m.count(order[static_cast<size_t>(r)], c0[x], c1[x]);
      const double frac = static_cast<double>(set) / static_cast<double>((r1 - r0) * (c1[x] - c0[x]));
      const Rgb col = density ? map.at(frac) : (frac > 0.5 ? kBlack : kWhite);
      row[x] = (static_cast<uint32_t>(std::lround(col.r * 255)) << 16) |
               (static_cast<uint32_t>(std::lround(col.g * 255)) << 8) | static_cast<uint32_t>(std::lround(col.b * 255));
    }
  }
  cairo_surface_mark_dirty(img);
  cairo_set_source_surface(c.cr(), img, p.area.x, p.area.y);
  cairo_pattern_set_filter(cairo_get_source(c.cr()), CAIRO_FILTER_NEAREST);  // crisp pixels when scaled (PDF, SVG)
  cairo_paint(c.cr());
  cairo_surface_destroy(img);
}

std::string spy_subtitle(const BoolMatrixView& m, const SpyOptions& opt, const Plot& p, bool density) {
  std::string s = fmt::format("{} rows × {} columns", m.rows(), m.cols());
  if (density)
    s += fmt::format(" · each pixel shows the fraction {} in a block of ≈ {:.3g} × {:.3g} entries", opt.set_label,
                     std::max(1.0, static_cast<double>(m.rows()) / p.area.h),
                     std::max(1.0, static_cast<double>(m.cols()) / p.area.w));
  return s;
}

// The shared body of every spy plot: layout, matrix, axes, key (legend or colour bar);
// `decorate(plot, right column x)` adds the kind's own marks right of the plot, in a column
// `marks_width(canvas)` px wide.
using MarksWidth = std::function<double(const Canvas&)>;
using Decorate = std::function<void(const Canvas&, const Plot&, double)>;

Image spy_figure(const BoolMatrixView& m, const std::vector<int64_t>& order, const SpyOptions& opt,
                 const MarksWidth& marks_width, const Decorate& decorate) {
  Canvas c(opt.frame);
  const double marks = marks_width(c);
  const std::vector<LegendEntry> legend = binary_legend(opt, set_fraction(m));
  const double top = c.title(opt.frame.title, " ", /*draw=*/false);  // the subtitle's text comes later
  // Black and white with a legend when every entry gets a pixel beside the legend; else the
  // density raster with its (narrower) colour bar.
  Plot p = spy_layout(c, m, opt, top, marks + legend_width(c, legend));
  const bool density = needs_density(m, p);
  if (density) p = spy_layout(c, m, opt, top, marks + colorbar_width(c, 0, 1));
  c.title(opt.frame.title, spy_subtitle(m, opt, p, density));
  draw_matrix(c, m, order, p, density);
  draw_axes(c, p);
  decorate(c, p, p.area.right());
  const double key_x = p.area.right() + marks;
  if (density)
    draw_colorbar(c, ColorMap::density(), 0, 1, fmt::format("fraction {} per pixel", opt.set_label), key_x, p.area);
  else
    draw_legend(c, legend, key_x, p.area.y);
  return c.finish();
}

std::vector<int64_t> identity_order(int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  return order;
}

}  // namespace

Image spy_plot(const BoolMatrixView& m, const SpyOptions& opt) {
  check_matrix(m);
  return spy_figure(
      m, identity_order(m.rows()), opt, [](const Canvas&) { return 0.0; }, [](const Canvas&, const Plot&, double) {});
}

Image gradient_spy_plot(const BoolMatrixView& m, const std::vector<int64_t>& order, int64_t reference_row,
                        const SpyOptions& opt) {
  check_matrix(m);
  if (static_cast<int64_t>(order.size()) != m.rows())
    bad_input("gradient spy plot: order has {} entries for a matrix of {} rows", order.size(), m.rows());
  std::vector<char> seen(order.size(), 0);
  for (const int64_t r : order) {
    if (r < 0 || r >= m.rows() || seen[static_cast<size_t>(r)])
      bad_input("gradient spy plot: order is not a permutation of the {} rows (bad or repeated row {})", m.rows(), r);
    seen[static_cast<size_t>(r)] = 1;
  }
  if (reference_row < 0 || reference_row >= m.rows())
    bad_input("gradient spy plot: reference row {} is outside [0, {})", reference_row, m.rows());
  const int64_t position = std::find(order.begin(), order.end(), reference_row) - order.begin();
  const std::string label = fmt::format("row {} (reference)", reference_row);
  const auto marks_width = [&](const Canvas& c) {
    return (kArrow + 2 * kStripGap) * c.unit() + c.text_width(label, kTickFont);
  };
  return spy_figure(m, order, opt, marks_width, [&](const Canvas& c, const Plot& p, double x) {
    const double u = c.unit();
    const double y = p.y.px(static_cast<double>(position) + 0.5);
    cairo_t* cr = c.cr();  // an arrow pointing at the row from the right
    cairo_move_to(cr, x, y);
    cairo_line_to(cr, x + kArrow * u, y - kArrow * u * 0.6);
    cairo_line_to(cr, x + kArrow * u, y + kArrow * u * 0.6);
    cairo_close_path(cr);
    c.set_color(kMarkRed);
    cairo_fill(cr);
    c.text(label, x + (kArrow + kStripGap) * u, y, kTickFont, HAlign::kLeft, VAlign::kMiddle, kMarkRed);
  });
}

Image clustered_spy_plot(const BoolMatrixView& m, const std::vector<int>& assignment, const SpyOptions& opt) {
  check_matrix(m);
  if (static_cast<int64_t>(assignment.size()) != m.rows())
    bad_input("clustered spy plot: {} cluster ids for a matrix of {} rows", assignment.size(), m.rows());
  int k = 0;
  for (const int a : assignment) {
    if (a < 0) bad_input("clustered spy plot: negative cluster id {}", a);
    k = std::max(k, a + 1);
  }
  std::vector<int64_t> order = identity_order(m.rows());
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return assignment[static_cast<size_t>(a)] < assignment[static_cast<size_t>(b)];
  });
  std::vector<int64_t> sizes(static_cast<size_t>(k), 0);
  for (const int a : assignment) ++sizes[static_cast<size_t>(a)];
  std::vector<std::string> labels;
  for (int i = 0; i < k; ++i) labels.push_back(fmt::format("c{} ({})", i, sizes[static_cast<size_t>(i)]));
  const auto marks_width = [&](const Canvas& c) {
    double w = 0;
    for (const std::string& l : labels) w = std::max(w, c.text_width(l, kTickFont));
    return (2 * kStripGap + kStripWidth) * c.unit() + w;
  };
  return spy_figure(m, order, opt, marks_width, [&](const Canvas& c, const Plot& p, double x) {
    const double u = c.unit(), text_h = c.text_height(kTickFont);
    int64_t start = 0;
    for (int i = 0; i < k; ++i) {
      const int64_t n = sizes[static_cast<size_t>(i)];
      if (n == 0) continue;
      const double y0 = p.y.px(static_cast<double>(start)), y1 = p.y.px(static_cast<double>(start + n));
      c.fill_rect({x + kStripGap * u, y0, kStripWidth * u, y1 - y0}, categorical_color(i));
      if (start > 0) {
        const double yl = std::round(y0);  // a crisp line between pixel rows
        c.line(p.area.x, yl, p.area.right(), yl, 2, kMarkRed);
      }
      if (y1 - y0 >= text_h * 0.95)
        c.text(labels[static_cast<size_t>(i)], x + (2 * kStripGap + kStripWidth) * u, (y0 + y1) / 2, kTickFont,
               HAlign::kLeft, VAlign::kMiddle);
      start += n;
    }
  });
}

}  // namespace sparsa::viz
