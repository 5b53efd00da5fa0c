#include "viz/axes.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "sparsa/error.h"

namespace sparsa::viz {
namespace {

constexpr double kTickLen = 5, kGap = 4, kPad = 14;

double nice_step(double raw, bool integer) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = std::max(1.0, std::round(step));
  return step;
}

std::string format_power_of_ten(int k) {
  if (k >= 0 && k <= 5) return fmt::format("{:.0f}", std::pow(10.0, k));
  if (k < 0 && k >= -3) return fmt::format("{:.{}f}", std::pow(10.0, k), -k);
  return fmt::format("1e{}", k);
}

// Ticks for `a` when it spans `length` pixels, with at most max_ticks of them.
std::vector<Tick> ticks_for(const Axis& a, int max_ticks) {
  if (!a.categories.empty()) {
    const int n = static_cast<int>(a.categories.size());
    const int step = std::max(1, (n + max_ticks - 1) / std::max(1, max_ticks));
    std::vector<Tick> t;
    for (int i = 0; i < n; i += step) t.push_back({static_cast<double>(i), a.categories[static_cast<size_t>(i)]});
    return t;
  }
  return a.log ? log_ticks(a.lo, a.hi, max_ticks) : linear_ticks(a.lo, a.hi, max_ticks, a.integer);
}

// True when the tick labels along an axis of `length` px do not overlap.
bool ticks_fit(const Canvas& c, const PlacedAxis& pa, bool horizontal) {
  const double gap = 10 * c.unit();
  const double h = c.text_height(kTickFont);
  for (size_t i = 1; i < pa.ticks.size(); ++i) {
    const double d = std::abs(pa.px(pa.ticks[i].value) - pa.px(pa.ticks[i - 1].value));
    const double need = horizontal ? (c.text_width(pa.ticks[i].label, kTickFont) +
                                      c.text_width(pa.ticks[i - 1].label, kTickFont)) / 2 + gap
                                   : h * 1.4;
    if (d < need) return false;
  }
  return true;
}

// Chooses the densest tick set (from a pixel-based upper bound down) whose labels fit.
void place_ticks(const Canvas& c, PlacedAxis& pa, bool horizontal) {
  const double length = std::abs(pa.p1 - pa.p0);
  const double per_tick = (horizontal ? 70 : 55) * c.unit();
  int max_ticks = std::clamp(static_cast<int>(length / per_tick), 2, 12);
  if (!pa.axis.categories.empty()) max_ticks = static_cast<int>(pa.axis.categories.size());
  for (; max_ticks >= 1; --max_ticks) {
    pa.ticks = ticks_for(pa.axis, max_ticks);
    if (ticks_fit(c, pa, horizontal)) return;
  }
}

double max_label_width(const Canvas& c, const std::vector<Tick>& ticks) {
  double w = 0;
  for (const Tick& t : ticks) w = std::max(w, c.text_width(t.label, kTickFont));
  return w;
}

}  // namespace

std::string format_tick(double v, double step) {
  if (std::abs(v) < step * 1e-9) v = 0;
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  if (std::abs(v) >= 1e6) return fmt::format("{:.3g}", v);
  const double frac = step * std::pow(10.0, decimals);  // 2.5 × 10^-k needs one more digit
  return fmt::format("{:.{}f}", v, decimals + (std::abs(frac - std::round(frac)) > 1e-9 ? 1 : 0));
}

std::vector<Tick> linear_ticks(double lo, double hi, int max_ticks, bool integer) {
  SPARSA_ASSERT(hi > lo && max_ticks >= 1);
  const double step = nice_step((hi - lo) / std::max(1, max_ticks), integer);
  std::vector<Tick> t;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) {
    const double v = k * step;
    t.push_back({v, format_tick(v, step)});
  }
  return t;
}

std::vector<Tick> log_ticks(double lo, double hi, int max_ticks) {
  SPARSA_ASSERT(lo > 0 && hi > lo && max_ticks >= 1);
  const int k0 = static_cast<int>(std::floor(std::log10(lo))), k1 = static_cast<int>(std::ceil(std::log10(hi)));
  // Mantissas per decade, densest first: the densest set with at most max_ticks ticks wins.
  static const std::vector<std::vector<int>> kSets = {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 5}, {1, 2, 5}, {1}};
  const auto ticks_with = [&](const std::vector<int>& mantissas, int every) {
    std::vector<Tick> t;
    for (int k = k0; k <= k1; ++k) {
      if ((k - k0) % every != 0) continue;
      const double p = std::pow(10.0, k);
      for (const int m : mantissas) {
        const double v = m * p;
        if (v < lo * (1 - 1e-9) || v > hi * (1 + 1e-9)) continue;
        t.push_back({v, m == 1 ? format_power_of_ten(k) : format_tick(v, std::min(1.0, p))});
      }
    }
    return t;
  };
  for (const auto& set : kSets) {
    std::vector<Tick> t = ticks_with(set, 1);
    if (t.size() < 2) return linear_ticks(lo, hi, max_ticks);  // less than the sparsest useful set
    if (static_cast<int>(t.size()) <= max_ticks) return t;
  }
  const int decades = k1 - k0 + 1;
  return ticks_with({1}, (decades + max_ticks - 1) / max_ticks);
}

