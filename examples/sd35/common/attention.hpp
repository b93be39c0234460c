#pragma once
/// @file
/// @brief The one scaled-dot-product attention of the SD3.5 example models (CLIP, T5, the
/// MMDiT, the VAE): LibTorch's `at::scaled_dot_product_attention` (fused kernels) from
/// LibTorch 2.1, the first with an explicit `scale`; before that one explicit fallback whose
/// logits and softmax are in float32 (float64 for float64 inputs).

#include <ATen/ATen.h>

#include <optional>

namespace star::sd35 {

/// @brief What `dot_product_attention` adds to plain `softmax(s q k^T) v`.
struct dot_product_options {
  /// Query `t` attends keys `0 .. t` only (top-left aligned, as SDPA's `is_causal`).
  bool causal = false;
  /// [B or 1, H or 1, Tq, Tk] added to the logits (a position bias; a very negative value
  /// blocks a key); undefined: none.
  at::Tensor additive_mask{};
  /// The logit scale `s`; unset: `1 / sqrt(D)`.
  std::optional<double> scale{};
};

/// @brief `softmax(s q k^T + mask) v` over the keys, causal on request. No dropout.
/// @param q  [B, H, Tq, D] queries
/// @param k  [B, H, Tk, D] keys, q's dtype and device
/// @param v  [B, H, Tk, Dv] values, q's dtype and device
/// @return   [B, H, Tq, Dv] in q's dtype
/// @throws star::shape_error naming the argument when a rank or size disagrees
at::Tensor dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const dot_product_options& options = {});

}  // namespace star::sd35
