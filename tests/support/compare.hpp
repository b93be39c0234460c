#pragma once
// Element-wise comparison of a backend's result against expected host values.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "star/core/shape.hpp"

namespace star::test {

/// Requires |got - want| <= tol * (1 + |want|) for every element, and equal sizes.
inline void require_close(const std::vector<double>& got, const std::vector<double>& want,
                          double tol, const std::string& what = "") {
  INFO(what);
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  std::size_t worst_index = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i]));
    if (!(err <= worst)) {  // also catches NaN
      worst = std::isnan(err) ? INFINITY : err;
      worst_index = i;
    }
  }
  INFO("worst relative error " << worst << " at index " << worst_index << " (got "
                               << (got.empty() ? 0.0 : got[worst_index]) << ", want "
                               << (want.empty() ? 0.0 : want[worst_index]) << ")");
  REQUIRE(worst <= tol);
}

}  // namespace star::test
