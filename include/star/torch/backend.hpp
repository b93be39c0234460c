#pragma once
/// @file
/// @brief The LibTorch backend `star::libtorch::backend`: every star operator on `at::Tensor`,
/// on the CPU or a CUDA device, built from ATen's composite operators so that autograd
/// differentiates the star algorithms (e.g. `spatial_policy_objective`) without an analytic
/// backward.
///
/// Precision: tensors are computed in one *compute dtype*, `float32` (default) or `float64`.
/// Inputs of lower precision (`float16`, `bfloat16`, e.g. attention `q`, `k` from a model run
/// in mixed precision) are accepted through `backend::to_compute_dtype`, which converts them
/// (differentiably) so that every sum, exp and log-sum-exp accumulates in float32. Measured
/// against the double reference on the *unrounded* inputs (tests/torch), results of float16
/// inputs stay within 5e-3 relative error and of bfloat16 inputs within 4e-2 — the rounding
/// of the inputs themselves, not of the computation: on the same rounded values the float32
/// tolerance of 2e-5 holds.
///
/// Errors: the shape checks of core/shape.hpp run before ATen, so a bad shape is a
/// `star::shape_error` with the same message as on the other backends; an operand of an
/// arithmetic operation, reduction or matmul that is not in the compute dtype is a
/// `star::value_error` naming the op; anything ATen still rejects (a tensor on another
/// device) becomes a `star::error` naming the op.

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/nd_index.hpp"
#include "star/core/shape.hpp"
#include "star/torch/device_match.hpp"
#include "star/torch/error_guard.hpp"
#include "star/torch/tensor_views.hpp"

namespace star::libtorch {

/// @brief A `star::complete_backend` over `at::Tensor` on one device in one compute dtype.
class backend {
 public:
  using tensor = at::Tensor;  ///< any shape, on `device()`, in `dtype()`

  /// @brief The CPU in float32.
  backend() = default;

  /// @brief A backend on `device` computing in `dtype` (`at::kFloat` or `at::kDouble`);
  /// throws `option_error` for any other dtype.
  explicit backend(at::Device device, at::ScalarType dtype = at::kFloat)
      : device_(device), dtype_(dtype) {
    if (dtype != at::kFloat && dtype != at::kDouble)
      throw option_error(std::string("libtorch::backend: the compute dtype must be float32 or "
                                     "float64, got ") +
                         c10::toString(dtype));
  }

  /// @brief Where this backend's tensors live.
  at::Device device() const { return device_; }
  /// @brief The dtype every tensor of this backend is computed in.
  at::ScalarType dtype() const { return dtype_; }
  /// @brief `at::TensorOptions` for a new tensor of this backend.
  at::TensorOptions options() const { return at::TensorOptions().device(device_).dtype(dtype_); }

  /// @brief Throws `value_error` naming `arg` unless `t` is a defined floating tensor on
  /// `device()` (in any floating dtype): the checks of `to_compute_dtype`, without converting.
  /// @param t    any shape
  /// @param arg  the argument's name for error messages, e.g. `"q"`
  void require_input(const at::Tensor& t, std::string_view arg) const {
    if (!t.defined()) throw value_error(std::string(arg) + ": the tensor is undefined");
    if (!at::isFloatingType(t.scalar_type()))
      throw value_error(std::string(arg) + ": expected a floating dtype, got " +
                        c10::toString(t.scalar_type()));
    if (!device_matches(t.device(), device_))
      throw value_error(std::string(arg) + ": expected a tensor on " + device_.str() +
                        ", got one on " + t.device().str());
  }

  /// @brief A caller's tensor ready for star: checks it (`require_input`) and returns it
  /// converted to `dtype()` with a differentiable `.to()` (the same tensor when it already
  /// is). This is how float16 and bfloat16 inputs enter: star then accumulates in the compute
  /// dtype.
  /// @param t    any shape, floating dtype
  /// @param arg  the argument's name for error messages, e.g. `"q"`
  tensor to_compute_dtype(const at::Tensor& t, std::string_view arg) const {
    require_input(t, arg);
    return guarded(arg, [&] { return t.to(dtype_); });  // t's shape
  }

  /// @name Storage and the host round trip (star::tensor_backend)
  /// @{

  /// @brief The `star::tensor_backend` operations. `from_host` copies onto `device()` in
  /// `dtype()`; `to_host` copies to the CPU as double (row-major, whatever the strides).
  shape shape_of(const tensor& t) const { return libtorch::shape_of(t); }

