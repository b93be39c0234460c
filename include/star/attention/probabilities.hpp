#pragma once
/// @file
/// @brief Image-text attention probabilities for the selected text columns only:
/// cost `O(N * |S| * D)` per head, `N x T` is never formed.

#include <cstdint>
#include <span>

#include "star/core/value_checks.hpp"
#include "star/attention/joint_qk.hpp"
#include "star/attention/options.hpp"
#include "star/attention/row_lse.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/backend.hpp"
#include "star/core/ops.hpp"
#include "star/core/token_layout.hpp"

namespace star {

namespace attention_detail {

/// @brief `exp(s q_n . k_j - LSE_n)` for image queries `n` and text keys `j in columns`
/// (all arguments already checked): [B, H, N, S].
template <complete_backend B>
typename B::tensor image_to_text_from_lse(const B& be, const typename B::tensor& q,
                                          const typename B::tensor& k, const token_layout& layout,
                                          std::span<const std::int64_t> columns,
                                          const typename B::tensor& lse, double scale) {
  const shape lse_shape = be.shape_of(lse);
  const auto queries = image_rows(be, q, layout);                // [B, H, N, D]
  const auto keys = selected_text_rows(be, k, layout, columns);  // [B, H, S, D]
  const auto scores = scaled_scores(be, queries, keys, scale);   // [B, H, N, S]
  const auto lse_column =
      be.reshape(lse, {lse_shape[0], lse_shape[1], lse_shape[2], 1});  // [B, H, N, 1]
  return be.exp(be.sub(scores, lse_column));                           // [B, H, N, S]
}

/// @brief For text queries `j in columns`, the softmax over the IMAGE keys of
/// `s q_j . k_n`, transposed to [B, H, N, S] (all arguments already checked).
template <complete_backend B>
typename B::tensor text_to_image(const B& be, const typename B::tensor& q,
                                 const typename B::tensor& k, const token_layout& layout,
                                 std::span<const std::int64_t> columns, double scale) {
  const auto queries = selected_text_rows(be, q, layout, columns);  // [B, H, S, D]
  const auto keys = image_rows(be, k, layout);                      // [B, H, N, D]
  const auto scores = scaled_scores(be, queries, keys, scale);      // [B, H, S, N]
  const auto probs = ops::softmax(be, scores, -1);                  // [B, H, S, N]
  return be.permute(probs, {0, 1, 3, 2});                           // [B, H, N, S]
}

}  // namespace attention_detail

/// @brief The attention probabilities between every image token and the selected text
/// columns, in the direction `options.direction`; for `image_to_text` the row LSE is
/// computed here in key chunks (`image_row_lse`).
/// @param be       the backend
/// @param q        [B, H, T, D] post-QK-norm queries of the joint sequence
/// @param k        [B, H, T, D] post-QK-norm keys
/// @param layout   where the image and text tokens sit in `T`
/// @param columns  [S] text-block indices `j` (e.g. `select_text_columns(w).indices`)
/// @param options  the direction, the logit scale and the LSE key chunk
/// @return         [B, H, N, S]: `P[b,h,n,j]`
template <complete_backend B>
typename B::tensor attention_probabilities(const B& be, const typename B::tensor& q,
                                           const typename B::tensor& k, const token_layout& layout,
                                           std::span<const std::int64_t> columns,
                                           const attention_options& options = {}) {
  options.validate();
  const joint_qk_dims dims = check_joint_qk(be, q, k, layout);
  require_text_columns("columns", columns, layout);
  const double scale = options.scale_for(dims.head_dim);
  if (options.direction == attention_direction::text_to_image)
    return attention_detail::text_to_image(be, q, k, layout, columns, scale);  // [B, H, N, S]
  const auto lse = image_row_lse(be, q, k, layout, options);                   // [B, H, N]
  return attention_detail::image_to_text_from_lse(be, q, k, layout, columns, lse,
                                                  scale);  // [B, H, N, S]
}

/// @brief Image-to-text probabilities `exp(s q_n . k_j - LSE_n)` for the selected text
/// columns, with the row log-sum-exp supplied by the caller (e.g. from a fused attention
/// kernel). Only `options.direction == image_to_text` is accepted.
/// @param be       the backend
/// @param q        [B, H, T, D] post-QK-norm queries of the joint sequence
/// @param k        [B, H, T, D] post-QK-norm keys
/// @param layout   where the image and text tokens sit in `T`
/// @param columns  [S] text-block indices `j`
/// @param lse      [B, H, N] log-sum-exp of each image query's row over ALL keys; finite
/// @param options  the logit scale; the direction must be `image_to_text`
/// @return         [B, H, N, S]
template <complete_backend B>
typename B::tensor attention_probabilities(const B& be, const typename B::tensor& q,
                                           const typename B::tensor& k, const token_layout& layout,
                                           std::span<const std::int64_t> columns,
                                           const typename B::tensor& lse,
                                           const attention_options& options = {}) {
  options.validate();
  attention_detail::require_image_to_text(options, "attention_probabilities with a given lse");
  const joint_qk_dims dims = check_joint_qk(be, q, k, layout);
  require_text_columns("columns", columns, layout);
  require_shape("lse", be.shape_of(lse), {dims.batch, dims.heads, layout.image_tokens()},
                "[B, H, N]");
  detail::require_finite(be, lse, "lse");
  return attention_detail::image_to_text_from_lse(
      be, q, k, layout, columns, lse,
      options.scale_for(dims.head_dim));  // [B, H, N, S]
}

}  // namespace star
