#pragma once
/// @file
/// @brief The one scaled-dot-product attention of the SD3.5 example models (CLIP, T5, the
/// MMDiT, the VAE): LibTorch's `at::scaled_dot_product_attention` (fused kernels) from
/// LibTorch 2.1, the first with an explicit `scale`; before that one explicit fallback whose
/// logits and softmax are in float32 (float64 for float64 inputs).

#include <ATen/ATen.h>
#include <torch/version.h>

#include <optional>

/// @brief 1 where `dot_product_attention` runs LibTorch's `at::scaled_dot_product_attention`
/// (LibTorch 2.1 and later, the first with an explicit `scale`), 0 where it runs
/// `detail::explicit_attention`.
#define STAR_SD35_USES_FUSED_SDPA \
  (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))

namespace star::sd35 {

/// @brief What `dot_product_attention` adds to plain `softmax(s q k^T) v`.
struct dot_product_options {
  /// Query `t` attends keys `0 .. t` only (top-left aligned, as SDPA's `is_causal`).
  bool causal = false;
  /// [B or 1, H or 1, Tq, Tk] added to the logits (a position bias; a very negative value
  /// lowers a key's weight, -inf blocks it), rounded to q's dtype first on every path; on
  /// q's device; undefined: none. A query row whose keys are all blocked (-inf) gives 0, as
  /// SDPA does from LibTorch 2.5 (2.1 to 2.4 give NaN there).
  at::Tensor additive_mask{};
  /// The logit scale `s`; unset: `1 / sqrt(D)`.
  std::optional<double> scale{};
};

/// @brief `softmax(s q k^T + mask) v` over the keys, causal on request. No dropout.
/// @param q  [B, H, Tq, D] queries
/// @param k  [B, H, Tk, D] keys, q's dtype and device
/// @param v  [B, H, Tk, Dv] values, q's dtype and device
/// @return   [B, H, Tq, Dv] in q's dtype
/// @throws star::shape_error naming the argument when a rank or size disagrees (the mask's
///         included); star::value_error naming k, v or additive_mask on another device than
///         q, or k, v in another dtype
at::Tensor dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const dot_product_options& options = {});

namespace detail {

/// @brief The explicit computation (`dot_product_attention` before LibTorch 2.1), compiled on
/// every version so that the tests compare it with SDPA: logits and softmax in float32
/// (float64 for float64 inputs), the result in q's dtype. Same arguments, checks and results.
at::Tensor explicit_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const dot_product_options& options = {});

}  // namespace detail
}  // namespace star::sd35
