#pragma once
/// @file
/// @brief The strided copy behind the Eigen backend's permute: contiguous runs where the
/// permutation keeps the innermost axis, cache-sized tiles where it moves it.

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "star/core/nd_index.hpp"
#include "star/eigen/parallel.hpp"
#include "star/eigen/strided.hpp"

namespace star::eigen::detail {

/// @brief The edge of the square tiles a moved innermost axis is copied in.
inline constexpr std::int64_t transpose_tile = 32;

/// @brief Copies a collapsed permutation whose innermost output axis is strided in the source:
/// the source-contiguous axis `q` and the innermost axis form planes, copied tile by tile.
template <class Scalar>
void copy_transposed_planes(const Scalar* in, Scalar* out, const strided_loop<1>& loop) {
  const shape& extents = loop.extents;
  const shape& gather = loop.strides[0];
  const std::size_t last = extents.size() - 1;
  const auto q =
      static_cast<std::size_t>(std::find(gather.begin(), gather.end(), 1) - gather.begin());
  const shape out_strides = row_major_strides(extents);
  shape batch, batch_in, batch_out;
  for (std::size_t d = 0; d < last; ++d)
    if (d != q) {
      batch.push_back(extents[d]);
      batch_in.push_back(gather[d]);
      batch_out.push_back(out_strides[d]);
    }
  const std::int64_t rows = extents[q], cols = extents[last];
  const std::int64_t row_tiles = (rows + transpose_tile - 1) / transpose_tile;
  const std::int64_t col_tiles = (cols + transpose_tile - 1) / transpose_tile;
  const std::int64_t tiles = row_tiles * col_tiles;
  using source_tile = Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>, 0,
                                 Eigen::OuterStride<>>;
  using target_tile =
      Eigen::Map<Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                 Eigen::OuterStride<>>;
  parallel_ranges(numel(batch) * tiles, numel(extents), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t unit = begin; unit < end; ++unit) {
      const shape at = unravel_index(unit / tiles, batch);
      const std::int64_t i = (unit % tiles) / col_tiles * transpose_tile;
      const std::int64_t j = (unit % tiles) % col_tiles * transpose_tile;
      const std::int64_t height = std::min(transpose_tile, rows - i);
      const std::int64_t width = std::min(transpose_tile, cols - j);
      target_tile(out + offset_of(at, batch_out) + i * out_strides[q] + j, height, width,
                  Eigen::OuterStride<>(out_strides[q])) =
          source_tile(in + offset_of(at, batch_in) + i + j * gather[last], height, width,
                      Eigen::OuterStride<>(gather[last]));
    }
  });
}

/// @brief Copies row-major `in` of shape `dims` to `out` with its axes reordered to `axes`
/// (a permutation of `0..rank-1`).
template <class Scalar>
void permute_copy(const Scalar* in, Scalar* out, const shape& dims,
                  const std::vector<std::size_t>& axes) {
  const shape in_strides = row_major_strides(dims);
  shape extents(axes.size()), gather(axes.size());
  for (std::size_t i = 0; i < axes.size(); ++i) {
    extents[i] = dims[axes[i]];
    gather[i] = in_strides[axes[i]];
  }
  if (numel(extents) == 0) return;
  const auto loop = collapse_loop<1>(extents, {gather});
  if (loop.strides[0].back() != 1) {
    copy_transposed_planes(in, out, loop);
    return;
  }
  for_each_segment(loop, [&](std::int64_t o, const auto& from, std::int64_t length) {
    std::copy_n(in + from[0], length, out + o);
  });
}

}  // namespace star::eigen::detail
