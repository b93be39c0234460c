#pragma once
// A deliberately unusual third-party backend that proves star's algorithms rely on the
// backend concepts only: `long double` cells in column-major order (first axis fastest) held in
// a std::deque, a tensor type with no default constructor that only the backend can build,
// and a stateful backend whose copies share a counter of the operations they executed.
// Every operation is a plain loop over multi-indices.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/nd_index.hpp"

namespace star::test {

class odd_backend;

/// A tensor of the odd backend: column-major `long double` cells; only odd_backend makes one.
class odd_tensor {
 private:
  friend class odd_backend;
  odd_tensor(shape dims, std::deque<long double> cells)
      : dims_(std::move(dims)), cells_(std::move(cells)) {}

  shape dims_;                     // extents, outermost first
  std::deque<long double> cells_;  // column-major: offset = sum index[d] * prod(dims[<d])
};

/// The odd backend. Copies share one operation counter, read with `operations()`.
class odd_backend {
 public:
  using tensor = odd_tensor;

  /// The number of operations this backend and its copies have executed.
  std::int64_t operations() const { return executed_->load(); }

  shape shape_of(const tensor& t) const { return t.dims_; }

  tensor from_host(std::span<const double> values, const shape& s) const {
    count();
    if (static_cast<std::int64_t>(values.size()) != numel(s))
      throw shape_error("from_host: " + std::to_string(values.size()) + " values for shape " +
                        to_string(s));
    tensor out = blank(s);
    for_each_index(s, [&](const shape& index, std::int64_t row_major) {
      out.cells_[cell(index, s)] = values[static_cast<std::size_t>(row_major)];
    });
    return out;
  }

  std::vector<double> to_host(const tensor& t) const {
    count();
    std::vector<double> out(static_cast<std::size_t>(numel(t.dims_)));
    for_each_index(t.dims_, [&](const shape& index, std::int64_t row_major) {
      out[static_cast<std::size_t>(row_major)] =
          static_cast<double>(t.cells_[cell(index, t.dims_)]);
    });
    return out;
  }

  tensor full(const shape& s, double value) const {
    count();
    return {s, std::deque<long double>(static_cast<std::size_t>(numel(s)), value)};
  }

  tensor add(const tensor& a, const tensor& b) const {
    return binary(a, b, "add", [](long double x, long double y) { return x + y; });
  }
  tensor sub(const tensor& a, const tensor& b) const {
    return binary(a, b, "sub", [](long double x, long double y) { return x - y; });
  }
  tensor mul(const tensor& a, const tensor& b) const {
    return binary(a, b, "mul", [](long double x, long double y) { return x * y; });
  }
  tensor div(const tensor& a, const tensor& b) const {
    return binary(a, b, "div", [](long double x, long double y) { return x / y; });
  }
  tensor minimum(const tensor& a, const tensor& b) const {
    return binary(a, b, "minimum", star::detail::nan_propagating_min<long double>);
  }
  tensor maximum(const tensor& a, const tensor& b) const {
    return binary(a, b, "maximum", star::detail::nan_propagating_max<long double>);
  }
  tensor greater(const tensor& a, const tensor& b) const {
    return binary(a, b, "greater",
                  [](long double x, long double y) { return x > y ? 1.0L : 0.0L; });
  }
  tensor add(const tensor& a, double c) const {
    return unary(a, [c](long double x) { return x + c; });
  }
  tensor mul(const tensor& a, double c) const {
    return unary(a, [c](long double x) { return x * c; });
  }
  tensor exp(const tensor& a) const {
    return unary(a, [](long double x) { return std::exp(x); });
  }
  tensor log(const tensor& a) const {
    return unary(a, [](long double x) { return std::log(x); });
  }
  tensor pow(const tensor& a, double c) const {
    return unary(a, [c](long double x) { return std::pow(x, static_cast<long double>(c)); });
  }
  tensor clamp(const tensor& a, double lo, double hi) const {
    if (!(lo <= hi))
      throw value_error("clamp: lo " + std::to_string(lo) + " is not <= hi " + std::to_string(hi));
    return unary(a, [lo, hi](long double x) {
      return std::clamp(x, static_cast<long double>(lo), static_cast<long double>(hi));
    });
  }

  tensor sum(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    return reduce(a, axes, keepdim, "sum", 0.0L,
                  [](long double acc, long double x) { return acc + x; });
  }
  tensor amax(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    return reduce(a, axes, keepdim, "amax", -std::numeric_limits<long double>::infinity(),
                  star::detail::nan_propagating_max<long double>);
  }

  tensor matmul(const tensor& a, const tensor& b) const {
    count();
    const shape out_shape = matmul_shape(a.dims_, b.dims_);
    const std::size_t rank = out_shape.size();
    const std::int64_t k = a.dims_.back();
    tensor out = blank(out_shape);
    const std::int64_t a_step = cell_stride(a.dims_, a.dims_.size() - 1);  // along k
    const std::int64_t b_step = cell_stride(b.dims_, b.dims_.size() - 2);  // along k
    for_each_index(out_shape, [&](shape index, std::int64_t) {
      const std::size_t target = cell(index, out_shape);
      const std::int64_t j = index[rank - 1];
      index[rank - 1] = 0;  // now the cell of a[..., i, 0]
      auto a_cell = static_cast<std::int64_t>(broadcast_cell(index, a.dims_));
      index[rank - 1] = j;
      index[rank - 2] = 0;  // now the cell of b[..., 0, j]
      auto b_cell = static_cast<std::int64_t>(broadcast_cell(index, b.dims_));
      long double acc = 0.0L;
      for (std::int64_t p = 0; p < k; ++p, a_cell += a_step, b_cell += b_step)
        acc +=
            a.cells_[static_cast<std::size_t>(a_cell)] * b.cells_[static_cast<std::size_t>(b_cell)];
      out.cells_[target] = acc;
    });
    return out;
  }

