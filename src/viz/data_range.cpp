#include "viz/data_range.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sparsa/error.h"

namespace sparsa::viz {

void check_values(const std::vector<double>& v, std::string_view figure, std::string_view what, bool log) {
  if (v.empty()) bad_input("{}: {} is empty", figure, what);
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) bad_input("{}: {}[{}] is {}, not a finite number", figure, what, i, v[i]);
    if (log && v[i] <= 0) bad_input("{}: {}[{}] is {}, but a log axis needs values > 0", figure, what, i, v[i]);
  }
}

Axis padded_axis(double lo, double hi, bool log, std::string label, double pad) {
  Axis a;
  a.log = log;
  a.label = std::move(label);
  if (log) {
    double l = std::log10(lo), h = std::log10(hi);
    if (h - l < 1e-12) {
      l -= 0.5;
      h += 0.5;
    }
    const double d = (h - l) * pad;
    a.lo = std::pow(10.0, l - d);
    a.hi = std::pow(10.0, h + d);
    return a;
  }
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(lo))) {
    const double half = lo == 0 ? 1 : std::abs(lo) * 0.5;
    lo -= half;
    hi += half;
  }
  const double d = (hi - lo) * pad;
  a.lo = lo - d;
  a.hi = hi + d;
  return a;
}

Axis count_axis(const std::vector<std::vector<double>>& values, bool log, std::string label, std::string_view figure) {
  double max_v = 0, min_pos = std::numeric_limits<double>::infinity();
  for (const auto& s : values)
    for (const double v : s) {
      max_v = std::max(max_v, v);
      if (v > 0) min_pos = std::min(min_pos, v);
    }
  Axis a;
  a.log = log;
  a.label = std::move(label);
  if (log) {
    if (!std::isfinite(min_pos)) bad_input("{}: no value is above 0, nothing to draw on a log axis", figure);
    a.lo = min_pos / 2;
    a.hi = max_v * 2;
  } else {
    a.lo = 0;
    a.hi = max_v > 0 ? max_v * 1.06 : 1;
  }
  return a;
}

}  // namespace sparsa::viz
