#pragma once
/// @file
/// @brief The relevance map of one transformer block: the weighted sum over the selected
/// text columns of the head-averaged attention probabilities.

#include <cstdint>
#include <span>
#include <string>

#include "star/core/value_checks.hpp"
#include "star/attention/joint_qk.hpp"
#include "star/attention/options.hpp"
#include "star/attention/probabilities.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/backend.hpp"
#include "star/core/ops.hpp"
#include "star/core/token_layout.hpp"

namespace star {

namespace attention_detail {

/// @brief `R[b, n] = sum_j w_j * mean_h P[b, h, n, j]` with the weights already on the
/// backend as a column (checked by the caller): [B, H, N, S] x [S, 1] -> [B, N].
template <complete_backend B>
typename B::tensor weighted_head_mean(const B& be, const typename B::tensor& probabilities,
                                      const typename B::tensor& weight_column) {
  const shape p_shape = be.shape_of(probabilities);
  const auto head_mean = ops::mean(be, probabilities, {1});  // [B, N, S]
  const auto map = be.matmul(head_mean, weight_column);      // [B, N, 1]
  return be.reshape(map, {p_shape[0], p_shape[2]});          // [B, N]
}

}  // namespace attention_detail

/// @brief `R[b, n] = sum_j weights_j * mean_h P[b, h, n, j]` for one block.
/// @param be             the backend
/// @param probabilities  [B, H, N, S] attention probabilities of the selected columns
/// @param weights        [S] `w_j`, finite and >= 0, in the order of the columns
/// @return               [B, N]
template <complete_backend B>
typename B::tensor relevance_map(const B& be, const typename B::tensor& probabilities,
                                 std::span<const double> weights) {
  const shape p_shape = be.shape_of(probabilities);
  require_rank("probabilities", p_shape, 4, "[B, H, N, S]");
  const auto columns = static_cast<std::int64_t>(weights.size());
  if (columns != p_shape[3])
    throw shape_error("weights: expected shape [S] = [" + std::to_string(p_shape[3]) +
                      "] for probabilities of shape " + to_string(p_shape) + ", got [" +
                      std::to_string(columns) + "]");
  detail::require_finite_nonnegative("weights", weights);
  return attention_detail::weighted_head_mean(
      be, probabilities, be.from_host(weights, {columns, 1}));  // [B, N] from [S, 1] weights
}

/// @brief The relevance map of one block straight from its `q`, `k`:
/// `relevance_map(attention_probabilities(q, k, selection.indices), selection.weights)`.
/// @param be         the backend
/// @param q          [B, H, T, D] post-QK-norm queries of the joint sequence
/// @param k          [B, H, T, D] post-QK-norm keys
/// @param layout     where the image and text tokens sit in `T`
/// @param selection  the text columns `S` and their weights
/// @param options    the direction, the logit scale and the LSE key chunk
/// @return           [B, N]
template <complete_backend B>
typename B::tensor block_relevance(const B& be, const typename B::tensor& q,
                                   const typename B::tensor& k, const token_layout& layout,
                                   const text_selection& selection,
                                   const attention_options& options = {}) {
  const auto probs =
      attention_probabilities(be, q, k, layout, selection.indices, options);  // [B, H, N, S]
  return relevance_map(be, probs, selection.weights);                         // [B, N]
}

/// @brief The relevance map of one block from its `q`, `k` and the row log-sum-exp of a
/// fused attention kernel (image-to-text only; the LSE path of docs/math.md §3).
/// @param be         the backend
/// @param q          [B, H, T, D] post-QK-norm queries of the joint sequence
/// @param k          [B, H, T, D] post-QK-norm keys
/// @param layout     where the image and text tokens sit in `T`
/// @param selection  the text columns `S` and their weights
/// @param lse        [B, H, N] log-sum-exp of each image query's row over ALL keys; finite
/// @param options    the logit scale; the direction must be `image_to_text`
/// @return           [B, N]
template <complete_backend B>
typename B::tensor block_relevance(const B& be, const typename B::tensor& q,
                                   const typename B::tensor& k, const token_layout& layout,
                                   const text_selection& selection, const typename B::tensor& lse,
                                   const attention_options& options = {}) {
  const auto probs =
      attention_probabilities(be, q, k, layout, selection.indices, lse, options);  // [B, H, N, S]
  return relevance_map(be, probs, selection.weights);                              // [B, N]
}

}  // namespace star
