#pragma once
/// @file
/// @brief Value checks shared by the operators: finite and non-negative, on host spans (naming
/// the offending entry) and on backend tensors (each read back as one scalar, not copied).

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/ops.hpp"

namespace star::detail {

/// @brief Throws `value_error` naming `arg` and the entry unless every value is finite.
inline void require_finite(std::string_view arg, std::span<const double> values) {
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw value_error(std::string(arg) + ": entry " + std::to_string(i) + " is " +
                        std::to_string(values[i]) + ", expected a finite value");
}

/// @brief Throws `value_error` naming `arg` and the entry unless every value is finite, >= 0.
inline void require_finite_nonnegative(std::string_view arg, std::span<const double> values) {
  require_finite(arg, values);
  for (std::size_t i = 0; i < values.size(); ++i)
    if (values[i] < 0.0)
      throw value_error(std::string(arg) + ": entry " + std::to_string(i) + " is " +
                        std::to_string(values[i]) + ", expected >= 0");
}

/// @brief Throws `value_error` naming `arg` unless every entry of `t` is finite
/// (`sum(0 * t)` is NaN exactly when some entry is NaN or infinite).
template <elementwise_backend B>
  requires reduction_backend<B>
void require_finite(const B& be, const typename B::tensor& t, std::string_view arg) {
  const double probe = ops::item(be, be.sum(be.mul(t, 0.0), ops::all_axes(be, t), false));
  if (probe != 0.0)
    throw value_error(std::string(arg) + ": contains NaN or Inf, expected finite values");
}

/// @brief Throws `value_error` naming `arg` unless every entry of `t` is finite and >= 0.
template <elementwise_backend B>
  requires reduction_backend<B>
void require_finite_nonnegative(const B& be, const typename B::tensor& t, std::string_view arg) {
  require_finite(be, t, arg);
  const double most_negative = ops::item(be, be.amax(ops::neg(be, t), ops::all_axes(be, t), false));
  if (most_negative > 0.0)
    throw value_error(std::string(arg) + ": has an entry " + std::to_string(-most_negative) +
                      ", expected values >= 0");
}

}  // namespace star::detail
