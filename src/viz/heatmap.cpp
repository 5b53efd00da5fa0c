// Heatmaps with labelled rows and columns, a colour bar, and values printed in the cells.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "viz/axes.h"

namespace sparsa::viz {
namespace {

constexpr Rgb kMissing{0.86, 0.86, 0.86};

double luminance(Rgb c) { return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b; }

}  // namespace

Image heatmap(const std::vector<double>& values, const std::vector<std::string>& row_labels,
              const std::vector<std::string>& col_labels, const HeatmapOptions& opt) {
  const size_t rows = row_labels.size(), cols = col_labels.size();
  if (rows == 0 || cols == 0) bad_input("heatmap: no rows or no columns ({} x {})", rows, cols);
  if (values.size() != rows * cols)
    bad_input("heatmap: {} values for {} rows x {} columns", values.size(), rows, cols);
  if (opt.decimals < 0 || opt.decimals > 10) bad_input("heatmap: decimals {} outside [0, 10]", opt.decimals);
  double lo = opt.vmin, hi = opt.vmax;
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
    bad_input("heatmap: colour range [{}, {}] is not a finite interval", lo, hi);
  if (lo == hi) {
    bool any = false;
    for (const double v : values) {
      if (std::isinf(v)) bad_input("heatmap: a value is infinite");
      if (std::isnan(v)) continue;
      lo = any ? std::min(lo, v) : v;
      hi = any ? std::max(hi, v) : v;
      any = true;
    }
    if (!any) bad_input("heatmap: every value is missing (NaN)");
    if (lo == hi) {  // a constant matrix still needs a colour range
      lo -= 0.5;
      hi += 0.5;
    }
  }
  const ColorMap map = opt.diverging ? ColorMap::diverging() : ColorMap::sequential();

  Canvas c(opt.frame);
  const double top = c.title(opt.frame.title);
  Axis x, y;
  x.categories = col_labels;
  x.label = opt.frame.x_label;
  y.categories = row_labels;
  y.flipped = true;
  y.label = opt.frame.y_label;
  const Plot p = layout_plot(c, top, std::move(x), std::move(y), colorbar_width(c, lo, hi));
  const double cell_w = p.area.w / static_cast<double>(cols), cell_h = p.area.h / static_cast<double>(rows);
  const double text_h = c.text_height(kCellFont);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t k = 0; k < cols; ++k) {
      const double v = values[r * cols + k];
      const Rect cell{p.area.x + cell_w * static_cast<double>(k), p.area.y + cell_h * static_cast<double>(r), cell_w,
                      cell_h};
      const Rgb col = std::isnan(v) ? kMissing : map.at((v - lo) / (hi - lo));
      c.fill_rect({cell.x, cell.y, cell.w + 0.5, cell.h + 0.5}, col);  // overlap hides seams
      if (std::isnan(v)) continue;
      const std::string s = fmt::format("{:.{}f}", v, opt.decimals);
      if (c.text_width(s, kCellFont) + 6 * c.unit() <= cell.w && text_h * 1.1 <= cell.h)
        c.text(s, cell.x + cell.w / 2, cell.y + cell.h / 2, kCellFont, HAlign::kCenter, VAlign::kMiddle,
               luminance(col) < 0.45 ? kWhite : kBlack);
    }
  }
  draw_axes(c, p);
  draw_colorbar(c, map, lo, hi, opt.value_label, p.area.right(), p.area);
  return c.finish();
}

}  // namespace sparsa::viz
