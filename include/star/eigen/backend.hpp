#pragma once
/// @file
/// @brief The Eigen CPU backend: `float` or `double` tensors in contiguous row-major Eigen
/// arrays, vectorised element-wise kernels, Eigen GEMM for matmul, OpenMP threads where the
/// work is large enough. Threads split outputs, never a sum, so element-wise ops, reductions
/// and layout ops give bit-identical results for any thread count; a large single matmul runs
/// on Eigen's threads, whose blocking (and so rounding) may depend on the thread count.

#include <Eigen/Core>

#include <algorithm>
#include <concepts>
#include <optional>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/nd_index.hpp"
#include "star/eigen/fused_allocation.hpp"
#include "star/eigen/fused_objective.hpp"
#include "star/eigen/parallel.hpp"
#include "star/eigen/permute.hpp"
#include "star/eigen/strided.hpp"
#include "star/eigen/tensor.hpp"

namespace star::eigen {

/// @brief A `star::complete_backend` on the CPU with Eigen.
/// @tparam Scalar  the storage and compute precision, `float` or `double`.
template <class Scalar>
requires std::same_as<Scalar, float> || std::same_as<Scalar, double>
class backend {
 public:
  using tensor = eigen::tensor<Scalar>;                         ///< row-major dense tensor
  using values_type = Eigen::Array<Scalar, Eigen::Dynamic, 1>;  ///< its storage

  /// @name Storage and the host round trip (star::tensor_backend)
  /// @{

  /// @brief The extents of `t`.
  shape shape_of(const tensor& t) const { return t.dims; }

  /// @brief A tensor from row-major host doubles (rounded to `Scalar`).
  tensor from_host(std::span<const double> values, const shape& s) const {
    require_count("from_host", values.size(), s);
    const Eigen::Map<const Eigen::ArrayXd> host(values.data(), to_index(values.size()));
    return {s, host.template cast<Scalar>()};
  }

  /// @brief The row-major values widened to `double`.
  std::vector<double> to_host(const tensor& t) const {
    std::vector<double> out(static_cast<std::size_t>(t.values.size()));
    Eigen::Map<Eigen::ArrayXd>(out.data(), t.values.size()) = t.values.template cast<double>();
    return out;
  }

  /// @brief A tensor of shape `s` filled with `value`.
  tensor full(const shape& s, double value) const {
    return {s, values_type::Constant(numel(s), static_cast<Scalar>(value))};
  }

  /// @brief A tensor from row-major values already in `Scalar` (one copy, no conversion).
  tensor from_values(std::span<const Scalar> values, const shape& s) const {
    require_count("from_values", values.size(), s);
    return {s, Eigen::Map<const values_type>(values.data(), to_index(values.size()))};
  }

  /// @brief A tensor that takes over `values` (row-major) without copying.
  tensor adopt_values(values_type&& values, const shape& s) const {
    require_count("adopt_values", static_cast<std::size_t>(values.size()), s);
    return {s, std::move(values)};
  }

  /// @brief The row-major values of `t` in `Scalar`, without conversion or copy.
  std::span<const Scalar> values_of(const tensor& t) const {
    return {t.values.data(), static_cast<std::size_t>(t.values.size())};
  }

  /// @}

  /// @name Element-wise operations, NumPy broadcasting (star::elementwise_backend)
  /// @{

