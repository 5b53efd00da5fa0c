// Bar charts over categories, histograms over numeric bins (with vertical markers), and the
// activation histogram with its ±threshold lines.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "sparsa/error.h"
#include "viz/data_range.h"

namespace sparsa::viz {
namespace {

constexpr double kGroupShare = 0.82;  // share of a slot / bin covered by its group of bars

void check_series(const std::vector<BarSeries>& series, size_t n, std::string_view figure, std::string_view of) {
  if (series.empty()) bad_input("{}: no series", figure);
  for (const BarSeries& s : series) {
    if (s.values.size() != n)
      bad_input("{}: series '{}' has {} values for {} {}", figure, s.name, s.values.size(), n, of);
    check_values(s.values, figure, fmt::format("series '{}'", s.name));
    for (size_t i = 0; i < n; ++i)
      if (s.values[i] < 0) bad_input("{}: series '{}' value [{}] is negative ({})", figure, s.name, i, s.values[i]);
  }
}

std::vector<std::vector<double>> values_of(const std::vector<BarSeries>& series) {
  std::vector<std::vector<double>> v;
  for (const BarSeries& s : series) v.push_back(s.values);
  return v;
}

std::vector<LegendEntry> series_legend(const std::vector<BarSeries>& series) {
  std::vector<LegendEntry> legend;
  if (series.size() < 2) return legend;
  for (size_t i = 0; i < series.size(); ++i)
    legend.push_back({series[i].name, categorical_color(static_cast<int>(i)), Glyph::kBox, 0});
  return legend;
}

// Bars of every series for slot i spanning [x0, x1] in data units, side by side.
void draw_bar_group(const Canvas& c, const Plot& p, const std::vector<BarSeries>& series, size_t i, double x0,
                    double x1) {
  const double base = p.y.axis.log ? p.y.axis.lo : 0;
  const double w = (x1 - x0) / static_cast<double>(series.size());
  for (size_t s = 0; s < series.size(); ++s) {
    const double v = series[s].values[i];
    if (v <= 0) continue;
    const double l = p.x.px(x0 + w * s), r = p.x.px(x0 + w * (s + 1));
    const double top = p.y.px(v), bottom = p.y.px(base);
    const Rect bar{std::min(l, r), top, std::max(1.0, std::abs(r - l)), bottom - top};
    c.fill_rect(bar, categorical_color(static_cast<int>(s)));
    if (bar.w > 6 * c.unit()) c.stroke_rect(bar, 0.6, kWhite);
  }
}

void draw_markers(const Canvas& c, const Plot& p, const std::vector<Marker>& markers) {
  const double u = c.unit(), h = c.text_height(kTickFont);
  for (const Marker& m : markers) c.line(p.x.px(m.x), p.area.y, p.x.px(m.x), p.area.bottom(), 2, m.color, true);
  // Labels left to right, each in the first text row where it overlaps no earlier label.
  std::vector<size_t> by_x(markers.size());
  std::iota(by_x.begin(), by_x.end(), size_t{0});
  std::sort(by_x.begin(), by_x.end(), [&](size_t a, size_t b) { return markers[a].x < markers[b].x; });
  std::vector<double> row_end;  // right edge of the last label in each row
  for (const size_t i : by_x) {
    const Marker& m = markers[i];
    if (m.label.empty()) continue;
    const double x = p.x.px(m.x), w = c.text_width(m.label, kTickFont) + 6 * u;
    size_t row = 0;
    while (row < row_end.size() && row_end[row] > x - w / 2) ++row;
    if (row == row_end.size()) row_end.push_back(0);
    row_end[row] = x + w / 2 + 2 * u;
    const double y = p.area.y + 4 * u + (h + 4 * u) * static_cast<double>(row);
    c.fill_rect({x - w / 2, y - u, w, h + 2 * u}, kWhite, 0.85);
    c.text(m.label, x, y, kTickFont, HAlign::kCenter, VAlign::kTop, m.color, 0, true);
  }
}

}  // namespace

Image bar_chart(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                const BarChartOptions& opt) {
  constexpr std::string_view kFigure = "bar chart";
  if (categories.empty()) bad_input("bar chart: no categories");
  check_series(series, categories.size(), kFigure, "categories");
  Canvas c(opt.frame);
  const std::vector<LegendEntry> legend = series_legend(series);
  const double top = c.title(opt.frame.title);
  Axis x;
  x.categories = categories;
  x.label = opt.frame.x_label;
  const Plot p = layout_plot(c, top, std::move(x), count_axis(values_of(series), opt.log_y, opt.frame.y_label, kFigure),
                             legend.empty() ? 0 : legend_width(c, legend));
  draw_grid(c, p);
  {
    const ClipToPlot clip(c, p);
    for (size_t i = 0; i < categories.size(); ++i) {
      const double mid = static_cast<double>(i);
      draw_bar_group(c, p, series, i, mid - kGroupShare / 2, mid + kGroupShare / 2);
    }
  }
  draw_axes(c, p);
  draw_legend(c, legend, p.area.right(), p.area.y);
  return c.finish();
}

Image histogram(const std::vector<double>& edges, const std::vector<BarSeries>& series, const HistogramOptions& opt) {
  constexpr std::string_view kFigure = "histogram";
  check_values(edges, kFigure, "bin edges");
  if (edges.size() < 2) bad_input("histogram: {} bin edges; at least 2 are needed", edges.size());
  for (size_t i = 1; i < edges.size(); ++i)
    if (!(edges[i] > edges[i - 1])) bad_input("histogram: bin edges are not increasing at [{}]", i);
  const size_t bins = edges.size() - 1;
  check_series(series, bins, kFigure, "bins");
  double lo = edges.front(), hi = edges.back();
  for (const Marker& m : opt.markers) {
    if (!std::isfinite(m.x)) bad_input("histogram: marker '{}' is at {}, not a finite number", m.label, m.x);
    lo = std::min(lo, m.x);
    hi = std::max(hi, m.x);
  }
  Canvas c(opt.frame);
  std::vector<LegendEntry> legend = series_legend(series);
  for (const Marker& m : opt.markers) {
    const bool listed = std::any_of(legend.begin(), legend.end(), [&](const LegendEntry& e) { return e.label == m.legend; });
    if (!m.legend.empty() && !listed) legend.push_back({m.legend, m.color, Glyph::kRule, 0});
  }
  const double top = c.title(opt.frame.title);
  const Plot p = layout_plot(c, top, padded_axis(lo, hi, false, opt.frame.x_label, 0.02),
                             count_axis(values_of(series), opt.log_y, opt.frame.y_label, kFigure),
                             legend.empty() ? 0 : legend_width(c, legend));
  draw_grid(c, p);
  {
    const ClipToPlot clip(c, p);
    const bool grouped = series.size() > 1;
    for (size_t i = 0; i < bins; ++i) {
      const double w = edges[i + 1] - edges[i];
      const double inset = grouped ? w * (1 - kGroupShare) / 2 : 0;
      draw_bar_group(c, p, series, i, edges[i] + inset, edges[i + 1] - inset);
    }
    draw_markers(c, p, opt.markers);
  }
  draw_axes(c, p);
  draw_legend(c, legend, p.area.right(), p.area.y);
  return c.finish();
}

Image activation_histogram(const std::vector<double>& edges, const std::vector<double>& counts,
                           const std::vector<ActivationThreshold>& thresholds, HistogramOptions opt) {
  for (size_t i = 0; i < thresholds.size(); ++i) {
    const ActivationThreshold& t = thresholds[i];
    if (!(t.sparsity >= 0 && t.sparsity <= 1) || !(t.threshold > 0) || !std::isfinite(t.threshold))
      bad_input("activation histogram: threshold [{}] needs sparsity in [0, 1] and t > 0 (got {}, {})", i, t.sparsity,
                t.threshold);
    const std::string label = fmt::format("{:g} %", 100 * t.sparsity);
    const std::string legend = fmt::format("{}: |x| ≤ {:.4g}", label, t.threshold);
    const Rgb color = categorical_color(static_cast<int>(i) + 1);
    opt.markers.push_back({-t.threshold, label, legend, color});
    opt.markers.push_back({t.threshold, label, legend, color});
  }
  return histogram(edges, {{"activations", counts}}, opt);
}

}  // namespace sparsa::viz
