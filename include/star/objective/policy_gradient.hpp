#pragma once
/// @file
/// @brief The analytic gradient of `spatial_policy_objective`, for backends without autograd:
/// with respect to the per-token log-probabilities `ell` and the per-token KL, and chained
/// through the per-token mean and the Gaussian log-density down to the policy mean `mu`.

#include <cstdint>
#include <optional>
#include <span>
#include <utility>

#include "star/core/backend.hpp"
#include "star/objective/policy_objective.hpp"
#include "star/objective/reference_kl.hpp"
#include "star/objective/token_log_prob.hpp"

namespace star {

/// @brief The gradient of the total loss with respect to the objective's differentiable inputs.
template <class Tensor>
struct policy_gradient {
  Tensor log_prob;           ///< [R, N] `d loss / d ell`
  std::optional<Tensor> kl;  ///< [R, N] `d loss / d kl`; present when the inputs have `kl`
};

namespace detail {

/// @brief `d loss / d kl` [R, N] = `beta / (R N)` times the KL weights; absent without a KL.
template <complete_backend B>
std::optional<typename B::tensor> kl_gradient(const B& be,
                                              const policy_objective_inputs<typename B::tensor>& in,
                                              const policy_objective_options& options,
                                              const shape& tokens) {
  if (!in.kl) return std::nullopt;
  const double scale = options.beta / static_cast<double>(numel(tokens));
  return be.mul(kl_spatial_weights(be, in, options, tokens), scale);  // [R, N]
}

}  // namespace detail

/// @brief `d loss / d ell` and `d loss / d kl` of `spatial_policy_objective(be, in, options)`,
/// in backend ops only (the composite path; `spatial_policy_gradient` runs a backend's fused
/// kernel when it has one). Per ratio entry the loss term has slope `-Â rho` in `log rho`
/// where the clip does not act, 0 where it does (at `rho = 1 +- eps` exactly, the unclipped
/// slope); the scalar modes pool it back to tokens with their row weights `q`. Throws like
/// `spatial_policy_objective`.
template <complete_backend B>
policy_gradient<typename B::tensor> spatial_policy_gradient_composite(
    const B& be, const policy_objective_inputs<typename B::tensor>& in,
    const policy_objective_options& options = {}) {
  const shape tokens = detail::require_objective_inputs(be, in, options);
  const auto terms = detail::clipped_ratios(be, in, options, tokens);
  const auto clip_acts = be.greater(terms.clipped_loss, terms.unclipped_loss);  // like log_ratio
  const auto passes = be.add(ops::neg(be, clip_acts), 1.0);                     // like log_ratio
  const auto entries = static_cast<double>(numel(be.shape_of(terms.log_ratio)));
  const auto slope = be.mul(terms.unclipped_loss, passes);                      // like log_ratio
  const auto d_log_ratio = be.mul(slope, 1.0 / entries);                       // like log_ratio

  policy_gradient<typename B::tensor> gradient{
      terms.row_weights
          ? be.mul(be.reshape(d_log_ratio, {tokens[0], 1}), *terms.row_weights)  // [R, N]
          : d_log_ratio,                                                         // [R, N]
      detail::kl_gradient(be, in, options, tokens)};
  return gradient;
}

/// @brief `spatial_policy_gradient_composite`, with `d loss / d ell` from the backend's fused
/// kernel when it has one (`fused_policy_gradient_backend`); inputs that are not finite take
/// the composite path, so every error is the composite's.
template <complete_backend B>
policy_gradient<typename B::tensor> spatial_policy_gradient(
    const B& be, const policy_objective_inputs<typename B::tensor>& in,
    const policy_objective_options& options = {}) {
  if constexpr (fused_policy_gradient_backend<B>) {
    const shape tokens = detail::require_objective_shapes(be, in, options);
    if (auto d_log_prob = be.fused_policy_log_prob_gradient(in, options))
      return {std::move(*d_log_prob), detail::kl_gradient(be, in, options, tokens)};
  }
  return spatial_policy_gradient_composite(be, in, options);
}

/// @brief `d loss / d mu`: the gradient from `spatial_policy_gradient` chained through
/// `per_token_log_prob` and, when it has a KL part, `per_token_kl`. Rows `R` of the objective
/// are the batch rows `B` of the latents.
/// @param be           the backend
/// @param gradient     from `spatial_policy_gradient`
/// @param x_next       [B, C, H, W] the sampled next latents
/// @param mu           [B, C, H, W] policy transition means
/// @param mu_ref       [B, C, H, W] reference transition means; required when `gradient.kl`
/// @param coefficients [B] step coefficients of the rows
/// @param patch        `P`, dividing `H` and `W`
/// @param denominator  the `d` that `per_token_kl` used
/// @return [B, C, H, W]
template <complete_backend B>
typename B::tensor spatial_policy_mean_gradient(
    const B& be, const policy_gradient<typename B::tensor>& gradient,
    const typename B::tensor& x_next, const typename B::tensor& mu,
    const std::optional<typename B::tensor>& mu_ref,
    std::span<const sde_coefficients> coefficients, std::int64_t patch,
    kl_denominator denominator = kl_denominator::transition_variance) {
  const auto d_mu = per_token_log_prob_vjp(be, gradient.log_prob, x_next, mu, coefficients,
                                           patch);  // [B, C, H, W]
  if (!gradient.kl) return d_mu;
  if (!mu_ref)
    throw option_error("mu_ref: the gradient has a KL part, which needs mu_ref [B, C, H, W]");
  const auto d_mu_kl = per_token_kl_vjp(be, *gradient.kl, mu, *mu_ref, coefficients, patch,
                                        denominator);  // [B, C, H, W]
  return be.add(d_mu, d_mu_kl);  // [B, C, H, W]
}

}  // namespace star
