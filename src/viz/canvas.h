// Canvas: a thin layer over a cairo recording surface for the figures — shapes, anchored text,
// and the figure-wide scale unit. Internal to src/viz.
#pragma once

#include <cairo.h>

#include <memory>
#include <string>
#include <string_view>

#include "sparsa/viz.h"

namespace sparsa::viz {

struct Image::Surface {
  cairo_surface_t* surface = nullptr;  // a recording surface [width, height] px
  int width = 0, height = 0;
  Surface(cairo_surface_t* s, int w, int h) : surface(s), width(w), height(h) {}
  ~Surface() {
    cairo_surface_finish(surface);  // drops the snapshots rendering attached, which refer back to it
    cairo_surface_destroy(surface);
  }
  Surface(const Surface&) = delete;
  Surface& operator=(const Surface&) = delete;
};

inline constexpr Rgb kBlack{0, 0, 0};
inline constexpr Rgb kWhite{1, 1, 1};
inline constexpr Rgb kAxisGrey{0.25, 0.25, 0.25};
inline constexpr Rgb kGridGrey{0.88, 0.88, 0.88};
inline constexpr Rgb kMarkRed{0.86, 0.08, 0.08};

struct Rect {
  double x = 0, y = 0, w = 0, h = 0;
  double right() const { return x + w; }
  double bottom() const { return y + h; }
};

enum class HAlign { kLeft, kCenter, kRight };
enum class VAlign { kTop, kMiddle, kBaseline, kBottom };

// Font sizes in pixels at scale 1.
inline constexpr double kTitleFont = 22, kSubtitleFont = 14, kLabelFont = 16, kTickFont = 13, kLegendFont = 14, kCellFont = 12;

class Canvas {
 public:
  // A white canvas; validates the size (Error(kBadInput) outside [200, 8000] px).
  explicit Canvas(const Frame& frame);
  Canvas(const Canvas&) = delete;
  Canvas& operator=(const Canvas&) = delete;
  ~Canvas();

  cairo_t* cr() const { return cr_; }
  int width() const { return width_; }
  int height() const { return height_; }
  // Pixels per unit: sizes are given at scale 1 and multiplied by this.
  double unit() const { return unit_; }

  void set_color(Rgb c, double alpha = 1.0) const;
  void line(double x0, double y0, double x1, double y1, double width, Rgb c, bool dashed = false) const;
  void fill_rect(const Rect& r, Rgb c, double alpha = 1.0) const;
  void stroke_rect(const Rect& r, double width, Rgb c) const;

  // Text in the DejaVu Sans face of `size` (scale-1 pixels), anchored at (x, y), rotated by
  // `angle` radians about the anchor (counter-clockwise positive, as seen on screen).
  void text(std::string_view s, double x, double y, double size, HAlign h, VAlign v, Rgb c = kBlack,
            double angle = 0, bool bold = false) const;
  double text_width(std::string_view s, double size, bool bold = false) const;
  double text_height(double size) const;  // ascent + descent of the face

  // The figure title (and a smaller grey subtitle line when given) centred in the top band,
  // shrunk to fit the width; returns the band's height. draw = false only measures.
  double title(const std::string& s, const std::string& subtitle = "", bool draw = true) const;

  // Finishes drawing (Error(kRuntime) on a cairo failure) and hands over the surface.
  Image finish();

 private:
  void select_font(double size, bool bold) const;
  int width_ = 0, height_ = 0;
  double unit_ = 1;
  cairo_surface_t* surface_ = nullptr;
  cairo_t* cr_ = nullptr;
};

}  // namespace sparsa::viz
