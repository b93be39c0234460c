#pragma once
/// @file
/// @brief Zero-copy conversion between `at::Tensor` and `star::strided_view`: the views the
/// fused kernels (host and CUDA) read and write. A view of a CUDA tensor points to device
/// memory; neither direction copies or owns anything.

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "star/core/strided_view.hpp"
#include "star/torch/device_match.hpp"

namespace star::libtorch {

/// @brief The extents of `t` as a star `shape` (e.g. for `require_shape`).
/// @param t  [any] a defined tensor
inline shape shape_of(const at::Tensor& t) { return shape(t.sizes().begin(), t.sizes().end()); }

/// @brief The ATen dtype of element type `T` (cv-qualifiers ignored): `float`, `double`,
/// `at::Half`, `at::BFloat16`, `std::int64_t`, `std::int32_t`.
template <class T>
constexpr at::ScalarType scalar_type_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, float>) return at::kFloat;
  else if constexpr (std::is_same_v<U, double>) return at::kDouble;
  else if constexpr (std::is_same_v<U, at::Half>) return at::kHalf;
  else if constexpr (std::is_same_v<U, at::BFloat16>) return at::kBFloat16;
  else if constexpr (std::is_same_v<U, std::int64_t>) return at::kLong;
  else if constexpr (std::is_same_v<U, std::int32_t>) return at::kInt;
  else static_assert(std::is_same_v<U, float>, "no ATen dtype for this element type");
}

/// @brief What `view_of` requires of a tensor's strides.
enum class stride_requirement {
  any,               ///< any non-negative strides (ATen has no others)
  contiguous,        ///< row-major contiguous
  unit_inner_stride, ///< the last dimension has stride 1 (or extent 1): rows are contiguous
};

/// @brief A `strided_view<T, Rank>` of `t`'s memory, without a copy.
/// Throws, naming `arg`: `value_error` for an undefined tensor, one that is not dense
/// (sparse) or carries a lazy negation bit, a dtype other than `scalar_type_of<T>()`, a device
/// other than `expected_device` (when given), or strides that break `strides`; `shape_error`
/// for a rank other than `Rank` (printing the shape).
/// The view aliases `t`: it is valid while `t`'s storage lives, and writing through it
/// bypasses autograd (use it on tensors that do not require grad, or inside a custom
/// autograd function).
/// @param t                the tensor, any device
/// @param arg              its name in error messages
/// @param expected_device  the device `t` must be on; unset: any
/// @param strides          the stride layout the consumer needs
template <class T, std::size_t Rank>
strided_view<T, Rank> view_of(const at::Tensor& t, std::string_view arg,
                              std::optional<at::Device> expected_device = std::nullopt,
                              stride_requirement strides = stride_requirement::any) {
  const std::string name(arg);
  if (!t.defined()) throw value_error(name + ": the tensor is undefined");
  if (t.layout() != at::kStrided)
    throw value_error(name + ": expected a dense strided tensor, got layout " +
                      c10::str(t.layout()) + " (call .to_dense())");
  if (t.is_neg())  // the view would read the stored values, not their negation
    throw value_error(name + ": the tensor carries a lazy negation (call .resolve_neg())");
  if (t.scalar_type() != scalar_type_of<T>())
    throw value_error(name + ": expected dtype " + c10::toString(scalar_type_of<T>()) +
                      ", got " + c10::toString(t.scalar_type()));
  const shape dims = shape_of(t);
  if (dims.size() != Rank)
    throw shape_error(name + ": expected rank " + std::to_string(Rank) + ", got shape " +
                      to_string(dims));
  if (expected_device && !device_matches(t.device(), *expected_device))
    throw value_error(name + ": expected a tensor on " + expected_device->str() +
                      ", got one on " + t.device().str());
  strided_view<T, Rank> view{static_cast<T*>(const_cast<void*>(t.data_ptr())), {}, {}};
  for (std::size_t d = 0; d < Rank; ++d) {
    view.extents[d] = dims[d];
    view.strides[d] = t.stride(static_cast<std::int64_t>(d));
  }
  if (strides == stride_requirement::contiguous && !view.is_contiguous())
    throw value_error(name + ": expected a contiguous tensor, got shape " + to_string(dims) +
                      " with strides " +
                      to_string(shape(view.strides.begin(), view.strides.end())) +
                      " (call .contiguous())");
  if (strides == stride_requirement::unit_inner_stride && Rank > 0 &&
      view.extents[Rank - 1] != 1 && view.strides[Rank - 1] != 1)
    throw value_error(name + ": expected stride 1 in the last dimension, got shape " +
                      to_string(dims) + " with strides " +
                      to_string(shape(view.strides.begin(), view.strides.end())));
  return view;
}

/// @brief An `at::Tensor` over a view's memory (`at::from_blob` with its extents and
/// strides), without a copy and without ownership: the caller keeps the memory alive while
/// the tensor (or any tensor sharing its storage) is in use.
/// @param view    the memory, extents and strides
/// @param device  where `view.data` lives (`at::kCPU`, or the CUDA device that owns it)
template <class T, std::size_t Rank>
at::Tensor from_view(const strided_view<T, Rank>& view, at::Device device = at::kCPU) {
  const shape extents(view.extents.begin(), view.extents.end());
  const shape strides(view.strides.begin(), view.strides.end());
  return at::from_blob(const_cast<std::remove_cv_t<T>*>(view.data), extents, strides,
                       at::TensorOptions().dtype(scalar_type_of<T>()).device(device));  // extents
}

}  // namespace star::libtorch