  tensor reshape(const tensor& a, const shape& s) const {
    count();
    require_same_numel("reshape", a.dims_, s);
    tensor out = blank(s);
    for_each_index(s, [&](const shape& index, std::int64_t row_major) {
      out.cells_[cell(index, s)] = a.cells_[cell(unravel_index(row_major, a.dims_), a.dims_)];
    });
    return out;
  }

  tensor permute(const tensor& a, const std::vector<std::int64_t>& dims) const {
    count();
    const shape out_shape = permuted_shape(a.dims_, dims, "permute");
    const auto axes = normalize_axes(dims, a.dims_.size(), "permute");
    tensor out = blank(out_shape);
    shape source(a.dims_.size());
    for_each_index(out_shape, [&](const shape& index, std::int64_t) {
      for (std::size_t i = 0; i < axes.size(); ++i) source[axes[i]] = index[i];
      out.cells_[cell(index, out_shape)] = a.cells_[cell(source, a.dims_)];
    });
    return out;
  }

  tensor slice(const tensor& a, std::int64_t axis, std::int64_t begin, std::int64_t end) const {
    const std::size_t ax = normalize_axis(axis, a.dims_.size(), "slice");
    require_slice("slice", begin, end, a.dims_[ax]);
    return gather(a, ax, end - begin, [begin](std::int64_t i) { return begin + i; });
  }

  tensor index_select(const tensor& a, std::int64_t axis,
                      std::span<const std::int64_t> indices) const {
    const std::size_t ax = normalize_axis(axis, a.dims_.size(), "index_select");
    require_indices("index_select", indices, a.dims_[ax]);
    return gather(a, ax, static_cast<std::int64_t>(indices.size()),
                  [indices](std::int64_t i) { return indices[static_cast<std::size_t>(i)]; });
  }

 private:
  std::shared_ptr<std::atomic<std::int64_t>> executed_ =
      std::make_shared<std::atomic<std::int64_t>>(0);

  void count() const { ++*executed_; }

  static tensor blank(const shape& s) {
    return {s, std::deque<long double>(static_cast<std::size_t>(numel(s)), 0.0L)};
  }

  /// The column-major cell of `index` in a tensor of shape `s`.
  static std::size_t cell(const shape& index, const shape& s) {
    std::int64_t offset = 0, stride = 1;
    for (std::size_t d = 0; d < s.size(); ++d) {
      offset += index[d] * stride;
      stride *= s[d];
    }
    return static_cast<std::size_t>(offset);
  }

  /// The distance between neighbouring cells along `axis` (of a tensor's own rank).
  static std::int64_t cell_stride(const shape& s, std::size_t axis) {
    return numel(shape(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(axis)));
  }

  /// The cell of an operand of shape `s` read at the (right-aligned, broadcast) `index`.
  static std::size_t broadcast_cell(const shape& index, const shape& s) {
    shape own(s.size());
    const std::size_t lead = index.size() - s.size();
    for (std::size_t d = 0; d < s.size(); ++d) own[d] = s[d] == 1 ? 0 : index[lead + d];
    return cell(own, s);
  }

  /// Calls `f(index, row_major_position)` for every multi-index of `s` in row-major order.
  template <class F>
  static void for_each_index(const shape& s, F f) {
    for (std::int64_t i = 0; i < numel(s); ++i) f(unravel_index(i, s), i);
  }

  template <class F>
  tensor unary(const tensor& a, F f) const {
    count();
    tensor out = a;
    for (long double& x : out.cells_) x = f(x);
    return out;
  }

  template <class F>
  tensor binary(const tensor& a, const tensor& b, std::string_view op, F f) const {
    count();
    const shape out_shape = broadcast_shapes(a.dims_, b.dims_, op);
    tensor out = blank(out_shape);
    for_each_index(out_shape, [&](const shape& index, std::int64_t) {
      out.cells_[cell(index, out_shape)] =
          f(a.cells_[broadcast_cell(index, a.dims_)], b.cells_[broadcast_cell(index, b.dims_)]);
    });
    return out;
  }

  template <class F>
  tensor reduce(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim,
                std::string_view op, long double init, F f) const {
    count();
    const auto reduced_axes = normalize_axes(axes, a.dims_.size(), op);
    const shape kept = reduced_shape(a.dims_, reduced_axes, true);
    // Dropping extent-1 axes keeps every column-major offset, so `kept` cells serve both.
    tensor out{reduced_shape(a.dims_, reduced_axes, keepdim),
               std::deque<long double>(static_cast<std::size_t>(numel(kept)), init)};
    for_each_index(a.dims_, [&](shape index, std::int64_t) {
      const long double x = a.cells_[cell(index, a.dims_)];
      for (const std::size_t ax : reduced_axes) index[ax] = 0;
      long double& slot = out.cells_[cell(index, kept)];
      slot = f(slot, x);
    });
    return out;
  }

  /// Entries `source(0..count-1)` along `axis`.
  template <class Source>
  tensor gather(const tensor& a, std::size_t axis, std::int64_t count_along, Source source) const {
    count();
    shape out_shape = a.dims_;
    out_shape[axis] = count_along;
    tensor out = blank(out_shape);
    for_each_index(out_shape, [&](shape index, std::int64_t) {
      const std::size_t target = cell(index, out_shape);
      index[axis] = source(index[axis]);
      out.cells_[target] = a.cells_[cell(index, a.dims_)];
    });
    return out;
  }
};

static_assert(complete_backend<odd_backend>);
static_assert(!std::is_default_constructible_v<odd_tensor>);

}  // namespace star::test
