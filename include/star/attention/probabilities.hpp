#pragma once
/// @file
/// @brief Image-text attention probabilities for the selected text columns only:
/// cost `O(N * |S| * D)` per head, `N x T` is never formed.

#include <cstdint>
#include <span>
#include <string_view>

#include "star/core/value_checks.hpp"
#include "star/attention/joint_qk.hpp"
#include "star/attention/options.hpp"
#include "star/attention/row_lse.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/ops.hpp"
#include "star/core/shape.hpp"
#include "star/core/token_layout.hpp"

namespace star {

namespace attention_detail {

/// @brief `exp(s q_n . k_j - LSE_n)` for the image queries `q_image` [B, H, N, D], the
/// selected keys `k_selected` [B, H, S, D] and the image-row LSE [B, H, N]: [B, H, N, S].
/// Checks nothing (an LSE of +Inf gives 0, not NaN): the public entries check that the LSE is
/// finite first; `lse_relevance_accumulator` turns a non-finite LSE into NaN and defers the
/// check to its `result()`, so that it reads nothing back per block.
template <complete_backend B>
typename B::tensor image_to_text_from_lse(const B& be, const typename B::tensor& q_image,
                                          const typename B::tensor& k_selected,
                                          const typename B::tensor& lse, double scale) {
  const shape lse_shape = be.shape_of(lse);
  const auto scores = scaled_scores(be, q_image, k_selected, scale);  // [B, H, N, S]
  const auto lse_column =
      be.reshape(lse, {lse_shape[0], lse_shape[1], lse_shape[2], 1});  // [B, H, N, 1]
  return be.exp(be.sub(scores, lse_column));                           // [B, H, N, S]
}

/// @brief Checks `q_image` [B, H, N, D] and `k_selected` [B, H, S, D] (positive extents,
/// equal B, H, D) and `lse` [B, H, N]; returns D. Throws `shape_error` naming the argument.
template <tensor_backend B>
std::int64_t check_image_to_text_rows(const B& be, const typename B::tensor& q_image,
                                      const typename B::tensor& k_selected,
                                      const typename B::tensor& lse) {
  const shape q_shape = be.shape_of(q_image);
  require_rank("q_image", q_shape, 4, "[B, H, N, D]");
  require_positive_extents("q_image", q_shape, "[B, H, N, D]");
  const shape k_shape = be.shape_of(k_selected);
  require_rank("k_selected", k_shape, 4, "[B, H, S, D]");
  if (k_shape[0] != q_shape[0] || k_shape[1] != q_shape[1] || k_shape[2] <= 0 ||
      k_shape[3] != q_shape[3])
    throw shape_error("k_selected: expected shape [B, H, S, D] with S > 0 and B, H, D of q_image " +
                      to_string(q_shape) + ", got " + to_string(k_shape));
  require_shape("lse", be.shape_of(lse), {q_shape[0], q_shape[1], q_shape[2]}, "[B, H, N]");
  return q_shape[3];
}

/// @brief The rows of joint `q`, `k` that the image-to-text read-out uses.
template <class Tensor>
struct image_text_rows {
  Tensor q_image;     ///< [B, H, N, D] the image queries
  Tensor k_selected;  ///< [B, H, S, D] the keys of the selected text columns, in their order
};

/// @brief Checks `q`, `k` [B, H, T, D] against `layout` (`check_joint_qk`) and `columns`
/// (`require_text_columns`, naming `columns_arg`), then gathers the image rows of `q` and the
/// rows of `k` at the text-block indices `columns`.
template <complete_backend B>
image_text_rows<typename B::tensor> gather_image_text_rows(
    const B& be, const typename B::tensor& q, const typename B::tensor& k,
    const token_layout& layout, std::span<const std::int64_t> columns,
    std::string_view columns_arg = "columns") {
  check_joint_qk(be, q, k, layout);
  require_text_columns(columns_arg, columns, layout);
  return {image_rows(be, q, layout),                    // [B, H, N, D]
          selected_text_rows(be, k, layout, columns)};  // [B, H, S, D]
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
  return attention_detail::image_to_text_from_lse(
      be, attention_detail::image_rows(be, q, layout),
      attention_detail::selected_text_rows(be, k, layout, columns), lse,
      scale);  // [B, H, N, S]
}

/// @brief Image-to-text probabilities `exp(s q_n . k_j - LSE_n)` from the image queries and
/// the selected keys themselves, with the row log-sum-exp supplied by the caller: for a caller
/// that gathers the rows itself (e.g. in the dtype of a model run in mixed precision, then
/// converts only them). Checks that the LSE is finite (one host read-back).
/// @param be          the backend
/// @param q_image     [B, H, N, D] post-QK-norm queries of the image tokens
/// @param k_selected  [B, H, S, D] post-QK-norm keys of the selected text tokens
/// @param lse         [B, H, N] log-sum-exp of each image query's row over ALL keys; finite
/// @param options     the logit scale; the direction must be `image_to_text`
/// @return            [B, H, N, S]
template <complete_backend B>
typename B::tensor image_to_text_probabilities(const B& be, const typename B::tensor& q_image,
                                               const typename B::tensor& k_selected,
                                               const typename B::tensor& lse,
                                               const attention_options& options = {}) {
  options.validate();
  attention_detail::require_image_to_text(options, "image_to_text_probabilities");
  const std::int64_t head_dim =
      attention_detail::check_image_to_text_rows(be, q_image, k_selected, lse);
  detail::require_finite(be, lse, "lse");
  return attention_detail::image_to_text_from_lse(be, q_image, k_selected, lse,
                                                  options.scale_for(head_dim));  // [B, H, N, S]
}

/// @brief Image-to-text probabilities `exp(s q_n . k_j - LSE_n)` for the selected text
/// columns, with the row log-sum-exp supplied by the caller (e.g. from a fused attention
/// kernel): `image_to_text_probabilities` of the image rows of `q` and the selected rows of
/// `k`. Only `options.direction == image_to_text` is accepted.
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
  const auto rows = attention_detail::gather_image_text_rows(be, q, k, layout, columns);
  return image_to_text_probabilities(be, rows.q_image, rows.k_selected, lse,
                                     options);  // [B, H, N, S]
}

}  // namespace star