double PlacedAxis::px(double v) const {
  double lo = axis.lo, hi = axis.hi;
  if (!axis.categories.empty()) {
    lo = -0.5;
    hi = static_cast<double>(axis.categories.size()) - 0.5;
  }
  double t;
  if (axis.log)
    t = (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
  else
    t = (v - lo) / (hi - lo);
  return p0 + t * (p1 - p0);
}

Plot layout_plot(const Canvas& c, double top, Axis x, Axis y, double right_extra) {
  const double u = c.unit();
  const double tick_h = c.text_height(kTickFont), label_h = c.text_height(kLabelFont);
  Plot p;
  p.x.axis = std::move(x);
  p.y.axis = std::move(y);
  const double bottom = (kTickLen + kGap) * u + tick_h + (p.x.axis.label.empty() ? 0 : 2 * kGap * u + label_h) + kPad * u;
  p.area.y = top;
  p.area.h = c.height() - top - bottom;
  p.y.p0 = p.y.axis.flipped ? p.area.y : p.area.bottom();
  p.y.p1 = p.y.axis.flipped ? p.area.bottom() : p.area.y;
  place_ticks(c, p.y, /*horizontal=*/false);
  const double left = kPad * u + (p.y.axis.label.empty() ? 0 : label_h + 2 * kGap * u) +
                      max_label_width(c, p.y.ticks) + (kGap + kTickLen) * u;
  p.area.x = left;
  p.area.w = c.width() - left - kPad * u - right_extra;
  if (p.area.w < 60 * u || p.area.h < 60 * u)
    bad_input("figure {}x{} px is too small for its labels and legend", c.width(), c.height());
  p.x.p0 = p.x.axis.flipped ? p.area.right() : p.area.x;
  p.x.p1 = p.x.axis.flipped ? p.area.x : p.area.right();
  place_ticks(c, p.x, /*horizontal=*/true);
  return p;
}

void snap_to_pixels(Plot& p) {
  const double x0 = std::ceil(p.area.x), y0 = std::ceil(p.area.y);
  const double x1 = std::floor(p.area.right()), y1 = std::floor(p.area.bottom());
  p.area = {x0, y0, x1 - x0, y1 - y0};
  p.x.p0 = p.x.axis.flipped ? x1 : x0;
  p.x.p1 = p.x.axis.flipped ? x0 : x1;
  p.y.p0 = p.y.axis.flipped ? y0 : y1;
  p.y.p1 = p.y.axis.flipped ? y1 : y0;
}

void draw_grid(const Canvas& c, const Plot& p) {
  const bool categorical_x = !p.x.axis.categories.empty();  // bars sit between no lines
  for (const Tick& t : categorical_x ? std::vector<Tick>{} : p.x.ticks) {
    const double x = std::round(p.x.px(t.value)) + 0.5;
    c.line(x, p.area.y, x, p.area.bottom(), 1, kGridGrey);
  }
  for (const Tick& t : p.y.ticks) {
    const double y = std::round(p.y.px(t.value)) + 0.5;
    c.line(p.area.x, y, p.area.right(), y, 1, kGridGrey);
  }
}

void draw_axes(const Canvas& c, const Plot& p) {
  const double u = c.unit();
  c.stroke_rect(p.area, 1.2, kAxisGrey);
  const double tick_h = c.text_height(kTickFont);
  for (const Tick& t : p.x.ticks) {
    const double x = p.x.px(t.value);
    c.line(x, p.area.bottom(), x, p.area.bottom() + kTickLen * u, 1.2, kAxisGrey);
    c.text(t.label, x, p.area.bottom() + (kTickLen + kGap) * u, kTickFont, HAlign::kCenter, VAlign::kTop);
  }
  for (const Tick& t : p.y.ticks) {
    const double y = p.y.px(t.value);
    c.line(p.area.x - kTickLen * u, y, p.area.x, y, 1.2, kAxisGrey);
    const double tx = p.area.x - (kTickLen + kGap) * u;
    c.text(t.label, tx, y, kTickFont, HAlign::kRight, VAlign::kMiddle);
  }
  if (!p.x.axis.label.empty())
    c.text(p.x.axis.label, p.area.x + p.area.w / 2, p.area.bottom() + (kTickLen + 3 * kGap) * u + tick_h, kLabelFont,
           HAlign::kCenter, VAlign::kTop);
  if (!p.y.axis.label.empty())
    c.text(p.y.axis.label, kPad * u, p.area.y + p.area.h / 2, kLabelFont, HAlign::kCenter, VAlign::kTop, kBlack,
           std::numbers::pi / 2);
}

ClipToPlot::ClipToPlot(const Canvas& c, const Plot& p) : cr_(c.cr()) {
  cairo_save(cr_);
  cairo_rectangle(cr_, p.area.x, p.area.y, p.area.w, p.area.h);
  cairo_clip(cr_);
}

ClipToPlot::~ClipToPlot() { cairo_restore(cr_); }

}  // namespace sparsa::viz
