#pragma once
/// @file
/// @brief Composite tensor operations written once over the backend concepts: mean,
/// log-sum-exp, softmax, scalar helpers. Differentiable wherever the backend is.

#include <cstdint>
#include <limits>
#include <vector>

#include "star/core/backend.hpp"

namespace star::ops {

/// @brief The axes `0 .. rank-1` of `a`, for reductions over everything.
template <tensor_backend B>
std::vector<std::int64_t> all_axes(const B& be, const typename B::tensor& a) {
  std::vector<std::int64_t> axes(be.shape_of(a).size());
  for (std::size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<std::int64_t>(i);
  return axes;
}

/// @brief `-a`.
template <elementwise_backend B>
typename B::tensor neg(const B& be, const typename B::tensor& a) {
  return be.mul(a, -1.0);
}

/// @brief Mean over `axes`.
template <reduction_backend B>
  requires elementwise_backend<B>
typename B::tensor mean(const B& be, const typename B::tensor& a,
                        const std::vector<std::int64_t>& axes, bool keepdim = false) {
  const shape s = be.shape_of(a);
  std::int64_t count = 1;
  for (const std::size_t axis : normalize_axes(axes, s.size(), "mean")) count *= s[axis];
  return be.mul(be.sum(a, axes, keepdim), 1.0 / static_cast<double>(count));
}

/// @brief Mean over every axis, as a rank-0 tensor.
template <reduction_backend B>
  requires elementwise_backend<B>
typename B::tensor mean_all(const B& be, const typename B::tensor& a) {
  return mean(be, a, all_axes(be, a));  // []
}

/// @brief `log(sum(exp(a)))` over one axis, stabilised by the row maximum. As ATen: a row
/// whose maximum is -inf (all -inf) gives -inf, +inf gives +inf, a NaN entry gives NaN.
template <reduction_backend B>
  requires elementwise_backend<B>
typename B::tensor logsumexp(const B& be, const typename B::tensor& a, std::int64_t axis,
                             bool keepdim = false) {
  const auto row_max = be.amax(a, {axis}, true);  // a's shape with `axis` -> 1 ("row")
  // The shift is the row maximum where it is finite and 0 where it is +-inf (a row maximum of
  // -inf gave -inf - -inf = NaN). Without a select op: off = -inf where the maximum is finite,
  // else 0 (log(1 - [finite])), and min(max(row_max, off), -off) keeps or replaces it.
  const auto inf = be.full({}, std::numeric_limits<double>::infinity());  // []
  const auto above = be.greater(row_max, neg(be, inf));                  // row: 1, or 0 at -inf
  const auto finite = be.mul(above, be.greater(inf, row_max));           // row: 1 or 0
  const auto off = be.log(be.add(neg(be, finite), 1.0));                 // row: -inf or 0
  const auto shift = be.minimum(be.maximum(row_max, off), neg(be, off));  // row
  const auto shifted_sum = be.sum(be.exp(be.sub(a, shift)), {axis}, true);  // row
  auto lse = be.add(be.log(shifted_sum), shift);                            // row
  if (keepdim) return lse;
  shape s = be.shape_of(lse);
  s.erase(s.begin() + static_cast<std::ptrdiff_t>(normalize_axis(axis, s.size(), "logsumexp")));
  return be.reshape(lse, s);  // a's shape without `axis`
}

/// @brief Softmax over one axis.
template <reduction_backend B>
  requires elementwise_backend<B>
typename B::tensor softmax(const B& be, const typename B::tensor& a, std::int64_t axis) {
  return be.exp(be.sub(a, logsumexp(be, a, axis, true)));  // a's shape
}

/// @brief `a * a`.
template <elementwise_backend B>
typename B::tensor square(const B& be, const typename B::tensor& a) {
  return be.mul(a, a);
}

/// @brief A rank-0 tensor read back to the host.
template <tensor_backend B>
double item(const B& be, const typename B::tensor& a) {
  const auto values = be.to_host(a);
  if (values.size() != 1)
    throw shape_error("item: expected a tensor with one element, got shape " +
                      to_string(be.shape_of(a)));
  return values.front();
}

}  // namespace star::ops