  tensor from_host(std::span<const double> values, const shape& s) const {
    if (static_cast<std::int64_t>(values.size()) != numel(s))
      throw shape_error("from_host: " + std::to_string(values.size()) + " values for shape " +
                        to_string(s));
    return guarded("from_host", [&] {
      const auto host = at::from_blob(const_cast<double*>(values.data()), s,
                                      at::TensorOptions().dtype(at::kDouble));  // s
      return host.to(options(), /*non_blocking=*/false, /*copy=*/true);       // s
    });
  }

  std::vector<double> to_host(const tensor& t) const {
    return guarded("to_host", [&] {
      const auto host = t.detach().to(at::kCPU, at::kDouble).contiguous();  // t's shape
      const double* data = host.data_ptr<double>();
      return std::vector<double>(data, data + host.numel());
    });
  }

  tensor full(const shape& s, double value) const {
    return guarded("full", [&] { return at::full(s, value, options()); });  // s
  }
  /// @}

  /// @name Element-wise operations with NumPy broadcasting (star::elementwise_backend)
  /// @{

  /// @brief The `star::elementwise_backend` operations; each result has the broadcast shape of
  /// its operands. `greater` is 0/1 in `dtype()` and carries no gradient; `clamp` throws
  /// `value_error` when `lo > hi`.
  tensor add(const tensor& a, const tensor& b) const {
    return binary(a, b, "add", [](const tensor& x, const tensor& y) { return at::add(x, y); });
  }
  tensor sub(const tensor& a, const tensor& b) const {
    return binary(a, b, "sub", [](const tensor& x, const tensor& y) { return at::sub(x, y); });
  }
  tensor mul(const tensor& a, const tensor& b) const {
    return binary(a, b, "mul", [](const tensor& x, const tensor& y) { return at::mul(x, y); });
  }
  tensor div(const tensor& a, const tensor& b) const {
    return binary(a, b, "div", [](const tensor& x, const tensor& y) { return at::div(x, y); });
  }
  tensor minimum(const tensor& a, const tensor& b) const {
    return binary(a, b, "minimum",
                  [](const tensor& x, const tensor& y) { return at::minimum(x, y); });
  }
  tensor maximum(const tensor& a, const tensor& b) const {
    return binary(a, b, "maximum",
                  [](const tensor& x, const tensor& y) { return at::maximum(x, y); });
  }
  tensor greater(const tensor& a, const tensor& b) const {
    return binary(a, b, "greater",
                  [this](const tensor& x, const tensor& y) { return at::gt(x, y).to(dtype_); });
  }
  tensor add(const tensor& a, double c) const {
    return guarded("add", [&] { return at::add(computed(a, "add"), c); });  // a's shape
  }
  tensor mul(const tensor& a, double c) const {
    return guarded("mul", [&] { return at::mul(computed(a, "mul"), c); });  // a's shape
  }
  tensor exp(const tensor& a) const {
    return guarded("exp", [&] { return at::exp(computed(a, "exp")); });  // a's shape
  }
  tensor log(const tensor& a) const {
    return guarded("log", [&] { return at::log(computed(a, "log")); });  // a's shape
  }
  tensor pow(const tensor& a, double c) const {
    return guarded("pow", [&] { return at::pow(computed(a, "pow"), c); });  // a's shape
  }
  tensor clamp(const tensor& a, double lo, double hi) const {
    if (!(lo <= hi))
      throw value_error("clamp: lo = " + star::detail::printed(lo) + " must be <= hi = " +
                        star::detail::printed(hi));
    return guarded("clamp", [&] { return at::clamp(computed(a, "clamp"), lo, hi); });  // a's shape
  }
  /// @}

  /// @name Reductions (star::reduction_backend)
  /// @{

  /// @brief Sum and maximum over `axes` (negative axes count from the end; an empty list
  /// reduces nothing, unlike ATen's "all axes"). `amax` over an empty axis gives `-inf`.
  tensor sum(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    return reduce(a, axes, keepdim, "sum", [](const tensor& x, at::IntArrayRef dims, bool keep) {
      return at::sum(x, dims, keep);  // axes reduced
    });
  }
  tensor amax(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) const {
    const auto max_over = [this](const tensor& x, at::IntArrayRef dims, bool keep) {
      if (x.numel() == 0) {  // ATen rejects a max over nothing; star defines it as -inf
        const std::vector<std::size_t> reduced(dims.begin(), dims.end());
        return at::full(reduced_shape(shape_of(x), reduced, keep),
                        -std::numeric_limits<double>::infinity(), options());  // reduced shape
      }
      return at::amax(x, dims, keep);  // axes reduced
    };
    return reduce(a, axes, keepdim, "amax", max_over);
  }
  /// @}

