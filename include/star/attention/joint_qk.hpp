#pragma once
/// @file
/// @brief The joint-attention inputs `q`, `k` [B, H, T, D]: their checks, the image / text
/// rows of the joint sequence, and scaled dot-product scores.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "star/core/token_layout.hpp"

namespace star {

/// @brief The extents of checked joint `q`, `k`.
struct joint_qk_dims {
  std::int64_t batch;     ///< B
  std::int64_t heads;     ///< H
  std::int64_t tokens;    ///< T = N + L
  std::int64_t head_dim;  ///< D
};

/// @brief Checks `layout` and that `q`, `k` are [B, H, T, D] with positive extents, equal
/// shapes and `T == layout.total_tokens()`; throws `shape_error` naming `q` or `k`.
template <tensor_backend B>
joint_qk_dims check_joint_qk(const B& be, const typename B::tensor& q, const typename B::tensor& k,
                             const token_layout& layout) {
  layout.validate();
  const shape q_shape = be.shape_of(q);
  require_rank("q", q_shape, 4, "[B, H, T, D]");
  require_positive_extents("q", q_shape, "[B, H, T, D]");
  if (q_shape[2] != layout.total_tokens())
    throw shape_error(
        "q: expected T = layout.total_tokens() = " + std::to_string(layout.image_tokens()) +
        " image + " + std::to_string(layout.text_tokens()) +
        " text tokens in [B, H, T, D], got shape " + to_string(q_shape));
  require_shape("k", be.shape_of(k), q_shape, "[B, H, T, D] (the shape of q)");
  return {q_shape[0], q_shape[1], q_shape[2], q_shape[3]};
}

namespace attention_detail {

/// @brief The image rows of a joint [B, H, T, D] tensor: [B, H, N, D].
template <layout_backend B>
typename B::tensor image_rows(const B& be, const typename B::tensor& x,
                              const token_layout& layout) {
  const std::int64_t begin = layout.image_begin();
  return be.slice(x, 2, begin, begin + layout.image_tokens());  // [B, H, N, D]
}

/// @brief The text rows at text-block indices `columns` (already checked): [B, H, S, D].
template <layout_backend B>
typename B::tensor selected_text_rows(const B& be, const typename B::tensor& x,
                                      const token_layout& layout,
                                      std::span<const std::int64_t> columns) {
  std::vector<std::int64_t> positions(columns.begin(), columns.end());
  for (std::int64_t& position : positions) position += layout.text_begin();
  return be.index_select(x, 2, positions);  // [B, H, S, D]
}

/// @brief `scale * queries keys^T`: [B, H, M, D] x [B, H, K, D] -> [B, H, M, K].
template <class B>
requires matmul_backend<B> && layout_backend<B> && elementwise_backend<B>
typename B::tensor scaled_scores(const B& be, const typename B::tensor& queries,
                                 const typename B::tensor& keys, double scale) {
  const auto keys_t = be.permute(keys, {0, 1, 3, 2});  // [B, H, D, K]
  return be.mul(be.matmul(queries, keys_t), scale);    // [B, H, M, K]
}

}  // namespace attention_detail
}  // namespace star
