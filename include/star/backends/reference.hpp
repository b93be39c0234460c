#pragma once
/// @file
/// @brief The reference backend: double precision, plain loops over multi-indices, no speed
/// goals. It is the oracle every other backend is tested against.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/nd_index.hpp"

namespace star {

/// @brief A dense row-major tensor of doubles.
struct reference_tensor {
  shape dims;                  ///< extents, outermost first
  std::vector<double> values;  ///< row-major, `numel(dims)` entries
};

/// @brief The oracle backend: every operation is the obvious loop over output elements.
struct reference_backend {
  using tensor = reference_tensor;  ///< dense row-major doubles

  /// @name Storage and the host round trip (star::tensor_backend in core/backend.hpp)
  /// @{

  /// @brief The `star::tensor_backend` operations; `from_host` checks the value count.
  shape shape_of(const tensor& t) const { return t.dims; }

  tensor from_host(std::span<const double> values, const shape& s) const {
    if (static_cast<std::int64_t>(values.size()) != numel(s))
      throw shape_error("from_host: " + std::to_string(values.size()) +
                        " values for shape " + to_string(s));
    return {s, std::vector<double>(values.begin(), values.end())};
  }

  std::vector<double> to_host(const tensor& t) const { return t.values; }

  tensor full(const shape& s, double value) const {
    return {s, std::vector<double>(static_cast<std::size_t>(numel(s)), value)};
  }
  /// @}

  /// @name Element-wise operations, NumPy broadcasting (star::elementwise_backend)
  /// @{

  /// @brief The `star::elementwise_backend` operations; `minimum` and `maximum` give NaN where
  /// either operand is NaN (as ATen); `clamp` throws `value_error` when `lo > hi`.
  tensor add(const tensor& a, const tensor& b) const {
    return binary(a, b, "add", [](double x, double y) { return x + y; });
  }
  tensor sub(const tensor& a, const tensor& b) const {
    return binary(a, b, "sub", [](double x, double y) { return x - y; });
  }
  tensor mul(const tensor& a, const tensor& b) const {
    return binary(a, b, "mul", [](double x, double y) { return x * y; });
  }
  tensor div(const tensor& a, const tensor& b) const {
    return binary(a, b, "div", [](double x, double y) { return x / y; });
  }
  tensor minimum(const tensor& a, const tensor& b) const {
    return binary(a, b, "minimum", detail::nan_propagating_min<double>);
  }
  tensor maximum(const tensor& a, const tensor& b) const {
    return binary(a, b, "maximum", detail::nan_propagating_max<double>);
  }
  tensor greater(const tensor& a, const tensor& b) const {
    return binary(a, b, "greater", [](double x, double y) { return x > y ? 1.0 : 0.0; });
  }
  tensor add(const tensor& a, double c) const {
    return unary(a, [c](double x) { return x + c; });
  }
  tensor mul(const tensor& a, double c) const {
    return unary(a, [c](double x) { return x * c; });
  }
  tensor exp(const tensor& a) const {
    return unary(a, [](double x) { return std::exp(x); });
  }
  tensor log(const tensor& a) const {
    return unary(a, [](double x) { return std::log(x); });
  }
  tensor pow(const tensor& a, double c) const {
    return unary(a, [c](double x) { return std::pow(x, c); });
  }
  tensor clamp(const tensor& a, double lo, double hi) const {
    if (!(lo <= hi))
      throw value_error("clamp: lo = " + detail::printed(lo) + " must be <= hi = " +
                        detail::printed(hi));
    return unary(a, [lo, hi](double x) { return std::clamp(x, lo, hi); });
  }
  /// @}

  /// @name Reductions over axes (star::reduction_backend)
  /// @{

  /// @brief The `star::reduction_backend` operations, accumulated in double; `amax` of a
  /// slice holding a NaN is NaN (as ATen).
  tensor sum(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    return reduce(a, axes, keepdim, "sum", 0.0, [](double acc, double x) { return acc + x; });
  }
  tensor amax(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    return reduce(a, axes, keepdim, "amax", -std::numeric_limits<double>::infinity(),
                  detail::nan_propagating_max<double>);
  }
  /// @}

