#pragma once
/// @file
/// @brief What the denoiser's joint attention reports to an optional observer: the post-norm
/// queries and keys, the natural-log row log-sum-exp and the token layout of each block, which
/// is exactly what star's attention read-out (`star::libtorch::selected_attention_probabilities`,
/// `selected_block_relevance`) needs. The LSE comes out of the fused attention kernel, so
/// observing costs almost nothing.

#include <ATen/ATen.h>

#include "star/core/token_layout.hpp"

namespace star::sd35 {

/// @brief Receives the joint attention of every block during a forward pass. The tensors are
/// detached views of the forward's own values (no gradient): copy or reduce what must outlive
/// the call. Called on the
/// forward's thread, block by block, in order; skipped blocks are not reported.
struct attention_observer {
  virtual ~attention_observer() = default;

  /// @brief One block's joint attention.
  /// @param block   the block index `i` of `transformer_blocks.{i}`
  /// @param q       [B, H, T, D] queries after norm_q / norm_added_q, in the module's dtype
  /// @param k       [B, H, T, D] keys after norm_k / norm_added_k
  /// @param lse     [B, H, T] `log sum_m exp(q_t . k_m / sqrt(D))` over all `T` keys, natural
  ///                log, float32 (float64 for a float64 module), no gradient
  /// @param layout  image tokens first (`h x w` grid, row-major), then the text segments
  virtual void on_joint_attention(int block, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& lse, const token_layout& layout) = 0;
};

/// @brief Where a block's joint attention reports: nothing when `observer` is null (the
/// cheapest attention kernel runs), else `observer` with `layout`.
struct attention_report {
  attention_observer* observer = nullptr;  ///< not owned; null: no report
  token_layout layout;                     ///< the joint sequence of this forward
};

}  // namespace star::sd35
