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

Rgb over_white(Rgb c, double alpha) { return {alpha * c.r + 1 - alpha, alpha * c.g + 1 - alpha, alpha * c.b + 1 - alpha}; }

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

// The marker labels' rows: every label in one row at the top of the plot when their widths
// fit its width, else round-robin (by x) over as many rows as needed; within a row,
// spread_labels pushes colliding labels apart. Returns each label's row ([markers]; -1 = none).
std::vector<int> label_rows(const std::vector<Marker>& markers, const std::vector<double>& widths, double span) {
  std::vector<size_t> by_x;
  double total = 0;
  for (size_t i = 0; i < markers.size(); ++i)
    if (!markers[i].label.empty()) {
      by_x.push_back(i);
      total += widths[i];
    }
  std::stable_sort(by_x.begin(), by_x.end(), [&](size_t a, size_t b) { return markers[a].x < markers[b].x; });
  const size_t rows = std::max<size_t>(1, static_cast<size_t>(std::ceil(total / std::max(span, 1.0))));
  std::vector<int> row(markers.size(), -1);
  for (size_t k = 0; k < by_x.size(); ++k) row[by_x[k]] = static_cast<int>(k % rows);
  return row;
}

void draw_markers(const Canvas& c, const Plot& p, const std::vector<Marker>& markers) {
  const double u = c.unit(), h = c.text_height(kTickFont), gap = 4 * u;
  for (const Marker& m : markers) c.line(p.x.px(m.x), p.area.y, p.x.px(m.x), p.area.bottom(), 2, m.color, true);
  std::vector<double> widths;
  for (const Marker& m : markers) widths.push_back(m.label.empty() ? 0 : c.text_width(m.label, kTickFont) + 6 * u);
  const std::vector<int> row = label_rows(markers, widths, p.area.w);
  const int n_rows = markers.empty() ? 0 : *std::max_element(row.begin(), row.end()) + 1;
  for (int r = 0; r < n_rows; ++r) {
    std::vector<size_t> members;
    std::vector<double> want, width;
    for (size_t i = 0; i < markers.size(); ++i)
      if (row[i] == r) {
        members.push_back(i);
        want.push_back(p.x.px(markers[i].x));
        width.push_back(widths[i]);
      }
    const std::vector<double> at = spread_labels(want, width, p.area.x + 2 * u, p.area.right() - 2 * u, gap);
    const double y = p.area.y + 4 * u + (h + 4 * u + gap) * static_cast<double>(r);
    for (size_t k = 0; k < members.size(); ++k) {
      const Marker& m = markers[members[k]];
      if (std::abs(at[k] - want[k]) > 1) c.line(at[k], y + h + u, want[k], y + h + gap, 1, m.color);
      c.fill_rect({at[k] - width[k] / 2, y - u, width[k], h + 2 * u}, kWhite, 0.85);
      c.text(m.label, at[k], y, kTickFont, HAlign::kCenter, VAlign::kTop, m.color, 0, true);
    }
  }
}

// The value axis of a bar chart: the bars' values and the reference lines'.
Axis value_axis(const std::vector<BarSeries>& series, const std::vector<ReferenceLine>& refs, bool log,
                const std::string& label, std::string_view figure) {
  std::vector<std::vector<double>> values = values_of(series);
  std::vector<double> ys;
  for (const ReferenceLine& r : refs) ys.push_back(r.y);
  if (!ys.empty()) check_values(ys, figure, "reference lines", log);
  values.push_back(std::move(ys));
  return count_axis(values, log, label, figure);
}

void draw_references(const Canvas& c, const Plot& p, const std::vector<ReferenceLine>& refs) {
  const double u = c.unit();
  for (const ReferenceLine& r : refs) {
    const double y = p.y.px(r.y);
    c.line(p.area.x, y, p.area.right(), y, 2, r.color, true);
    const double w = c.text_width(r.label, kTickFont) + 6 * u, h = c.text_height(kTickFont);
    c.fill_rect({p.area.right() - w - 2 * u, y - h - 4 * u, w, h + 2 * u}, kWhite, 0.85);
    c.text(r.label, p.area.right() - 5 * u, y - 3 * u, kTickFont, HAlign::kRight, VAlign::kBottom, r.color);
  }
}

// The clipped tails: the edge bins drawn lighter, each labelled "≤ lo" / "≥ hi" above its bar.
void draw_clipped_tails(const Canvas& c, const Plot& p, const std::vector<double>& edges,
                        const std::vector<BarSeries>& series) {
  const double u = c.unit(), h = c.text_height(kTickFont);
  const size_t last = edges.size() - 2;
  for (const size_t bin : {size_t{0}, last}) {
    double top = 0;
    for (const BarSeries& s : series) top = std::max(top, s.values[bin]);
    const double x0 = p.x.px(edges[bin]), x1 = p.x.px(edges[bin + 1]);
    if (top > 0 && !(p.y.axis.log && top <= p.y.axis.lo)) {
      const double y_top = std::max(p.area.y, p.y.px(top));
      c.fill_rect({std::min(x0, x1), y_top, std::abs(x1 - x0), p.area.bottom() - y_top}, kWhite, 0.55);
    }
    const bool left = bin == 0;
    const std::string label = fmt::format("{} {:.3g}", left ? "≤" : "≥", edges[left ? 0 : edges.size() - 1]);
    const double y = std::max(p.area.y + h + 2 * u, top > 0 ? p.y.px(top) - 3 * u : p.area.bottom() - 3 * u);
    c.text(label, left ? x0 : x1, y, kTickFont, left ? HAlign::kLeft : HAlign::kRight, VAlign::kBottom, kAxisGrey);
  }
}

}  // namespace

Image bar_chart(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                const BarChartOptions& opt) {
  constexpr std::string_view kFigure = "bar chart";
  if (categories.empty()) bad_input("bar chart: no categories");
  check_series(series, categories.size(), kFigure, "categories");
  Canvas c(opt.frame);
  std::vector<LegendEntry> legend = series_legend(series);
  if (!opt.references.empty() && legend.empty())
    legend.push_back({series.front().name, categorical_color(0), Glyph::kBox, 0});
  for (const ReferenceLine& r : opt.references) legend.push_back({r.label, r.color, Glyph::kRule, 0});
  const double top = c.title(opt.frame.title);
  Axis x;
  x.categories = categories;
  x.label = opt.frame.x_label;
  const Plot p = layout_plot(c, top, std::move(x),
                             value_axis(series, opt.references, opt.log_y, opt.frame.y_label, kFigure),
                             legend.empty() ? 0 : legend_width(c, legend));
  draw_grid(c, p);
  {
    const ClipToPlot clip(c, p);
    for (size_t i = 0; i < categories.size(); ++i) {
      const double mid = static_cast<double>(i);
      draw_bar_group(c, p, series, i, mid - kGroupShare / 2, mid + kGroupShare / 2);
    }
    draw_references(c, p, opt.references);
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
  if (opt.clipped_tails)
    legend.push_back({fmt::format("edge bins: also |x| beyond ({:.3g}, {:.3g})", edges.front(), edges.back()),
                      over_white(categorical_color(0), 0.45), Glyph::kBox, 0});
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
    if (opt.clipped_tails) draw_clipped_tails(c, p, edges, series);
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
