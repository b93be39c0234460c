#pragma once
/// @file
/// @brief Strided loops over a contiguous row-major output for the Eigen backend: adjacent
/// dimensions that every operand walks contiguously are merged, so the common broadcast
/// patterns (same shape, scalar, `[M, N] op [1, N]`, `[M, N] op [M, 1]`) become one or two
/// dimensions whose innermost one is processed as a vectorised segment.

#include <algorithm>
#include <array>
#include <cstdint>

#include "star/core/nd_index.hpp"
#include "star/eigen/parallel.hpp"

namespace star::eigen::detail {

/// @brief A row-major output of `extents` read by `N` operands, each through its own strides.
template <std::size_t N>
struct strided_loop {
  shape extents;                 ///< collapsed extents, outermost first; never empty
  std::array<shape, N> strides;  ///< per operand, the stride (in elements) of each extent
};

/// @brief Drops extent-1 dimensions and merges neighbours that every operand reads as one
/// contiguous run; a single-element loop becomes extents `[1]` with unit strides.
template <std::size_t N>
strided_loop<N> collapse_loop(const shape& extents, const std::array<shape, N>& strides) {
  strided_loop<N> loop;
  for (std::size_t d = 0; d < extents.size(); ++d) {
    if (extents[d] == 1) continue;
    bool merges = !loop.extents.empty();
    for (std::size_t k = 0; k < N && merges; ++k)
      merges = loop.strides[k].back() == strides[k][d] * extents[d];
    if (merges) {
      loop.extents.back() *= extents[d];
      for (std::size_t k = 0; k < N; ++k) loop.strides[k].back() = strides[k][d];
    } else {
      loop.extents.push_back(extents[d]);
      for (std::size_t k = 0; k < N; ++k) loop.strides[k].push_back(strides[k][d]);
    }
  }
  if (loop.extents.empty()) {
    loop.extents.push_back(1);
    for (shape& s : loop.strides) s.push_back(1);
  }
  return loop;
}

/// @brief Bounds on the run of the innermost dimension one call of `for_each_segment` covers:
/// long rows are cut so that even a single row spreads over threads, but never below
/// `min_segment_block` values so that each call stays a vectorised loop.
inline constexpr std::int64_t max_segment_block = 4096;
inline constexpr std::int64_t min_segment_block = 128;
/// @brief The number of calls `for_each_segment` aims for when rows are few.
inline constexpr std::int64_t wanted_segments = 64;

/// @brief Calls `segment(out_offset, in_offsets, length)` for runs of the innermost
/// dimension that together cover the output exactly once, in parallel when large. Operand
/// `k` then reads `length` values from `in_offsets[k]` with stride `loop.strides[k].back()`.
/// @param cost  scalar operations per output element (for the parallel threshold)
template <std::size_t N, class Segment>
void for_each_segment(const strided_loop<N>& loop, const Segment& segment, std::int64_t cost = 1) {
  const std::size_t outer_rank = loop.extents.size() - 1;
  const shape outer(loop.extents.begin(), loop.extents.end() - 1);
  const std::int64_t rows = numel(outer);
  const std::int64_t width = loop.extents.back();
  if (rows == 0 || width == 0) return;
  const std::int64_t cuts = std::max<std::int64_t>(1, wanted_segments / rows);
  const std::int64_t block =
      std::min(width, std::clamp((width + cuts - 1) / cuts, min_segment_block, max_segment_block));
  const std::int64_t blocks_per_row = (width + block - 1) / block;
  const auto run = [&](std::int64_t begin, std::int64_t end) {
    std::int64_t row = begin / blocks_per_row;
    shape index = unravel_index(row, outer);
    std::array<std::int64_t, N> row_offsets{};
    for (std::size_t k = 0; k < N; ++k) row_offsets[k] = offset_of(index, loop.strides[k]);
    for (std::int64_t unit = begin; unit < end; ++unit) {
      if (unit / blocks_per_row != row) {  // advance the odometer to the next row
        ++row;
        for (std::size_t d = outer_rank; d-- > 0;) {
          for (std::size_t k = 0; k < N; ++k) row_offsets[k] += loop.strides[k][d];
          if (++index[d] < outer[d]) break;
          for (std::size_t k = 0; k < N; ++k) row_offsets[k] -= loop.strides[k][d] * outer[d];
          index[d] = 0;
        }
      }
      const std::int64_t column = (unit % blocks_per_row) * block;
      std::array<std::int64_t, N> offsets = row_offsets;
      for (std::size_t k = 0; k < N; ++k) offsets[k] += column * loop.strides[k].back();
      segment(row * width + column, offsets, std::min(block, width - column));
    }
  };
  parallel_ranges(rows * blocks_per_row, rows * width * cost, run);
}

}  // namespace star::eigen::detail
