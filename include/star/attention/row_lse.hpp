#pragma once
/// @file
/// @brief The log-sum-exp of each image query's full attention row, computed in key chunks.

#include <algorithm>
#include <cstdint>
#include <utility>

#include "star/attention/joint_qk.hpp"
#include "star/attention/options.hpp"
#include "star/core/backend.hpp"
#include "star/core/token_layout.hpp"

namespace star {

/// @brief `LSE_n = log sum_{all keys m} exp(s q_n . k_m)` for every image query `n`, over
/// image AND text keys, in chunks of `options.lse_key_chunk` keys merged by an online
/// max / sum update, so memory stays `O(N * chunk)` and `N x T` is never formed. Uses
/// `options.scale` and `options.lse_key_chunk` (not the direction).
/// @param be       the backend
/// @param q        [B, H, T, D] post-QK-norm queries of the joint sequence
/// @param k        [B, H, T, D] post-QK-norm keys
/// @param layout   where the image and text tokens sit in `T`
/// @param options  the logit scale and the LSE key chunk
/// @return         [B, H, N]
template <complete_backend B>
typename B::tensor image_row_lse(const B& be, const typename B::tensor& q,
                                 const typename B::tensor& k, const token_layout& layout,
                                 const attention_options& options = {}) {
  options.validate();
  const joint_qk_dims dims = check_joint_qk(be, q, k, layout);
  const double scale = options.scale_for(dims.head_dim);
  const auto queries = attention_detail::image_rows(be, q, layout);  // [B, H, N, D]
  // The max and the shifted exp-sum of the scores against keys [begin, end).
  const auto chunk_stats = [&](std::int64_t begin, std::int64_t end) {
    const auto keys = be.slice(k, 2, begin, end);  // [B, H, chunk, D]
    const auto scores =
        attention_detail::scaled_scores(be, queries, keys, scale);  // [B, H, N, chunk]
    auto max = be.amax(scores, {-1}, true);                                         // [B, H, N, 1]
    auto sum = be.sum(be.exp(be.sub(scores, max)), {-1}, true);                     // [B, H, N, 1]
    return std::pair{std::move(max), std::move(sum)};
  };
  const std::int64_t chunk = options.lse_key_chunk;
  auto [running_max, running_sum] = chunk_stats(0, std::min(chunk, dims.tokens));  // [B, H, N, 1]
  for (std::int64_t begin = chunk; begin < dims.tokens; begin += chunk) {
    const auto [max, sum] =
        chunk_stats(begin, std::min(begin + chunk, dims.tokens));  // [B, H, N, 1]
    auto merged_max = be.maximum(running_max, max);                // [B, H, N, 1]
    running_sum = be.add(be.mul(running_sum, be.exp(be.sub(running_max, merged_max))),
                         be.mul(sum, be.exp(be.sub(max, merged_max))));  // [B, H, N, 1]
    running_max = std::move(merged_max);
  }
  const auto lse = be.add(be.log(running_sum), running_max);                // [B, H, N, 1]
  return be.reshape(lse, {dims.batch, dims.heads, layout.image_tokens()});  // [B, H, N]
}

}  // namespace star
