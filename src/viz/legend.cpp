// Point glyphs, legends and colour bars.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "viz/axes.h"

namespace sparsa::viz {
namespace {

constexpr double kSwatch = 26, kLegendGap = 14, kLegendPad = 8, kMaxLegendShare = 0.34;
constexpr double kBarGap = 18, kBarWidth = 18, kBarTick = 4;
constexpr int kBarTicks = 6;

double row_height(const Canvas& c) { return c.text_height(kLegendFont) * 1.45; }

// Shortens `s` with a trailing "…" until it is at most `max_w` px wide.
std::string fit_text(const Canvas& c, std::string s, double max_w) {
  if (c.text_width(s, kLegendFont) <= max_w) return s;
  while (!s.empty() && c.text_width(s + "…", kLegendFont) > max_w) {
    unsigned char last = 0;
    do {  // one whole UTF-8 character: its continuation bytes, then its first byte
      last = static_cast<unsigned char>(s.back());
      s.pop_back();
    } while (!s.empty() && (last & 0xC0) == 0x80);
  }
  return s + "…";
}

double max_text_width(const Canvas& c) { return c.width() * kMaxLegendShare - (kSwatch + 3 * kLegendPad) * c.unit(); }

}  // namespace

void draw_point(const Canvas& c, int shape, double x, double y, double r, Rgb color, double alpha) {
  cairo_t* cr = c.cr();
  cairo_new_path(cr);
  switch (shape % 6) {
    case 0:
      cairo_arc(cr, x, y, r, 0, 2 * std::numbers::pi);
      break;
    case 1:
      cairo_rectangle(cr, x - r * 0.88, y - r * 0.88, 1.76 * r, 1.76 * r);
      break;
    case 2:
    case 4: {
      const double s = shape % 6 == 2 ? 1 : -1;
      cairo_move_to(cr, x, y - s * 1.15 * r);
      cairo_line_to(cr, x + r * 1.1, y + s * 0.75 * r);
      cairo_line_to(cr, x - r * 1.1, y + s * 0.75 * r);
      cairo_close_path(cr);
      break;
    }
    case 3:
      cairo_move_to(cr, x, y - 1.25 * r);
      cairo_line_to(cr, x + 1.25 * r, y);
      cairo_line_to(cr, x, y + 1.25 * r);
      cairo_line_to(cr, x - 1.25 * r, y);
      cairo_close_path(cr);
      break;
    default: {
      const double w = 0.4 * r;
      cairo_rectangle(cr, x - 1.1 * r, y - w, 2.2 * r, 2 * w);
      cairo_rectangle(cr, x - w, y - 1.1 * r, 2 * w, 2.2 * r);
      break;
    }
  }
  c.set_color(color, alpha);
  cairo_fill(cr);
}

double legend_width(const Canvas& c, const std::vector<LegendEntry>& entries) {
  double w = 0;
  for (const LegendEntry& e : entries) w = std::max(w, c.text_width(e.label, kLegendFont));
  const double u = c.unit();
  return kLegendGap * u + 2 * kLegendPad * u + kSwatch * u + kLegendPad * u + std::min(w, max_text_width(c));
}

void draw_legend(const Canvas& c, const std::vector<LegendEntry>& entries, double x, double y) {
  if (entries.empty()) return;
  const double u = c.unit(), rh = row_height(c);
  const Rect box{x + kLegendGap * u, y, legend_width(c, entries) - kLegendGap * u,
                 rh * static_cast<double>(entries.size()) + 2 * kLegendPad * u};
  c.fill_rect(box, kWhite);
  c.stroke_rect(box, 1, kGridGrey);
  for (size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const double cy = box.y + kLegendPad * u + rh * (static_cast<double>(i) + 0.5);
    const double sx = box.x + kLegendPad * u;
    switch (e.glyph) {
      case Glyph::kLine:
        c.line(sx, cy, sx + kSwatch * u, cy, 2.2, e.color);
        draw_point(c, e.shape, sx + kSwatch * u / 2, cy, 4 * u, e.color);
        break;
      case Glyph::kBox:
        c.fill_rect({sx + 3 * u, cy - rh * 0.32, kSwatch * u - 6 * u, rh * 0.64}, e.color);
        c.stroke_rect({sx + 3 * u, cy - rh * 0.32, kSwatch * u - 6 * u, rh * 0.64}, 0.8, kAxisGrey);
        break;
      case Glyph::kRule:
        c.line(sx, cy, sx + kSwatch * u, cy, 2, e.color, /*dashed=*/true);
        break;
      case Glyph::kPoint:
        draw_point(c, e.shape, sx + kSwatch * u / 2, cy, 4.5 * u, e.color);
        break;
    }
    c.text(fit_text(c, e.label, max_text_width(c)), sx + (kSwatch + kLegendPad) * u, cy, kLegendFont, HAlign::kLeft,
           VAlign::kMiddle);
  }
}

double colorbar_width(const Canvas& c, double lo, double hi) {
  const double u = c.unit();
  double w = 0;
  for (const Tick& t : linear_ticks(lo, hi, kBarTicks)) w = std::max(w, c.text_width(t.label, kTickFont));
  return (kBarGap + kBarWidth + kBarTick + 4) * u + w + 10 * u + c.text_height(kLabelFont);
}

void draw_colorbar(const Canvas& c, const ColorMap& map, double lo, double hi, const std::string& label, double x,
                   const Rect& plot) {
  const double u = c.unit();
  const Rect bar{x + kBarGap * u, plot.y, kBarWidth * u, plot.h};
  const int steps = std::max(2, static_cast<int>(bar.h));
  for (int i = 0; i < steps; ++i) {  // top = hi
    const double t = 1.0 - (i + 0.5) / steps;
    c.fill_rect({bar.x, bar.y + bar.h * i / steps, bar.w, bar.h / steps + 1}, map.at(t));
  }
  c.stroke_rect(bar, 1, kAxisGrey);
  double label_x = bar.right();
  for (const Tick& t : linear_ticks(lo, hi, kBarTicks)) {
    const double y = bar.bottom() - (t.value - lo) / (hi - lo) * bar.h;
    c.line(bar.right(), y, bar.right() + kBarTick * u, y, 1, kAxisGrey);
    c.text(t.label, bar.right() + (kBarTick + 4) * u, y, kTickFont, HAlign::kLeft, VAlign::kMiddle);
    label_x = std::max(label_x, bar.right() + (kBarTick + 4) * u + c.text_width(t.label, kTickFont));
  }
  c.text(label, label_x + 8 * u, bar.y + bar.h / 2, kLabelFont, HAlign::kCenter, VAlign::kTop, kBlack,
         std::numbers::pi / 2);
}

}  // namespace sparsa::viz
