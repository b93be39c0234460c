#pragma once
/// @file
/// @brief Host-side value checks shared by the attention entry points.

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "star/core/error.hpp"

namespace star::attention_detail {

/// @brief Throws `value_error` naming `arg` unless every value is finite.
inline void require_finite(std::string_view arg, std::span<const double> values) {
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw value_error(std::string(arg) + ": entry " + std::to_string(i) + " is " +
                        std::to_string(values[i]) + ", expected a finite value");
}

/// @brief Throws `value_error` naming `arg` unless every value is finite and >= 0.
inline void require_finite_nonnegative(std::string_view arg, std::span<const double> values) {
  require_finite(arg, values);
  for (std::size_t i = 0; i < values.size(); ++i)
    if (values[i] < 0.0)
      throw value_error(std::string(arg) + ": entry " + std::to_string(i) + " is " +
                        std::to_string(values[i]) + ", expected >= 0");
}

}  // namespace star::attention_detail