  /// @brief `[..., m, k] x [..., k, n] -> [..., m, n]` (star::matmul_backend), batch
  /// dimensions broadcast.
  tensor matmul(const tensor& a, const tensor& b) const {
    matmul_shape(shape_of(a), shape_of(b));
    return guarded("matmul", [&] {
      return at::matmul(computed(a, "matmul"), computed(b, "matmul"));  // [..., m, n]
    });
  }

  /// @name Views and gathers (star::layout_backend)
  /// @{

  /// @brief The `star::layout_backend` operations; `reshape`, `permute` and `slice` return
  /// ATen views where ATen can, `index_select` gathers with an int64 index on `device()`
  /// (copied there without blocking the host).
  tensor reshape(const tensor& a, const shape& s) const {
    require_same_numel("reshape", shape_of(a), s);
    return guarded("reshape", [&] { return a.reshape(s); });  // s
  }

  tensor permute(const tensor& a, const std::vector<std::int64_t>& dims) const {
    permuted_shape(shape_of(a), dims, "permute");
    return guarded("permute", [&] { return a.permute(dims); });  // a's shape permuted
  }

  tensor slice(const tensor& a, std::int64_t axis, std::int64_t begin, std::int64_t end) const {
    const std::size_t ax = normalize_axis(axis, static_cast<std::size_t>(a.dim()), "slice");
    require_slice("slice", begin, end, a.size(static_cast<std::int64_t>(ax)));
    return guarded("slice", [&] {
      return a.slice(static_cast<std::int64_t>(ax), begin, end);  // a's shape, axis -> end - begin
    });
  }

  tensor index_select(const tensor& a, std::int64_t axis,
                      std::span<const std::int64_t> indices) const {
    const std::size_t ax = normalize_axis(axis, static_cast<std::size_t>(a.dim()), "index_select");
    require_indices("index_select", indices, a.size(static_cast<std::int64_t>(ax)));
    return guarded("index_select", [&] {
      const auto host = at::from_blob(const_cast<std::int64_t*>(indices.data()),
                                      {static_cast<std::int64_t>(indices.size())},
                                      at::TensorOptions().dtype(at::kLong));  // [S] the caller's
      if (device_.is_cpu())  // a copy of S integers: autograd may keep the index for backward
        return at::index_select(a, static_cast<std::int64_t>(ax), host.clone());  // axis -> S
      // On CUDA a copy from pageable host memory makes the host wait for the device (a sync
      // per gather, i.e. per observed block); a copy from pinned memory is only queued.
      // `pin_memory()` copies the indices into a block of ATen's pinned caching allocator,
      // which keeps the block until the copy queued on the current stream has completed, so
      // the caller's span may go away at once. Pinning needs CUDA: other devices copy plainly.
      const bool cuda = device_.is_cuda();
      const auto staged = cuda ? host.pin_memory() : host;                // [S]
      const auto index = staged.to(device_, /*non_blocking=*/cuda);      // [S]
      return at::index_select(a, static_cast<std::int64_t>(ax), index);  // axis -> S
    });
  }
  /// @}

 private:
  at::Device device_ = at::kCPU;
  at::ScalarType dtype_ = at::kFloat;

  /// `t`, once checked to be in `dtype()`: an input of lower precision would be summed and
  /// multiplied in that precision (float16 overflows past 65504), one of another dtype would
  /// give results in it.
  const tensor& computed(const tensor& t, std::string_view op) const {
    if (t.scalar_type() != dtype_)
      throw value_error(std::string(op) + ": expected a tensor in the backend's compute dtype " +
                        c10::toString(dtype_) + ", got " + c10::toString(t.scalar_type()) +
                        " (convert inputs with backend::to_compute_dtype)");
    return t;
  }

  template <class F>
  tensor binary(const tensor& a, const tensor& b, std::string_view op, const F& f) const {
    broadcast_shapes(libtorch::shape_of(a), libtorch::shape_of(b), op);
    return guarded(op, [&] { return f(computed(a, op), computed(b, op)); });  // broadcast shape
  }

  template <class F>
  tensor reduce(const tensor& a, const std::vector<std::int64_t>& axes, bool keepdim,
                std::string_view op, const F& f) const {
    const auto normalized = normalize_axes(axes, static_cast<std::size_t>(a.dim()), op);
    if (normalized.empty()) return computed(a, op);
    const std::vector<std::int64_t> dims(normalized.begin(), normalized.end());
    return guarded(op, [&] { return f(computed(a, op), dims, keepdim); });  // axes reduced
  }
};

static_assert(complete_backend<backend>);

}  // namespace star::libtorch
