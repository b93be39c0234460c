#pragma once
/// @file
/// @brief What both read-out kernels share: the chunk of selected columns one launch handles,
/// and when rows of `q` or `k` can be read with 16-byte loads.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "star/core/strided_view.hpp"

namespace star::cuda::readout_detail {

/// @brief Columns handled by one launch (their dot products live in registers).
inline constexpr int chunk_columns = 16;

/// @brief Elements of `T` in one 16-byte load.
template <class T>
inline constexpr int vector_width = 16 / static_cast<int>(sizeof(T));

/// @brief Up to `chunk_columns` selected columns, passed by value as a kernel parameter.
struct column_chunk {
  int count = 0;                            ///< columns used, <= chunk_columns
  int first = 0;                            ///< index in `S` of the first one
  std::int64_t position[chunk_columns]{};   ///< joint-sequence positions of the keys
  float weight[chunk_columns]{};            ///< `w_j`
};

/// @brief Whether every row of `x` ([B, H, T, D]) can be read in pieces of `vector_width<T>`
/// elements with 16-byte loads: `D`-contiguous rows, `D` a multiple of the width, and row
/// starts 16-byte aligned.
template <class T>
bool rows_load_as_vectors(const strided_view<const T, 4>& x) {
  constexpr std::int64_t width = vector_width<T>;
  return x.strides[3] == 1 && x.extents[3] % width == 0 && x.strides[0] % width == 0 &&
         x.strides[1] % width == 0 && x.strides[2] % width == 0 &&
         reinterpret_cast<std::uintptr_t>(x.data) % 16 == 0;
}

/// @brief Whether no stride of `x` is negative: the tensor-core read-out's offsets need it.
template <class T, std::size_t Rank>
bool strides_non_negative(const strided_view<T, Rank>& x) {
  return std::all_of(x.strides.begin(), x.strides.end(), [](std::int64_t s) { return s >= 0; });
}

}  // namespace star::cuda::readout_detail