  /// @brief The `star::elementwise_backend` operations, vectorised by Eigen.
  tensor add(const tensor& a, const tensor& b) const {
    return binary(a, b, "add", [](const auto& x, const auto& y) { return x + y; });
  }
  tensor sub(const tensor& a, const tensor& b) const {
    return binary(a, b, "sub", [](const auto& x, const auto& y) { return x - y; });
  }
  tensor mul(const tensor& a, const tensor& b) const {
    return binary(a, b, "mul", [](const auto& x, const auto& y) { return x * y; });
  }
  tensor div(const tensor& a, const tensor& b) const {
    return binary(a, b, "div", [](const auto& x, const auto& y) { return x / y; });
  }
  /// @brief NaN where either operand is NaN, as ATen (Eigen's own `min` leaves NaN undefined).
  tensor minimum(const tensor& a, const tensor& b) const {
    return binary(a, b, "minimum",
                  [](const auto& x, const auto& y) { return x.binaryExpr(y, nan_min_op{}); });
  }
  /// @brief NaN where either operand is NaN, as ATen.
  tensor maximum(const tensor& a, const tensor& b) const {
    return binary(a, b, "maximum",
                  [](const auto& x, const auto& y) { return x.binaryExpr(y, nan_max_op{}); });
  }
  tensor greater(const tensor& a, const tensor& b) const {
    return binary(a, b, "greater",
                  [](const auto& x, const auto& y) { return (x > y).template cast<Scalar>(); });
  }
  tensor add(const tensor& a, double c) const {
    return unary(a, [c = static_cast<Scalar>(c)](const auto& x) { return x + c; });
  }
  tensor mul(const tensor& a, double c) const {
    return unary(a, [c = static_cast<Scalar>(c)](const auto& x) { return x * c; });
  }
  /// @brief `exp(-inf) = 0` exactly (Eigen 3.4's vectorised `exp` caps its argument and gives
  /// a tiny positive number there, about 5.6e-309 in double).
  tensor exp(const tensor& a) const {
    return unary(a, [](const auto& x) {
      return (x == -std::numeric_limits<Scalar>::infinity()).select(Scalar{0}, x.exp());
    });
  }
  /// @brief Natural logarithm; `log(0) = -inf`.
  tensor log(const tensor& a) const {
    return unary(a, [](const auto& x) { return x.log(); });
  }
  tensor pow(const tensor& a, double c) const {
    if (c == 2.0) return unary(a, [](const auto& x) { return x.square(); });
    return unary(a, [c = static_cast<Scalar>(c)](const auto& x) { return x.pow(c); });
  }
  /// @brief `min(max(a, lo), hi)`, NaN where `a` is NaN; throws `value_error` when `lo > hi`.
  tensor clamp(const tensor& a, double lo, double hi) const {
    if (!(lo <= hi))
      throw value_error("clamp: lo = " + star::detail::printed(lo) + " must be <= hi = " +
                        star::detail::printed(hi));
    return unary(a, [lo = static_cast<Scalar>(lo), hi = static_cast<Scalar>(hi)](const auto& x) {
      using plain = typename std::decay_t<decltype(x)>::PlainObject;
      return x.binaryExpr(plain::Constant(x.size(), lo), nan_max_op{})
          .binaryExpr(plain::Constant(x.size(), hi), nan_min_op{});
    });
  }

  /// @}

  /// @name Reductions (star::reduction_backend)
  /// @{

  /// @brief The `star::reduction_backend` operations; threads split over output slices.
  /// `amax` of a slice holding a NaN is NaN, as ATen.
  tensor sum(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    return reduce(a, axes, keepdim, "sum", Scalar{0}, sum_kernel{});
  }
  tensor amax(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    return reduce(a, axes, keepdim, "amax", -std::numeric_limits<Scalar>::infinity(), max_kernel{});
  }

  /// @}

