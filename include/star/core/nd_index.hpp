#pragma once
/// @file
/// @brief Multi-index arithmetic for row-major tensors, shared by the host backends.

#include <cstdint>

#include "star/core/shape.hpp"

namespace star {

/// @brief The multi-index of element `linear` of a row-major tensor of shape `s`.
inline shape unravel_index(std::int64_t linear, const shape& s) {
  shape index(s.size(), 0);
  for (std::size_t i = s.size(); i-- > 0;) {
    index[i] = linear % s[i];
    linear /= s[i];
  }
  return index;
}

/// @brief The storage offset of `index` under `strides`.
inline std::int64_t offset_of(const shape& index, const shape& strides) {
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < index.size(); ++i) offset += index[i] * strides[i];
  return offset;
}

/// @brief The permuted shape `s[dims[0]], s[dims[1]], ...`; throws naming `arg` unless `dims`
/// is a permutation of `0..rank-1`.
inline shape permuted_shape(const shape& s, const std::vector<std::int64_t>& dims,
                            std::string_view arg) {
  if (dims.size() != s.size())
    throw shape_error(std::string(arg) + ": permutation of " + std::to_string(dims.size()) +
                      " axes for a tensor of shape " + to_string(s));
  const auto axes = normalize_axes(dims, s.size(), arg);
  shape out(s.size());
  for (std::size_t i = 0; i < axes.size(); ++i) out[i] = s[axes[i]];
  return out;
}

/// @brief Checks `[begin, end)` against an axis of extent `extent`.
inline void require_slice(std::string_view arg, std::int64_t begin, std::int64_t end,
                          std::int64_t extent) {
  if (begin < 0 || end < begin || end > extent)
    throw shape_error(std::string(arg) + ": slice [" + std::to_string(begin) + ", " +
                      std::to_string(end) + ") is outside an axis of extent " +
                      std::to_string(extent));
}

/// @brief Checks every index against an axis of extent `extent`.
template <class Indices>
void require_indices(std::string_view arg, const Indices& indices, std::int64_t extent) {
  for (const std::int64_t i : indices)
    if (i < 0 || i >= extent)
      throw shape_error(std::string(arg) + ": index " + std::to_string(i) +
                        " is outside an axis of extent " + std::to_string(extent));
}

/// @brief Checks that a reshape keeps the number of elements.
inline void require_same_numel(std::string_view arg, const shape& from, const shape& to) {
  if (numel(from) != numel(to))
    throw shape_error(std::string(arg) + ": cannot reshape " + to_string(from) + " (" +
                      std::to_string(numel(from)) + " elements) to " + to_string(to));
}

/// @brief The output shape of a broadcast batched matmul `[..., m, k] x [..., k, n]`.
inline shape matmul_shape(const shape& a, const shape& b) {
  if (a.size() < 2 || b.size() < 2)
    throw shape_error("matmul: operands need rank >= 2, got " + to_string(a) + " and " +
                      to_string(b));
  if (a.back() != b[b.size() - 2])
    throw shape_error("matmul: inner dimensions differ: " + to_string(a) + " x " +
                      to_string(b));
  shape out = broadcast_shapes(shape(a.begin(), a.end() - 2), shape(b.begin(), b.end() - 2),
                               "matmul (batch dimensions)");
  out.push_back(a[a.size() - 2]);
  out.push_back(b.back());
  return out;
}

}  // namespace star
