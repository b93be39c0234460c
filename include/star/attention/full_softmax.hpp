#pragma once
/// @file
/// @brief The explicit full-softmax attention of the image queries: `O(N * T)` memory, for
/// checking the selected-column paths.

#include "star/attention/joint_qk.hpp"
#include "star/attention/options.hpp"
#include "star/core/backend.hpp"
#include "star/core/ops.hpp"
#include "star/core/token_layout.hpp"

namespace star {

/// @brief The softmax over ALL T keys (image and text, in sequence order) of every image
/// query's scores `s q_n . k_m` (`options.direction` must be `image_to_text`).
/// @param be       the backend
/// @param q        [B, H, T, D] post-QK-norm queries of the joint sequence
/// @param k        [B, H, T, D] post-QK-norm keys
/// @param layout   where the image and text tokens sit in `T`
/// @param options  the logit scale; the direction must be `image_to_text`
/// @return         [B, H, N, T]; each row sums to 1
template <complete_backend B>
typename B::tensor full_attention_image_rows(const B& be, const typename B::tensor& q,
                                             const typename B::tensor& k,
                                             const token_layout& layout,
                                             const attention_options& options = {}) {
  options.validate();
  attention_detail::require_image_to_text(options, "full_attention_image_rows");
  const joint_qk_dims dims = check_joint_qk(be, q, k, layout);
  const auto queries = attention_detail::image_rows(be, q, layout);  // [B, H, N, D]
  const auto scores = attention_detail::scaled_scores(
      be, queries, k, options.scale_for(dims.head_dim));  // [B, H, N, T]
  return ops::softmax(be, scores, -1);                    // [B, H, N, T]
}

/// @brief The text-column slice of `full_attention_image_rows`: every image query's
/// probability of every text key.
/// @return  [B, H, N, L]
template <complete_backend B>
typename B::tensor full_attention_image_to_text(const B& be, const typename B::tensor& q,
                                                const typename B::tensor& k,
                                                const token_layout& layout,
                                                const attention_options& options = {}) {
  const auto rows = full_attention_image_rows(be, q, k, layout, options);  // [B, H, N, T]
  const std::int64_t begin = layout.text_begin();
  return be.slice(rows, 3, begin, begin + layout.text_tokens());  // [B, H, N, L]
}

}  // namespace star
