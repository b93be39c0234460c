#pragma once
/// @file
/// @brief The spatially resolved advantage `Â(n) = A * gamma * W(n)` (docs/math.md §4).

#include <cmath>
#include <cstdint>
#include <string>

#include "star/core/value_checks.hpp"
#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"

namespace star {
namespace allocation_detail {

/// @brief Checks `weights` [B, ...] and `advantages` [B] (finite), and returns B.
template <elementwise_backend B>
  requires reduction_backend<B>
std::int64_t require_advantage_inputs(const B& be, const typename B::tensor& advantages,
                                      const typename B::tensor& weights) {
  const shape weight_dims = be.shape_of(weights);
  if (weight_dims.size() < 2)
    throw shape_error("weights: expected rank >= 2 [B, N] or [B, h*P, w*P], got shape " +
                      to_string(weight_dims));
  require_shape("advantages", be.shape_of(advantages), {weight_dims[0]}, "[B]");
  detail::require_finite(be, advantages, "advantages");
  return weight_dims[0];
}

/// @brief `row_scale[b] * weights[b, ...]`.
template <elementwise_backend B>
  requires layout_backend<B>
typename B::tensor scale_rows(const B& be, const typename B::tensor& row_scale,
                              const typename B::tensor& weights) {
  shape column(be.shape_of(weights).size(), 1);
  column[0] = be.shape_of(weights)[0];
  return be.mul(be.reshape(row_scale, column), weights);  // weights' shape
}

}  // namespace allocation_detail

/// @brief `Â[b, ...] = A[b] * gamma[b] * W[b, ...]`, the advantage re-allocated over space:
/// with mean-one `W`, `sum_n Â[b, n] = N A[b] gamma[b]`.
/// @param be         the backend
/// @param advantages [B] group-relative advantages `A`, finite
/// @param gamma      [B] temporal weights of each row's step, finite and >= 0
/// @param weights    [B, N] allocation weights `W` (or upsampled, [B, h*P, w*P])
/// @return           weights' shape
template <elementwise_backend B>
  requires reduction_backend<B> && layout_backend<B>
typename B::tensor spatial_advantage(const B& be, const typename B::tensor& advantages,
                                     const typename B::tensor& gamma,
                                     const typename B::tensor& weights) {
  const std::int64_t rows = allocation_detail::require_advantage_inputs(be, advantages, weights);
  require_shape("gamma", be.shape_of(gamma), {rows}, "[B]");
  detail::require_finite_nonnegative(be, gamma, "gamma");
  return allocation_detail::scale_rows(be, be.mul(advantages, gamma), weights);  // weights' shape
}

/// @brief `Â[b, ...] = A[b] * gamma * W[b, ...]` with one `gamma` for every row.
/// @param be         the backend
/// @param advantages [B] group-relative advantages `A`, finite
/// @param gamma      the step's temporal weight, finite and >= 0
/// @param weights    [B, N] allocation weights `W` (or upsampled, [B, h*P, w*P])
/// @return           weights' shape
template <elementwise_backend B>
  requires reduction_backend<B> && layout_backend<B>
typename B::tensor spatial_advantage(const B& be, const typename B::tensor& advantages,
                                     double gamma, const typename B::tensor& weights) {
  allocation_detail::require_advantage_inputs(be, advantages, weights);
  if (!(std::isfinite(gamma) && gamma >= 0.0))
    throw value_error("gamma: expected a finite value >= 0, got " + std::to_string(gamma));
  return allocation_detail::scale_rows(be, be.mul(advantages, gamma), weights);  // weights' shape
}

}  // namespace star