  /// @brief `[..., m, k] x [..., k, n] -> [..., m, n]` by Eigen GEMM, batch dims broadcast.
  tensor matmul(const tensor& a, const tensor& b) const {
    const shape out_shape = matmul_shape(a.dims, b.dims);
    const std::size_t rank = out_shape.size();
    const std::int64_t m = out_shape[rank - 2], n = out_shape[rank - 1], k = a.dims.back();
    const shape batch(out_shape.begin(), out_shape.end() - 2);
    const shape a_batch(a.dims.begin(), a.dims.end() - 2);
    const shape a_batch_strides = broadcast_strides(a_batch, batch);
    const shape b_batch_strides = broadcast_strides(shape(b.dims.begin(), b.dims.end() - 2), batch);
    const std::int64_t batches = numel(batch);
    tensor out{out_shape, values_type(numel(out_shape))};  // [..., m, n]
    if (out.values.size() == 0) return out;
    if (k == 0) {
      out.values.setZero();
      return out;
    }
    const bool b_shared = numel(shape(b.dims.begin(), b.dims.end() - 2)) == 1;
    if (b_shared && numel(a_batch) == batches) {  // one GEMM: [batches * m, k] x [k, n]
      gemm(a.values.data(), b.values.data(), out.values.data(), batches * m, k, n);
      return out;
    }
    // One batch per thread when products are small or batches plentiful; otherwise the
    // batches run in turn, each on Eigen's own threads.
    const bool by_batch = m * n * k < small_product_work || batches >= detail::available_threads();
    const auto multiply = [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t index = begin; index < end; ++index) {
        const shape at = unravel_index(index, batch);
        gemm(a.values.data() + offset_of(at, a_batch_strides) * m * k,
             b.values.data() + offset_of(at, b_batch_strides) * k * n,
             out.values.data() + index * m * n, m, k, n);
      }
    };
    detail::parallel_ranges(batches, by_batch ? batches * m * n * k : 0, multiply);
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
    return {out_shape,
            permuted_values(a.values, a.dims, normalize_axes(dims, a.dims.size(), "permute"))};
  }

  /// @brief Elements `[begin, end)` along `axis`.
  tensor slice(const tensor& a, std::int64_t axis, std::int64_t begin, std::int64_t end) const {
    const std::size_t ax = normalize_axis(axis, a.dims.size(), "slice");
    require_slice("slice", begin, end, a.dims[ax]);
    const std::int64_t inner = inner_extent(a.dims, ax);
    return gather_runs(a, ax, end - begin, 1, (end - begin) * inner,
                       [&](std::int64_t) { return begin * inner; });
  }

  /// @brief The entries `indices` (in order, repeats allowed) along `axis`.
  tensor index_select(const tensor& a, std::int64_t axis,
                      std::span<const std::int64_t> indices) const {
    const std::size_t ax = normalize_axis(axis, a.dims.size(), "index_select");
    require_indices("index_select", indices, a.dims[ax]);
    const std::int64_t inner = inner_extent(a.dims, ax);
    const auto count = static_cast<std::int64_t>(indices.size());
    return gather_runs(a, ax, count, count, inner, [&](std::int64_t run) {
      return indices[static_cast<std::size_t>(run)] * inner;
    });
  }

  /// @}

  /// @brief Fused `allocate` (`star::fused_allocation_backend`), one pass per row.
  std::optional<allocation_result<tensor>> fused_allocate(
      const tensor& relevance, const fused_allocation_request& request) const {
    return detail::fused_allocate(relevance, request);
  }

  /// @brief Fused `spatial_policy_objective` (`star::fused_policy_objective_backend`).
  std::optional<policy_objective_result<tensor>> fused_policy_objective(
      const policy_objective_inputs<tensor>& in, const policy_objective_options& options) const {
    return detail::fused_policy_objective(in, options);
  }

  /// @brief Fused `d loss / d ell` [R, N] (`star::fused_policy_gradient_backend`).
  std::optional<tensor> fused_policy_log_prob_gradient(
      const policy_objective_inputs<tensor>& in, const policy_objective_options& options) const {
    return detail::fused_policy_log_prob_gradient(in, options);
  }

 private:
  using matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  /// Vectorised element-wise min / max that return NaN when either operand is NaN.
  using nan_min_op = Eigen::internal::scalar_min_op<Scalar, Scalar, Eigen::PropagateNaN>;
  using nan_max_op = Eigen::internal::scalar_max_op<Scalar, Scalar, Eigen::PropagateNaN>;

  /// Products with fewer multiply-adds than this are too small for Eigen's own threads.
  static constexpr std::int64_t small_product_work = std::int64_t{1} << 18;

  struct sum_kernel {
    template <class Run>
    static Scalar whole(const Run& run) {
      return run.sum();
    }
    template <class Acc, class Run>
    static void fold(Acc&& acc, const Run& run) {
      acc += run;
    }
  };
  struct max_kernel {
    template <class Run>
    static Scalar whole(const Run& run) {
      return run.template maxCoeff<Eigen::PropagateNaN>();
    }
    template <class Acc, class Run>
    static void fold(Acc&& acc, const Run& run) {
      acc = acc.binaryExpr(run, nan_max_op{});
    }
  };

