// Axes for the figures: scales (linear, log, categorical), nice ticks, the layout of a plot
// area inside a frame, and the legend / colour bar drawn beside it. Internal to src/viz.
#pragma once

#include <string>
#include <vector>

#include "viz/canvas.h"

namespace sparsa::viz {

struct Tick {
  double value = 0;
  std::string label;
};

// "Nice" ticks (steps of 1, 2, 2.5 or 5 × 10^k) inside [lo, hi], at most max_ticks of them;
// integer = only whole numbers.
std::vector<Tick> linear_ticks(double lo, double hi, int max_ticks, bool integer = false);
// Ticks at m × 10^k inside [lo, hi] (lo > 0), m from the densest of {1…9}, {1, 2, 3, 5},
// {1, 2, 5}, {1} that gives at most max_ticks (then every n-th decade); linear ticks when
// that leaves fewer than two.
std::vector<Tick> log_ticks(double lo, double hi, int max_ticks);
// v printed with as many decimals as a tick spacing of `step` needs.
std::string format_tick(double v, double step);

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  bool flipped = false;                 // lo at the top (y) / right (x)
  bool integer = false;                 // ticks only at whole numbers
  std::vector<std::string> categories;  // non-empty: one slot per category at 0, 1, …; lo/hi are ignored
  std::string label;
};

// An axis placed on the canvas: value lo maps to pixel p0, hi to p1.
struct PlacedAxis {
  Axis axis;
  double p0 = 0, p1 = 1;
  std::vector<Tick> ticks;
  double px(double v) const;
};

struct Plot {
  Rect area;
  PlacedAxis x, y;
};

// Lays out a plot inside the canvas below a title band of height `top`: room on the left for
// the y tick labels and label, below for the x ones, and `right_extra` px on the right
// (legend, colour bar). Ticks are thinned until their labels do not overlap.
Plot layout_plot(const Canvas& c, double top, Axis x, Axis y, double right_extra = 0);

// Moves the plot area's edges to whole pixels (for rasters drawn pixel by pixel).
void snap_to_pixels(Plot& p);

// Light grid lines at the ticks (drawn before the data); none across a categorical x axis.
void draw_grid(const Canvas& c, const Plot& p);
// The frame around the plot area, tick marks, tick labels and axis labels (drawn after the data).
void draw_axes(const Canvas& c, const Plot& p);

// Clips drawing to the plot area until the returned guard dies.
class ClipToPlot {
 public:
  ClipToPlot(const Canvas& c, const Plot& p);
  ~ClipToPlot();
  ClipToPlot(const ClipToPlot&) = delete;
  ClipToPlot& operator=(const ClipToPlot&) = delete;

 private:
  cairo_t* cr_;
};

// ---- legend ----

enum class Glyph { kLine, kBox, kPoint, kRule };  // line with a point, filled box, point, dashed line

struct LegendEntry {
  std::string label;
  Rgb color;
  Glyph glyph = Glyph::kBox;
  int shape = 0;  // point shape (see draw_point) for kLine / kPoint
};

// Point shapes 0…5: circle, square, triangle, diamond, inverted triangle, cross (cycling).
void draw_point(const Canvas& c, int shape, double x, double y, double radius, Rgb color, double alpha = 1.0);

// The width of the legend column (including its left gap).
double legend_width(const Canvas& c, const std::vector<LegendEntry>& entries);
// Draws the legend with its top-left corner at (x, y) (x as the left edge of the column
// whose width legend_width returned).
void draw_legend(const Canvas& c, const std::vector<LegendEntry>& entries, double x, double y);

// ---- colour bar ----

// The width of a colour bar column for values in [lo, hi] with the given title.
double colorbar_width(const Canvas& c, double lo, double hi);
// A vertical colour bar in the column starting at x, spanning the plot's height, with
// ticks on its right and the rotated label at the far right.
void draw_colorbar(const Canvas& c, const ColorMap& map, double lo, double hi, const std::string& label, double x,
                   const Rect& plot);

}  // namespace sparsa::viz
