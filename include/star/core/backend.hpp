#pragma once
/// @file
/// @brief The tensor-backend concepts every star algorithm is written against.
///
/// A backend is an object (it may carry state: a device, a dtype, a thread pool) with a
/// nested `tensor` type and member functions for a small set of tensor operations. Each
/// algorithm asks only for the capabilities it uses. Binary element-wise operations broadcast
/// like NumPy. Values cross the host boundary as `double`, whatever the backend stores.
///
/// Writing a backend: satisfy `star::tensor_backend` first, then the capability concepts
/// your algorithms need; `static_assert(star::complete_backend<my_backend>)` checks them all.

#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "star/core/shape.hpp"

namespace star {

namespace detail {

/// @brief `min(a, b)`, NaN when either is NaN: the `minimum` / `amax` semantics (torch's) for
/// backends that loop over scalars (`std::min` returns `a` or `b` by position for a NaN).
template <std::floating_point T>
constexpr T nan_propagating_min(T a, T b) {
  return a != a || b != b ? a + b : (b < a ? b : a);
}

/// @brief `max(a, b)`, NaN when either is NaN; see `nan_propagating_min`.
template <std::floating_point T>
constexpr T nan_propagating_max(T a, T b) {
  return a != a || b != b ? a + b : (a < b ? b : a);
}

}  // namespace detail

/// @brief Storage: a tensor type, its shape, and the host round trip.
template <class B>
concept tensor_backend = requires(const B& be, const typename B::tensor& t,
                                  std::span<const double> values, const shape& s, double c) {
  typename B::tensor;
  { be.shape_of(t) } -> std::convertible_to<shape>;
  /// `values` are row-major; `numel(s) == values.size()`.
  { be.from_host(values, s) } -> std::same_as<typename B::tensor>;
  { be.to_host(t) } -> std::same_as<std::vector<double>>;
  { be.full(s, c) } -> std::same_as<typename B::tensor>;
};

/// @brief Element-wise arithmetic with NumPy broadcasting, and the unary functions star uses.
template <class B>
concept elementwise_backend =
    tensor_backend<B> && requires(const B& be, const typename B::tensor& a,
                                  const typename B::tensor& b, double c) {
      { be.add(a, b) } -> std::same_as<typename B::tensor>;
      { be.sub(a, b) } -> std::same_as<typename B::tensor>;
      { be.mul(a, b) } -> std::same_as<typename B::tensor>;
      { be.div(a, b) } -> std::same_as<typename B::tensor>;
      /// NaN where either operand is NaN (as torch.minimum / torch.maximum).
      { be.minimum(a, b) } -> std::same_as<typename B::tensor>;
      { be.maximum(a, b) } -> std::same_as<typename B::tensor>;
      /// 1 where `a > b`, else 0 (not differentiable).
      { be.greater(a, b) } -> std::same_as<typename B::tensor>;
      { be.add(a, c) } -> std::same_as<typename B::tensor>;
      { be.mul(a, c) } -> std::same_as<typename B::tensor>;
      /// `exp(-inf) = 0` exactly.
      { be.exp(a) } -> std::same_as<typename B::tensor>;
      /// Natural logarithm; `log(0) = -inf`.
      { be.log(a) } -> std::same_as<typename B::tensor>;
      { be.pow(a, c) } -> std::same_as<typename B::tensor>;
      /// `min(max(a, lo), hi)`, NaN where `a` is NaN.
      { be.clamp(a, c, c) } -> std::same_as<typename B::tensor>;
    };

/// @brief Reductions over a list of axes (negative axes count from the end).
template <class B>
concept reduction_backend =
    tensor_backend<B> && requires(const B& be, const typename B::tensor& a,
                                  const std::vector<std::int64_t>& axes, bool keepdim) {
      { be.sum(a, axes, keepdim) } -> std::same_as<typename B::tensor>;
      /// NaN where the reduced slice holds a NaN (as torch.amax); -inf for an empty slice.
      { be.amax(a, axes, keepdim) } -> std::same_as<typename B::tensor>;
    };

/// @brief Batched matrix product over the last two dimensions, leading dimensions broadcast:
/// `[..., m, k] x [..., k, n] -> [..., m, n]`.
template <class B>
concept matmul_backend = tensor_backend<B> && requires(const B& be, const typename B::tensor& a) {
  { be.matmul(a, a) } -> std::same_as<typename B::tensor>;
};

/// @brief Views and gathers: reshape, permute, a slice and an index selection along one axis.
template <class B>
concept layout_backend =
    tensor_backend<B> && requires(const B& be, const typename B::tensor& a, const shape& s,
                                  const std::vector<std::int64_t>& dims, std::int64_t axis,
                                  std::span<const std::int64_t> indices) {
      { be.reshape(a, s) } -> std::same_as<typename B::tensor>;
      { be.permute(a, dims) } -> std::same_as<typename B::tensor>;
      { be.slice(a, axis, axis, axis) } -> std::same_as<typename B::tensor>;
      { be.index_select(a, axis, indices) } -> std::same_as<typename B::tensor>;
    };

/// @brief Every capability: what the full set of star operators needs.
template <class B>
concept complete_backend = elementwise_backend<B> && reduction_backend<B> &&
                           matmul_backend<B> && layout_backend<B>;

}  // namespace star
