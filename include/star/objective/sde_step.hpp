#pragma once
/// @file
/// @brief The Flow-GRPO SDE step over a batch of latents whose rows may be at different
/// denoising steps, and its per-element Gaussian log-density (docs/math.md §5).

#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/ops.hpp"
#include "star/objective/flow_schedule.hpp"

namespace star {

namespace detail {

/// @brief Throws unless there is one coefficient set per row of `rows` and all are finite.
inline void require_coefficients(std::span<const sde_coefficients> coefficients,
                                 std::int64_t rows) {
  if (static_cast<std::int64_t>(coefficients.size()) != rows)
    throw shape_error("coefficients: expected one sde_coefficients per row, B = " +
                      std::to_string(rows) + ", got " + std::to_string(coefficients.size()));
  for (std::size_t b = 0; b < coefficients.size(); ++b) {
    const auto& c = coefficients[b];
    if (!std::isfinite(c.coef_x) || !std::isfinite(c.coef_v) ||
        !std::isfinite(c.transition_std) || !std::isfinite(c.noise_scale))
      throw value_error("coefficients[" + std::to_string(b) +
                        "]: coef_x, coef_v, noise_scale and transition_std must be finite");
  }
}

/// @brief Throws `value_error` naming `field` unless `value(coefficients[b]) > 0` for every row.
template <class Value>
void require_positive(std::span<const sde_coefficients> coefficients, std::string_view field,
                      std::string_view why, Value value) {
  for (std::size_t b = 0; b < coefficients.size(); ++b)
    if (!(value(coefficients[b]) > 0.0))
      throw value_error("coefficients[" + std::to_string(b) + "]." + std::string(field) +
                        " must be > 0 " + std::string(why) + ", got " +
                        std::to_string(value(coefficients[b])));
}

/// @brief `value(coefficients[b])` for every row `b`, shaped `[B, 1, ..., 1]` with `rank` axes
/// so that it broadcasts over a row.
template <tensor_backend B, class Value>
typename B::tensor per_row(const B& be, std::span<const sde_coefficients> coefficients,
                           std::size_t rank, Value value) {
  std::vector<double> values;
  values.reserve(coefficients.size());
  for (const auto& c : coefficients) values.push_back(value(c));
  shape row_shape(rank, 1);
  row_shape[0] = static_cast<std::int64_t>(values.size());
  return be.from_host(values, row_shape);  // [B, 1, ..., 1]
}

/// @brief Checks a latent argument `[B, C, H, W]` and the coefficients of its rows.
inline void require_latent(std::string_view arg, const shape& latent,
                           std::span<const sde_coefficients> coefficients) {
  require_rank(arg, latent, 4, "[B, C, H, W]");
  require_coefficients(coefficients, latent[0]);
}

}  // namespace detail

/// @brief `mu`, the mean of the SDE transition: `mu = coef_x * x + coef_v * v`, row `b` with
/// `coefficients[b]`. Differentiable in `x` and `v`.
/// @param be           the backend
/// @param x            [B, C, H, W] latents `x_k`
/// @param v            [B, C, H, W] velocity predictions (CFG-combined)
/// @param coefficients [B] the step coefficients of each row (`flow_grpo_sde_coefficients`)
/// @return [B, C, H, W]
template <elementwise_backend B>
typename B::tensor sde_mean(const B& be, const typename B::tensor& x,
                            const typename B::tensor& v,
                            std::span<const sde_coefficients> coefficients) {
  const shape latent = be.shape_of(x);
  detail::require_latent("x", latent, coefficients);
  require_shape("v", be.shape_of(v), latent, "[B, C, H, W] like x");
  const auto coef_x =
      detail::per_row(be, coefficients, 4, [](const auto& c) { return c.coef_x; });  // [B, 1, 1, 1]
  const auto coef_v =
      detail::per_row(be, coefficients, 4, [](const auto& c) { return c.coef_v; });  // [B, 1, 1, 1]
  return be.add(be.mul(x, coef_x), be.mul(v, coef_v));  // [B, C, H, W]
}

/// @brief The next latent `x_{k+1} = mu + transition_std * eps`.
/// @param be           the backend
/// @param mu           [B, C, H, W] transition means
/// @param eps          [B, C, H, W] standard normal noise
/// @param coefficients [B] step coefficients; `transition_std >= 0` (0: a deterministic step)
/// @return [B, C, H, W]
template <elementwise_backend B>
typename B::tensor sde_sample(const B& be, const typename B::tensor& mu,
                              const typename B::tensor& eps,
                              std::span<const sde_coefficients> coefficients) {
  const shape latent = be.shape_of(mu);
  detail::require_latent("mu", latent, coefficients);
  require_shape("eps", be.shape_of(eps), latent, "[B, C, H, W] like mu");
  for (std::size_t b = 0; b < coefficients.size(); ++b)
    if (coefficients[b].transition_std < 0.0)
      throw value_error("coefficients[" + std::to_string(b) +
                        "].transition_std must be >= 0, got " +
                        std::to_string(coefficients[b].transition_std));
  const auto std_dev = detail::per_row(be, coefficients, 4, [](const auto& c) {
    return c.transition_std;
  });  // [B, 1, 1, 1]
  return be.add(mu, be.mul(eps, std_dev));  // [B, C, H, W]
}

/// @brief The outputs of one SDE step.
template <class Tensor>
struct sde_step_result {
  Tensor mean;  ///< [B, C, H, W] `mu`
  Tensor next;  ///< [B, C, H, W] `x_{k+1}`
};

/// @brief One Flow-GRPO SDE step `x_k -> x_{k+1}` with the noise given: `sde_mean` then
/// `sde_sample`.
/// @param be           the backend
/// @param x            [B, C, H, W] latents `x_k`
/// @param v            [B, C, H, W] velocity predictions
/// @param eps          [B, C, H, W] standard normal noise
/// @param coefficients [B] step coefficients, one per row (rows may be at different steps)
template <elementwise_backend B>
sde_step_result<typename B::tensor> sde_step(const B& be, const typename B::tensor& x,
                                             const typename B::tensor& v,
                                             const typename B::tensor& eps,
                                             std::span<const sde_coefficients> coefficients) {
  auto mu = sde_mean(be, x, v, coefficients);         // [B, C, H, W]
  auto next = sde_sample(be, mu, eps, coefficients);  // [B, C, H, W]
  return {std::move(mu), std::move(next)};
}

/// @brief The per-element Gaussian log-density of the transition,
/// `-(x_next - mu)^2 / (2 std^2) - log(std) - log(sqrt(2 pi))`, `std = transition_std` of the
/// row. Differentiable in `mu`; `x_next` is data (pass a stored tensor, not one whose graph
/// leads back to `mu`: the backend interface has no detach).
/// @param be           the backend
/// @param x_next       [B, C, H, W] the sampled next latents
/// @param mu           [B, C, H, W] transition means
/// @param coefficients [B] step coefficients; `transition_std > 0`
/// @return [B, C, H, W]
template <elementwise_backend B>
typename B::tensor gaussian_log_density(const B& be, const typename B::tensor& x_next,
                                        const typename B::tensor& mu,
                                        std::span<const sde_coefficients> coefficients) {
  const shape latent = be.shape_of(mu);
  detail::require_latent("mu", latent, coefficients);
  require_shape("x_next", be.shape_of(x_next), latent, "[B, C, H, W] like mu");
  detail::require_positive(coefficients, "transition_std", "for a log-density",
                           [](const auto& c) { return c.transition_std; });
  const auto neg_half_precision = detail::per_row(be, coefficients, 4, [](const auto& c) {
    return -0.5 / (c.transition_std * c.transition_std);
  });  // [B, 1, 1, 1]
  const auto log_normaliser = detail::per_row(be, coefficients, 4, [](const auto& c) {
    return -std::log(c.transition_std) - 0.5 * std::log(2.0 * std::numbers::pi);
  });  // [B, 1, 1, 1]
  const auto residual = be.sub(x_next, mu);                                      // [B, C, H, W]
  const auto quadratic = be.mul(ops::square(be, residual), neg_half_precision);  // [B, C, H, W]
  return be.add(quadratic, log_normaliser);                                      // [B, C, H, W]
}

}  // namespace star
