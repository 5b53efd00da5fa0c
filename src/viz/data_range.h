// Checks of figure input data and the axis ranges derived from it. Internal to src/viz.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "viz/axes.h"

namespace sparsa::viz {

// Error(kBadInput) "<figure>: <what> …" when v is empty or holds NaN / infinity, or (when
// log) a value ≤ 0.
void check_values(const std::vector<double>& v, std::string_view figure, std::string_view what, bool log = false);

// An axis over [lo, hi] widened by `pad` of its length on each side (in log space for a log
// axis); a single value gets a range around it.
Axis padded_axis(double lo, double hi, bool log, std::string label, double pad = 0.05);

// The axis of counts/values ≥ 0 drawn as bars from the bottom: [0, max + 6 %], or for log,
// from half the smallest positive value to twice the largest. Error(kBadInput) when log and
// no value is positive.
Axis count_axis(const std::vector<std::vector<double>>& values, bool log, std::string label, std::string_view figure);

}  // namespace sparsa::viz