  /// @brief Batched `[..., m, k] x [..., k, n] -> [..., m, n]` (star::matmul_backend),
  /// batch dimensions broadcast.
  tensor matmul(const tensor& a, const tensor& b) const {
    const shape out_shape = matmul_shape(a.dims, b.dims);
    const std::size_t rank = out_shape.size();
    const std::int64_t m = out_shape[rank - 2], n = out_shape[rank - 1], k = a.dims.back();
    const shape batch(out_shape.begin(), out_shape.end() - 2);
    const shape a_batch_strides =
        broadcast_strides(shape(a.dims.begin(), a.dims.end() - 2), batch);
    const shape b_batch_strides =
        broadcast_strides(shape(b.dims.begin(), b.dims.end() - 2), batch);
    tensor out{out_shape, std::vector<double>(static_cast<std::size_t>(numel(out_shape)))};
    for (std::int64_t batch_index = 0; batch_index < numel(batch); ++batch_index) {
      const shape index = unravel_index(batch_index, batch);
      const std::int64_t a_base = offset_of(index, a_batch_strides) * m * k;
      const std::int64_t b_base = offset_of(index, b_batch_strides) * k * n;
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double acc = 0.0;
          for (std::int64_t p = 0; p < k; ++p)
            acc += a.values[a_base + i * k + p] * b.values[b_base + p * n + j];
          out.values[batch_index * m * n + i * n + j] = acc;
        }
    }
    return out;
  }

  /// @name Views and gathers (star::layout_backend)
  /// @{

  /// @brief The `star::layout_backend` operations; each returns a copy.
  tensor reshape(const tensor& a, const shape& s) const {
    require_same_numel("reshape", a.dims, s);
    return {s, a.values};
  }

  tensor permute(const tensor& a, const std::vector<std::int64_t>& dims) const {
    const shape out_shape = permuted_shape(a.dims, dims, "permute");
    const auto axes = normalize_axes(dims, a.dims.size(), "permute");
    const shape in_strides = row_major_strides(a.dims);
    shape gather_strides(axes.size());
    for (std::size_t i = 0; i < axes.size(); ++i) gather_strides[i] = in_strides[axes[i]];
    tensor out{out_shape, std::vector<double>(a.values.size())};
    for (std::int64_t i = 0; i < numel(out_shape); ++i)
      out.values[i] = a.values[offset_of(unravel_index(i, out_shape), gather_strides)];
    return out;
  }

  tensor slice(const tensor& a, std::int64_t axis, std::int64_t begin, std::int64_t end) const {
    const std::size_t ax = normalize_axis(axis, a.dims.size(), "slice");
    require_slice("slice", begin, end, a.dims[ax]);
    std::vector<std::int64_t> indices;
    for (std::int64_t i = begin; i < end; ++i) indices.push_back(i);
    return index_select(a, axis, indices);
  }

  tensor index_select(const tensor& a, std::int64_t axis,
                      std::span<const std::int64_t> indices) const {
    const std::size_t ax = normalize_axis(axis, a.dims.size(), "index_select");
    require_indices("index_select", indices, a.dims[ax]);
    shape out_shape = a.dims;
    out_shape[ax] = static_cast<std::int64_t>(indices.size());
    const shape in_strides = row_major_strides(a.dims);
    tensor out{out_shape, std::vector<double>(static_cast<std::size_t>(numel(out_shape)))};
    for (std::int64_t i = 0; i < numel(out_shape); ++i) {
      shape index = unravel_index(i, out_shape);
      index[ax] = indices[static_cast<std::size_t>(index[ax])];
      out.values[i] = a.values[offset_of(index, in_strides)];
    }
    return out;
  }
  /// @}

 private:
  template <class F>
  static tensor unary(const tensor& a, F f) {
    tensor out{a.dims, a.values};
    for (double& x : out.values) x = f(x);
    return out;
  }

  template <class F>
  static tensor binary(const tensor& a, const tensor& b, std::string_view op, F f) {
    const shape out_shape = broadcast_shapes(a.dims, b.dims, op);
    const shape a_strides = broadcast_strides(a.dims, out_shape);
    const shape b_strides = broadcast_strides(b.dims, out_shape);
    tensor out{out_shape, std::vector<double>(static_cast<std::size_t>(numel(out_shape)))};
    for (std::int64_t i = 0; i < numel(out_shape); ++i) {
      const shape index = unravel_index(i, out_shape);
      out.values[i] =
          f(a.values[offset_of(index, a_strides)], b.values[offset_of(index, b_strides)]);
    }
    return out;
  }

  template <class F>
  static tensor reduce(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim,
                       std::string_view op, double init, F f) {
    const auto reduced_axes = normalize_axes(axes, a.dims.size(), op);
    const shape kept_shape = reduced_shape(a.dims, reduced_axes, true);
    const shape kept_strides = row_major_strides(kept_shape);
    std::vector<double> acc(static_cast<std::size_t>(numel(kept_shape)), init);
    for (std::int64_t i = 0; i < numel(a.dims); ++i) {
      shape index = unravel_index(i, a.dims);
      for (const std::size_t ax : reduced_axes) index[ax] = 0;
      double& slot = acc[static_cast<std::size_t>(offset_of(index, kept_strides))];
      slot = f(slot, a.values[i]);
    }
    return {reduced_shape(a.dims, reduced_axes, keepdim), std::move(acc)};
  }
};

static_assert(complete_backend<reference_backend>);

}  // namespace star