  static Eigen::Index to_index(std::size_t n) { return static_cast<Eigen::Index>(n); }

  static void require_count(std::string_view op, std::size_t count, const shape& s) {
    if (static_cast<std::int64_t>(count) != numel(s))
      throw shape_error(std::string(op) + ": " + std::to_string(count) + " values for shape " +
                        to_string(s));
  }

  static std::int64_t inner_extent(const shape& s, std::size_t axis) {
    return numel(shape(s.begin() + static_cast<std::ptrdiff_t>(axis) + 1, s.end()));
  }

  /// `c = a b` for row-major `a [rows, k]`, `b [k, n]`, `c [rows, n]`.
  static void gemm(const Scalar* a, const Scalar* b, Scalar* c, std::int64_t rows, std::int64_t k,
                   std::int64_t n) {
    Eigen::Map<matrix>(c, rows, n).noalias() =
        Eigen::Map<const matrix>(a, rows, k) * Eigen::Map<const matrix>(b, k, n);
  }

  template <class F>
  static tensor unary(const tensor& a, const F& f) {
    tensor out{a.dims, values_type(a.values.size())};  // a's shape
    const detail::strided_loop<1> loop{{a.values.size()}, {shape{1}}};
    detail::for_each_segment(loop, [&](std::int64_t o, const auto&, std::int64_t length) {
      out.values.segment(o, length) = f(a.values.segment(o, length));
    });
    return out;
  }

  /// Broadcast binary kernel: after collapsing, each operand's innermost stride is 1 (a run)
  /// or 0 (one value repeated), so every segment is one vectorised Eigen expression.
  template <class F>
  static tensor binary(const tensor& a, const tensor& b, std::string_view op, const F& f) {
    const shape out_shape = broadcast_shapes(a.dims, b.dims, op);
    tensor out{out_shape, values_type(numel(out_shape))};  // broadcast of a's and b's shapes
    if (out.values.size() == 0) return out;
    const auto loop = detail::collapse_loop<2>(
        out_shape, {broadcast_strides(a.dims, out_shape), broadcast_strides(b.dims, out_shape)});
    const bool a_runs = loop.strides[0].back() != 0, b_runs = loop.strides[1].back() != 0;
    detail::for_each_segment(loop, [&](std::int64_t o, const auto& in, std::int64_t length) {
      auto dst = out.values.segment(o, length);
      if (a_runs && b_runs)
        dst = f(a.values.segment(in[0], length), b.values.segment(in[1], length));
      else if (a_runs)
        dst = f(a.values.segment(in[0], length), values_type::Constant(length, b.values[in[1]]));
      else
        dst = f(values_type::Constant(length, a.values[in[0]]), b.values.segment(in[1], length));
    });
    return out;
  }

  /// Reduces `axes`: contiguous reduced axes are read in place as `[outer, reduced, inner]`;
  /// otherwise the kept axes are first permuted in front of the reduced ones.
  template <class Kernel>
  tensor reduce(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim,
                std::string_view op, Scalar init, Kernel kernel) const {
    const auto reduced_axes = normalize_axes(axes, a.dims.size(), op);
    const shape out_shape = reduced_shape(a.dims, reduced_axes, keepdim);
    if (a.values.size() == 0) return full(out_shape, static_cast<double>(init));
    // Group runs of neighbouring kept / reduced axes, ignoring extent-1 axes.
    shape extents;
    std::vector<bool> reduced;
    for (std::size_t d = 0; d < a.dims.size(); ++d) {
      if (a.dims[d] == 1) continue;
      const bool r = std::find(reduced_axes.begin(), reduced_axes.end(), d) != reduced_axes.end();
      if (!reduced.empty() && reduced.back() == r) {
        extents.back() *= a.dims[d];
      } else {
        extents.push_back(a.dims[d]);
        reduced.push_back(r);
      }
    }
    const auto reduced_groups = std::count(reduced.begin(), reduced.end(), true);
    if (reduced_groups == 0) return {out_shape, a.values};
    if (reduced_groups == 1) {
      const auto g = static_cast<std::size_t>(std::find(reduced.begin(), reduced.end(), true) -
                                              reduced.begin());
      const std::int64_t outer = numel(shape(extents.begin(), extents.begin() + g));
      const std::int64_t inner = numel(shape(extents.begin() + g + 1, extents.end()));
      return {out_shape, reduce_middle(a.values, outer, extents[g], inner, kernel)};
    }
    std::vector<std::size_t> kept_first;
    for (std::size_t g = 0; g < extents.size(); ++g)
      if (!reduced[g]) kept_first.push_back(g);
    std::int64_t kept = 1;
    for (const std::size_t g : kept_first) kept *= extents[g];
    for (std::size_t g = 0; g < extents.size(); ++g)
      if (reduced[g]) kept_first.push_back(g);
    const values_type gathered = permuted_values(a.values, extents, kept_first);
    return {out_shape, reduce_middle(gathered, kept, numel(extents) / kept, 1, kernel)};
  }

