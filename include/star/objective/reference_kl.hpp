#pragma once
/// @file
/// @brief The KL regulariser to the reference policy (docs/math.md §5):
/// per element `(mu - mu_ref)^2 / (2 d_b^2)`, averaged per token, and its gradient in `mu`.

#include <cstdint>
#include <span>

#include "star/core/backend.hpp"
#include "star/core/ops.hpp"
#include "star/objective/sde_step.hpp"
#include "star/objective/token_reduction.hpp"

namespace star {

/// @brief Which scale `d` divides the squared mean difference of the KL term.
enum class kl_denominator {
  /// `2 std_k^2 = 2 s_k^2 |dt_k|`: the exact per-step Gaussian KL (Flow-GRPO paper and its
  /// code up to June 2025; betas 0.004 OCR / GenEval, 0.001 PickScore). The default.
  transition_variance,
  /// `2 s_k^2` (`s_k` = noise_scale): Flow-GRPO's code from July 2025, used with betas x10.
  noise_scale_squared,
};

namespace detail {

/// @brief `1 / d_b^2` per row, `[B, 1, 1, 1]`, times `factor`; throws unless `d_b > 0`.
template <tensor_backend B>
typename B::tensor kl_inverse_variance(const B& be,
                                       std::span<const sde_coefficients> coefficients,
                                       kl_denominator denominator, double factor) {
  const bool exact = denominator == kl_denominator::transition_variance;
  const auto scale = [exact](const sde_coefficients& c) {
    return exact ? c.transition_std : c.noise_scale;
  };
  require_positive(coefficients, exact ? "transition_std" : "noise_scale",
                   "for the KL term", scale);
  return per_row(be, coefficients, 4, [&](const sde_coefficients& c) {
    return factor / (scale(c) * scale(c));
  });  // [B, 1, 1, 1]
}

/// @brief Checks `mu` and `mu_ref` and returns the token grid.
template <tensor_backend B>
latent_token_grid require_kl_inputs(const B& be, const typename B::tensor& mu,
                                    const typename B::tensor& mu_ref,
                                    std::span<const sde_coefficients> coefficients,
                                    std::int64_t patch) {
  const shape latent = be.shape_of(mu);
  const auto grid = token_grid_of("mu", latent, patch);
  require_coefficients(coefficients, grid.batch);
  require_shape("mu_ref", be.shape_of(mu_ref), latent, "[B, C, H, W] like mu");
  return grid;
}

}  // namespace detail

/// @brief The per-token KL to the reference policy: the mean over token `n`'s `C P P`
/// elements of `(mu - mu_ref)^2 / (2 d_b^2)`. Differentiable in `mu`; `mu_ref` is data.
/// @param be           the backend
/// @param mu           [B, C, H, W] policy transition means
/// @param mu_ref       [B, C, H, W] reference-policy (adapter disabled) transition means
/// @param coefficients [B] step coefficients of the rows
/// @param patch        `P`, dividing `H` and `W`
/// @param denominator  which `d` (default: the exact Gaussian KL)
/// @return [B, N]
template <reduction_backend B>
  requires elementwise_backend<B> && layout_backend<B>
typename B::tensor per_token_kl(const B& be, const typename B::tensor& mu,
                                const typename B::tensor& mu_ref,
                                std::span<const sde_coefficients> coefficients,
                                std::int64_t patch,
                                kl_denominator denominator = kl_denominator::transition_variance) {
  detail::require_kl_inputs(be, mu, mu_ref, coefficients, patch);
  const auto half_precision =
      detail::kl_inverse_variance(be, coefficients, denominator, 0.5);  // [B, 1, 1, 1]
  const auto difference = be.sub(mu, mu_ref);                            // [B, C, H, W]
  const auto kl = be.mul(ops::square(be, difference), half_precision);   // [B, C, H, W]
  return per_token_mean(be, kl, patch);                                  // [B, N]
}

/// @brief The gradient with respect to `mu` of `sum_{b, n} d_kl(b, n) * kl(b, n)`:
/// `(mu - mu_ref) / d_b^2 * d_kl(b, n(i, j)) / (C P P)` per element.
/// @param be           the backend
/// @param d_kl         [B, N] the gradient with respect to the per-token KL
/// @param mu           [B, C, H, W] policy transition means
/// @param mu_ref       [B, C, H, W] reference-policy transition means
/// @param coefficients [B] step coefficients of the rows
/// @param patch        `P`, dividing `H` and `W`
/// @param denominator  the `d` that `per_token_kl` used
/// @return [B, C, H, W]
template <elementwise_backend B>
  requires layout_backend<B>
typename B::tensor per_token_kl_vjp(const B& be, const typename B::tensor& d_kl,
                                    const typename B::tensor& mu,
                                    const typename B::tensor& mu_ref,
                                    std::span<const sde_coefficients> coefficients,
                                    std::int64_t patch,
                                    kl_denominator denominator =
                                        kl_denominator::transition_variance) {
  const auto grid = detail::require_kl_inputs(be, mu, mu_ref, coefficients, patch);
  require_shape("d_kl", be.shape_of(d_kl), {grid.batch, grid.tokens()}, "[B, N]");
  const double per_element = 1.0 / static_cast<double>(grid.elements_per_token());
  const auto precision =
      detail::kl_inverse_variance(be, coefficients, denominator, per_element);  // [B, 1, 1, 1]
  const auto slope = be.mul(be.sub(mu, mu_ref), precision);  // [B, C, H, W]
  return scale_by_token(be, slope, d_kl, patch);             // [B, C, H, W]
}

}  // namespace star
