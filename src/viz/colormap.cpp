// Colour maps and the categorical palette, computed in the OKLab colour space (Björn
// Ottosson's published matrices), where equal steps look like equal colour differences.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "sparsa/error.h"
#include "sparsa/viz.h"

namespace sparsa::viz {
namespace {

constexpr int kTableSize = 256;

struct Lab {
  double L = 0, a = 0, b = 0;
};

double srgb_to_linear(double c) { return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4); }
double linear_to_srgb(double c) {
  c = std::clamp(c, 0.0, 1.0);
  return c <= 0.0031308 ? 12.92 * c : 1.055 * std::pow(c, 1 / 2.4) - 0.055;
}

Lab to_oklab(Rgb c) {
  const double r = srgb_to_linear(c.r), g = srgb_to_linear(c.g), b = srgb_to_linear(c.b);
  const double l = std::cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b);
  const double m = std::cbrt(0.2119034982 * r + 0.6806675902 * g + 0.1073969566 * b);
  const double s = std::cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b);
  return {0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s,
          1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s,
          0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s};
}

Rgb from_oklab(Lab c) {
  const double l = std::pow(c.L + 0.3963377774 * c.a + 0.2158037573 * c.b, 3);
  const double m = std::pow(c.L - 0.1055613458 * c.a - 0.0638541728 * c.b, 3);
  const double s = std::pow(c.L - 0.0894841775 * c.a - 1.2914855480 * c.b, 3);
  return {linear_to_srgb(4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s),
          linear_to_srgb(-1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s),
          linear_to_srgb(-0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s)};
}

// A colour of lightness L, chroma C and hue `deg` degrees (OKLCh), clipped into sRGB.
Rgb from_oklch(double L, double C, double deg) {
  const double h = deg * std::numbers::pi / 180;
  return from_oklab({L, C * std::cos(h), C * std::sin(h)});
}

}  // namespace

ColorMap::ColorMap(const std::vector<Rgb>& stops) {
  SPARSA_ASSERT(stops.size() >= 2);
  std::vector<Lab> lab;
  for (const Rgb& c : stops) lab.push_back(to_oklab(c));
  const double segments = static_cast<double>(stops.size() - 1);
  table_.resize(kTableSize);
  for (int i = 0; i < kTableSize; ++i) {
    const double pos = i * segments / (kTableSize - 1);
    const size_t k = std::min(static_cast<size_t>(pos), stops.size() - 2);
    const double f = pos - static_cast<double>(k);
    const Lab& p = lab[k];
    const Lab& q = lab[k + 1];
    table_[i] = from_oklab({p.L + f * (q.L - p.L), p.a + f * (q.a - p.a), p.b + f * (q.b - p.b)});
  }
}

Rgb ColorMap::at(double t) const {
  if (!(t >= 0)) t = 0;  // also maps NaN to the low end
  t = std::min(t, 1.0);
  return table_[static_cast<size_t>(std::lround(t * (kTableSize - 1)))];
}

// The stops below are chosen by lightness: each is lighter (or darker, for density) than the
// one before, so the maps stay readable in greyscale and for colour-blind readers.
ColorMap ColorMap::sequential() {
  return ColorMap({from_oklch(0.28, 0.13, 305), from_oklch(0.45, 0.10, 265), from_oklch(0.60, 0.10, 200),
                   from_oklch(0.75, 0.15, 145), from_oklch(0.92, 0.18, 105)});
}

ColorMap ColorMap::density() {
  return ColorMap({from_oklch(0.98, 0.02, 105), from_oklch(0.85, 0.12, 130), from_oklch(0.65, 0.11, 180),
                   from_oklch(0.45, 0.10, 260), from_oklch(0.25, 0.12, 305)});
}

ColorMap ColorMap::diverging() {
  return ColorMap({from_oklch(0.42, 0.14, 260), from_oklch(0.70, 0.09, 250), from_oklch(0.97, 0.005, 90),
                   from_oklch(0.70, 0.11, 35), from_oklch(0.45, 0.16, 28)});
}

Rgb categorical_color(int i) {
  SPARSA_ASSERT(i >= 0);
  constexpr int kHues = 12;
  const int slot = i % (2 * kHues);
  // Hue steps of 150° (coprime with 360/30) put neighbouring ids far apart on the wheel.
  const double hue = 250 + (slot % kHues) * 150 % 360;
  return slot < kHues ? from_oklch(0.58, 0.15, hue) : from_oklch(0.76, 0.12, hue + 15);
}

}  // namespace sparsa::viz