  /// Reduces the middle axis of `values` viewed as row-major `[outer, middle, inner]`;
  /// parallel over output elements only, so the summation order is fixed.
  template <class Kernel>
  static values_type reduce_middle(const values_type& values, std::int64_t outer,
                                   std::int64_t middle, std::int64_t inner, Kernel) {
    values_type out(outer * inner);
    if (inner == 1) {
      detail::parallel_ranges(outer, outer * middle, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t o = begin; o < end; ++o)
          out[o] = Kernel::whole(values.segment(o * middle, middle));
      });
      return out;
    }
    const detail::strided_loop<1> loop{{outer, inner}, {shape{middle * inner, 1}}};
    detail::for_each_segment(
        loop,
        [&](std::int64_t o, const auto& in, std::int64_t length) {
          auto acc = out.segment(o, length);
          acc = values.segment(in[0], length);
          for (std::int64_t r = 1; r < middle; ++r)
            Kernel::fold(acc, values.segment(in[0] + r * inner, length));
        },
        middle);
    return out;
  }

  /// The row-major `values` of shape `dims` with the axes reordered to `axes`.
  static values_type permuted_values(const values_type& values, const shape& dims,
                                     const std::vector<std::size_t>& axes) {
    values_type out(values.size());
    detail::permute_copy(values.data(), out.data(), dims, axes);
    return out;
  }

  /// Copies, for each slab above `axis`, `runs` contiguous runs of `run_length` values, run
  /// `r` starting `source_offset(r)` values into the slab; `axis` gets extent `out_extent`.
  template <class SourceOffset>
  static tensor gather_runs(const tensor& a, std::size_t axis, std::int64_t out_extent,
                            std::int64_t runs, std::int64_t run_length,
                            const SourceOffset& source_offset) {
    shape out_shape = a.dims;
    out_shape[axis] = out_extent;
    tensor out{out_shape, values_type(numel(out_shape))};  // a's shape, `axis` -> out_extent
    if (out.values.size() == 0) return out;
    const std::int64_t slabs = numel(shape(a.dims.begin(), a.dims.begin() + axis));
    const std::int64_t slab_size = a.dims[axis] * inner_extent(a.dims, axis);
    const Scalar* in = a.values.data();
    Scalar* target = out.values.data();
    const auto copy = [&](std::int64_t begin, std::int64_t end) {
      std::int64_t slab = begin / runs, run = begin % runs;
      for (std::int64_t unit = begin; unit < end; ++unit) {
        std::copy_n(in + slab * slab_size + source_offset(run), run_length,
                    target + unit * run_length);
        if (++run == runs) run = 0, ++slab;
      }
    };
    detail::parallel_ranges(slabs * runs, slabs * runs * run_length, copy);
    return out;
  }
};

static_assert(complete_backend<backend<float>>);
static_assert(complete_backend<backend<double>>);
static_assert(fused_allocation_backend<backend<float>>);
static_assert(fused_policy_objective_backend<backend<float>>);
static_assert(fused_policy_gradient_backend<backend<float>>);

}  // namespace star::eigen
