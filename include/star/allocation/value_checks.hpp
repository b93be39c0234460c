#pragma once
/// @file
/// @brief Value checks on backend tensors, each read back as one scalar (no full copy).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/ops.hpp"

namespace star::allocation_detail {

/// @brief The axes `0 .. rank-1` of `t`.
template <tensor_backend B>
std::vector<std::int64_t> all_axes(const B& be, const typename B::tensor& t) {
  std::vector<std::int64_t> axes(be.shape_of(t).size());
  for (std::size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<std::int64_t>(i);
  return axes;
}

/// @brief Throws `value_error` naming `arg` unless every entry of `t` is finite
/// (`sum(0 * t)` is NaN exactly when some entry is NaN or infinite).
template <elementwise_backend B>
  requires reduction_backend<B>
void require_finite(const B& be, const typename B::tensor& t, std::string_view arg) {
  const double probe = ops::item(be, be.sum(be.mul(t, 0.0), all_axes(be, t), false));
  if (probe != 0.0)
    throw value_error(std::string(arg) + ": contains NaN or Inf, expected finite values");
}

/// @brief Throws `value_error` naming `arg` unless every entry of `t` is finite and >= 0.
template <elementwise_backend B>
  requires reduction_backend<B>
void require_finite_nonnegative(const B& be, const typename B::tensor& t, std::string_view arg) {
  require_finite(be, t, arg);
  const double most_negative = ops::item(be, be.amax(ops::neg(be, t), all_axes(be, t), false));
  if (most_negative > 0.0)
    throw value_error(std::string(arg) + ": has an entry " + std::to_string(-most_negative) +
                      ", expected values >= 0");
}

}  // namespace star::allocation_detail
