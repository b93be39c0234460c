#pragma once
/// @file
/// @brief A non-owning strided view of rank `Rank` over memory the caller owns: the currency
/// of the fused kernels (host and CUDA) and of zero-copy framework adapters.

#include <array>
#include <cstdint>
#include <string>

#include "star/core/error.hpp"
#include "star/core/shape.hpp"

#if defined(__CUDACC__)
/// @brief Marks functions callable from host and device code when compiled by nvcc.
#define STAR_HOST_DEVICE __host__ __device__
#else
/// @brief Marks functions callable from host and device code when compiled by nvcc.
#define STAR_HOST_DEVICE
#endif

namespace star {

/// @brief `Rank` extents and strides (in elements) over `data`; element `(i0, i1, ...)` is
/// `data[i0 * strides[0] + i1 * strides[1] + ...]`.
template <class T, std::size_t Rank>
struct strided_view {
  T* data = nullptr;                          ///< first element
  std::array<std::int64_t, Rank> extents{};   ///< size of each dimension, outermost first
  std::array<std::int64_t, Rank> strides{};   ///< element stride of each dimension

  /// @brief The element at the given multi-index (no bounds check).
  template <class... Index>
  STAR_HOST_DEVICE T& operator()(Index... index) const {
    static_assert(sizeof...(Index) == Rank, "one index per dimension");
    const std::int64_t indices[] = {static_cast<std::int64_t>(index)...};
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < Rank; ++d) offset += indices[d] * strides[d];
    return data[offset];
  }

  /// @brief Number of elements.
  STAR_HOST_DEVICE std::int64_t size() const {
    std::int64_t total = 1;
    for (std::size_t d = 0; d < Rank; ++d) total *= extents[d];
    return total;
  }

  /// @brief Whether the view is row-major contiguous (an empty view always is).
  STAR_HOST_DEVICE bool is_contiguous() const {
    if (size() == 0) return true;
    std::int64_t expected = 1;
    for (std::size_t d = Rank; d-- > 0;) {
      if (extents[d] != 1 && strides[d] != expected) return false;
      expected *= extents[d];
    }
    return true;
  }

  /// @brief The extents as a `star::shape`, for error messages.
  shape dims() const { return shape(extents.begin(), extents.end()); }
};

/// @brief A row-major contiguous view of `extents` over `data`.
template <class T, std::size_t Rank>
strided_view<T, Rank> contiguous_view(T* data, const std::array<std::int64_t, Rank>& extents) {
  strided_view<T, Rank> view{data, extents, {}};
  std::int64_t stride = 1;
  for (std::size_t d = Rank; d-- > 0;) {
    view.strides[d] = stride;
    stride *= extents[d];
  }
  return view;
}

/// @brief Throws `shape_error` naming `arg` unless `view` has the expected extents.
template <class T, std::size_t Rank>
void require_view_shape(std::string_view arg, const strided_view<T, Rank>& view,
                        const shape& expected, std::string_view layout) {
  require_shape(arg, view.dims(), expected, layout);
}

}  // namespace star
