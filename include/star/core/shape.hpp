#pragma once
/// @file
/// @brief Tensor shapes: row-major strides, broadcasting, reduced shapes, and the checks that
/// turn a wrong shape into a `star::shape_error` naming the argument.

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/error.hpp"

namespace star {

/// @brief The extent of each dimension, outermost first (row-major).
using shape = std::vector<std::int64_t>;

/// @brief Prints a shape as `[2, 16, 8]`.
inline std::string to_string(const shape& s) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < s.size(); ++i) out << (i ? ", " : "") << s[i];
  out << ']';
  return out.str();
}

/// @brief The number of elements of a tensor of shape `s` (1 for rank 0); throws
/// `shape_error` for a negative extent or more elements than `std::int64_t` counts.
inline std::int64_t numel(const shape& s) {
  if (std::ranges::any_of(s, [](std::int64_t extent) { return extent < 0; }))
    throw shape_error("shape " + to_string(s) + ": an extent is negative");
  if (std::ranges::find(s, 0) != s.end()) return 0;
  std::int64_t count = 1;
  for (const std::int64_t extent : s) {
    if (count > std::numeric_limits<std::int64_t>::max() / extent)
      throw shape_error("shape " + to_string(s) + ": more than 2^63 - 1 elements");
    count *= extent;
  }
  return count;
}

/// @brief Row-major strides, in elements, of a contiguous tensor of shape `s`.
inline shape row_major_strides(const shape& s) {
  shape strides(s.size(), 1);
  for (std::size_t i = s.size(); i-- > 1;) strides[i - 1] = strides[i] * s[i];
  return strides;
}

/// @brief Maps a possibly negative axis into `[0, rank)`; throws naming `arg` otherwise.
inline std::size_t normalize_axis(std::int64_t axis, std::size_t rank, std::string_view arg) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r)
    throw shape_error(std::string(arg) + ": axis " + std::to_string(axis) +
                      " is out of range for a tensor of rank " + std::to_string(rank));
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

/// @brief The NumPy broadcast of two shapes; throws naming `op` when they are incompatible.
inline shape broadcast_shapes(const shape& a, const shape& b, std::string_view op) {
  const std::size_t rank = std::max(a.size(), b.size());
  shape out(rank, 1);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw shape_error(std::string(op) + ": shapes " + to_string(a) + " and " + to_string(b) +
                        " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// @brief Strides (in elements) that read a contiguous tensor of shape `from` as if it had the
/// broadcast shape `to`: broadcast dimensions get stride 0.
inline shape broadcast_strides(const shape& from, const shape& to) {
  const shape strides = row_major_strides(from);
  shape out(to.size(), 0);
  const std::size_t offset = to.size() - from.size();
  for (std::size_t i = 0; i < from.size(); ++i)
    out[offset + i] = from[i] == 1 ? 0 : strides[i];
  return out;
}

/// @brief The shape left after reducing `axes` (kept as 1 when `keepdim`).
inline shape reduced_shape(const shape& s, const std::vector<std::size_t>& axes, bool keepdim) {
  shape out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

/// @brief Normalises and de-duplicates reduction axes; throws naming `arg` on a bad axis.
inline std::vector<std::size_t> normalize_axes(const std::vector<std::int64_t>& axes,
                                               std::size_t rank, std::string_view arg) {
  std::vector<std::size_t> out;
  for (const std::int64_t a : axes) {
    const std::size_t n = normalize_axis(a, rank, arg);
    if (std::find(out.begin(), out.end(), n) != out.end())
      throw shape_error(std::string(arg) + ": axis " + std::to_string(a) + " is listed twice");
    out.push_back(n);
  }
  return out;
}

/// @brief Throws a `shape_error` unless `got` has `rank` dimensions.
/// @param arg    the argument's name, e.g. `"q"`.
/// @param got    the argument's shape
/// @param rank   the expected number of dimensions
/// @param layout the expected dimensions in the docs' letters, e.g. `"[B, H, T, D]"`.
inline void require_rank(std::string_view arg, const shape& got, std::size_t rank,
                         std::string_view layout) {
  if (got.size() != rank)
    throw shape_error(std::string(arg) + ": expected rank " + std::to_string(rank) + " " +
                      std::string(layout) + ", got shape " + to_string(got));
}

/// @brief Throws a `shape_error` unless every extent of `got` is positive.
/// @param arg    the argument's name, e.g. `"q"`.
/// @param got    the argument's shape
/// @param layout the dimensions in the docs' letters, e.g. `"[B, H, T, D]"`.
inline void require_positive_extents(std::string_view arg, const shape& got,
                                     std::string_view layout) {
  for (const std::int64_t extent : got)
    if (extent <= 0)
      throw shape_error(std::string(arg) + ": every extent of " + std::string(layout) +
                        " must be > 0, got shape " + to_string(got));
}

/// @brief Throws a `shape_error` unless `got == expected`.
inline void require_shape(std::string_view arg, const shape& got, const shape& expected,
                          std::string_view layout) {
  if (got != expected)
    throw shape_error(std::string(arg) + ": expected shape " + std::string(layout) + " = " +
                      to_string(expected) + ", got " + to_string(got));
}

}  // namespace star
