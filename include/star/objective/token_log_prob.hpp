#pragma once
/// @file
/// @brief Per-token log-probabilities of the SDE transition (docs/math.md §5):
/// `ell(b, n)` = the mean of the per-element Gaussian log-density over token `n`'s
/// `C * P * P` latent elements, and its analytic gradient with respect to `mu`.

#include <cstdint>
#include <span>

#include "star/core/backend.hpp"
#include "star/objective/sde_step.hpp"
#include "star/objective/token_reduction.hpp"

namespace star {

/// @brief `ell(b, n)`, the per-token mean log-density of `x_next` under `N(mu, std_b^2)`.
/// The mean of a row's per-token values is Flow-GRPO's per-sample log-probability.
/// Differentiable in `mu`; `x_next` is data.
/// @param be           the backend
/// @param x_next       [B, C, H, W] the sampled next latents
/// @param mu           [B, C, H, W] transition means
/// @param coefficients [B] step coefficients; `transition_std > 0`
/// @param patch        `P`, dividing `H` and `W`
/// @return [B, N]
template <reduction_backend B>
  requires elementwise_backend<B> && layout_backend<B>
typename B::tensor per_token_log_prob(const B& be, const typename B::tensor& x_next,
                                      const typename B::tensor& mu,
                                      std::span<const sde_coefficients> coefficients,
                                      std::int64_t patch) {
  token_grid_of("mu", be.shape_of(mu), patch);
  const auto log_density = gaussian_log_density(be, x_next, mu, coefficients);  // [B, C, H, W]
  return per_token_mean(be, log_density, patch);                                // [B, N]
}

/// @brief The gradient with respect to `mu` of `sum_{b, n} d_log_prob(b, n) * ell(b, n)`:
/// `(x_next - mu) / std_b^2 * d_log_prob(b, n(i, j)) / (C P P)` per element. Chains an
/// analytic gradient with respect to `ell` (`spatial_policy_gradient`) down to `mu`.
/// @param be           the backend
/// @param d_log_prob   [B, N] the gradient with respect to `ell`
/// @param x_next       [B, C, H, W] the sampled next latents
/// @param mu           [B, C, H, W] transition means
/// @param coefficients [B] step coefficients; `transition_std > 0`
/// @param patch        `P`, dividing `H` and `W`
/// @return [B, C, H, W]
template <elementwise_backend B>
  requires layout_backend<B>
typename B::tensor per_token_log_prob_vjp(const B& be, const typename B::tensor& d_log_prob,
                                          const typename B::tensor& x_next,
                                          const typename B::tensor& mu,
                                          std::span<const sde_coefficients> coefficients,
                                          std::int64_t patch) {
  const shape latent = be.shape_of(mu);
  const auto grid = token_grid_of("mu", latent, patch);
  detail::require_coefficients(coefficients, grid.batch);
  require_shape("x_next", be.shape_of(x_next), latent, "[B, C, H, W] like mu");
  require_shape("d_log_prob", be.shape_of(d_log_prob), {grid.batch, grid.tokens()}, "[B, N]");
  detail::require_positive(coefficients, "transition_std", "for a log-density",
                           [](const auto& c) { return c.transition_std; });
  const auto precision_per_element = detail::per_row(be, coefficients, 4, [&](const auto& c) {
    return 1.0 / (c.transition_std * c.transition_std *
                  static_cast<double>(grid.elements_per_token()));
  });                                                                   // [B, 1, 1, 1]
  const auto slope = be.mul(be.sub(x_next, mu), precision_per_element);  // [B, C, H, W]
  return scale_by_token(be, slope, d_log_prob, patch);                  // [B, C, H, W]
}

}  // namespace star
