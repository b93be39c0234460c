#pragma once
/// @file
/// @brief The RMS normalisation of diffusers' `RMSNorm` and transformers' `T5LayerNorm`
/// (identical computations), shared by the MMDiT's q/k norms and the T5 encoder.

#include <ATen/ATen.h>

namespace star::sd35 {

/// @brief `x * rsqrt(mean(x^2) + eps) * weight` over the last dimension, as the references
/// compute it: the variance of a float32 copy of `x` (the one copy they make), the normalised
/// value in float32 by type promotion, cast to a float16 / bfloat16 weight's dtype before the
/// product with the weight.
/// @param x       [..., C]
/// @param weight  [C]
/// @param eps     added to the mean square
/// @return        [..., C] in a float16 / bfloat16 weight's dtype, else float32 or wider (the
///                promotion of x, float32 and the weight)
inline at::Tensor rms_normalize(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto variance = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);  // [..., 1]
  auto normed = x * at::rsqrt(variance + eps);                               // [..., C]
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16)
    normed = normed.to(weight.scalar_type());                                // [..., C]
  return weight * normed;                                                    // [..., C]
}

}  // namespace star::sd35
