// Line charts and cluster-coloured scatter plots.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "viz/data_range.h"

namespace sparsa::viz {
namespace {

constexpr double kLineWidth = 2.2, kMarkerRadius = 4.5;

std::pair<double, double> min_max(const std::vector<double>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return {*lo, *hi};
}

}  // namespace

Image line_chart(const std::vector<Series>& series, const LineChartOptions& opt) {
  constexpr std::string_view kFigure = "line chart";
  if (series.empty()) bad_input("line chart: no series");
  double x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    if (s.x.size() != s.y.size())
      bad_input("line chart: series '{}' has {} x values but {} y values", s.name, s.x.size(), s.y.size());
    check_values(s.x, kFigure, fmt::format("series '{}' x", s.name), opt.log_x);
    check_values(s.y, kFigure, fmt::format("series '{}' y", s.name), opt.log_y);
    const auto [xl, xh] = min_max(s.x);
    const auto [yl, yh] = min_max(s.y);
    x_lo = i == 0 ? xl : std::min(x_lo, xl);
    x_hi = i == 0 ? xh : std::max(x_hi, xh);
    y_lo = i == 0 ? yl : std::min(y_lo, yl);
    y_hi = i == 0 ? yh : std::max(y_hi, yh);
  }
  Canvas c(opt.frame);
  std::vector<LegendEntry> legend;
  for (size_t i = 0; i < series.size(); ++i)
    legend.push_back({series[i].name, categorical_color(static_cast<int>(i)), Glyph::kLine,
                      opt.markers ? static_cast<int>(i) : 0});
  const double top = c.title(opt.frame.title);
  const Plot p = layout_plot(c, top, padded_axis(x_lo, x_hi, opt.log_x, opt.frame.x_label, 0.04),
                             padded_axis(y_lo, y_hi, opt.log_y, opt.frame.y_label, 0.06), legend_width(c, legend));
  draw_grid(c, p);
  {
    const ClipToPlot clip(c, p);
    cairo_t* cr = c.cr();
    for (size_t i = 0; i < series.size(); ++i) {
      const Series& s = series[i];
      const Rgb col = categorical_color(static_cast<int>(i));
      cairo_new_path(cr);
      for (size_t j = 0; j < s.x.size(); ++j) cairo_line_to(cr, p.x.px(s.x[j]), p.y.px(s.y[j]));
      c.set_color(col);
      cairo_set_line_width(cr, kLineWidth * c.unit());
      cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
      cairo_stroke(cr);
      if (!opt.markers) continue;
      for (size_t j = 0; j < s.x.size(); ++j)
        draw_point(c, static_cast<int>(i), p.x.px(s.x[j]), p.y.px(s.y[j]), kMarkerRadius * c.unit(), col);
    }
  }
  draw_axes(c, p);
  draw_legend(c, legend, p.area.right(), p.area.y);
  return c.finish();
}

Image cluster_scatter(const std::vector<double>& x, const std::vector<double>& y, const std::vector<int>& cluster,
                      const ScatterOptions& opt) {
  constexpr std::string_view kFigure = "scatter plot";
  check_values(x, kFigure, "x");
  check_values(y, kFigure, "y");
  if (y.size() != x.size() || cluster.size() != x.size())
    bad_input("scatter plot: {} x values, {} y values and {} cluster ids; they must match", x.size(), y.size(),
              cluster.size());
  std::map<int, int64_t> sizes;
  for (const int k : cluster) {
    if (k < 0) bad_input("scatter plot: negative cluster id {}", k);
    ++sizes[k];
  }
  Canvas c(opt.frame);
  std::vector<LegendEntry> legend;
  for (const auto& [k, n] : sizes)
    legend.push_back({fmt::format("cluster {} ({})", k, n), categorical_color(k), Glyph::kPoint, 0});
  const double top = c.title(opt.frame.title);
  const auto [x_lo, x_hi] = min_max(x);
  const auto [y_lo, y_hi] = min_max(y);
  const Plot p = layout_plot(c, top, padded_axis(x_lo, x_hi, false, opt.frame.x_label),
                             padded_axis(y_lo, y_hi, false, opt.frame.y_label), legend_width(c, legend));
  draw_grid(c, p);
  {
    const ClipToPlot clip(c, p);
    for (size_t i = 0; i < x.size(); ++i)
      draw_point(c, 0, p.x.px(x[i]), p.y.px(y[i]), opt.point_radius * c.unit(), categorical_color(cluster[i]), 0.8);
  }
  draw_axes(c, p);
  draw_legend(c, legend, p.area.right(), p.area.y);
  return c.finish();
}

}  // namespace sparsa::viz
