#pragma once
/// @file
/// @brief The flow-matching sigma schedule (diffusers' FlowMatchEulerDiscreteScheduler with
/// a static shift) and the per-step coefficients of the Flow-GRPO SDE step.

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "star/core/error.hpp"

namespace star {

/// @brief The `steps + 1` sigmas of `FlowMatchEulerDiscreteScheduler(shift).set_timesteps(steps)`,
/// ending with the appended 0, rounded to float32 exactly as diffusers does (its lowest sigma is
/// shifted twice, so the last non-zero sigma at shift 3 is 0.008929).
/// @param steps           number of sampling steps, >= 1
/// @param shift           the static time shift (SD3.5: 3), in `[2^-24, FLT_MAX]` (about
///                        [6e-8, 3.4e38]), where the float32 shift of the scheduler is finite
/// @param train_timesteps the scheduler's training timesteps (1000)
inline std::vector<double> flow_match_sigmas(int steps, double shift = 3.0,
                                             int train_timesteps = 1000) {
  if (steps < 1)
    throw option_error("flow_match_sigmas: steps must be >= 1, got " + std::to_string(steps));
  // Above FLT_MAX the float32 shift is inf (inf / inf = NaN); below 2^-24, 1 + (shift - 1)
  // rounds to 0 in float32 (sigma_max = shift / 0 = inf).
  constexpr double min_shift = 0x1p-24, max_shift = std::numeric_limits<float>::max();
  if (!(shift >= min_shift && shift <= max_shift))
    throw option_error("flow_match_sigmas: shift must be in [2^-24, FLT_MAX] = [" +
                       detail::printed(min_shift) + ", " + detail::printed(max_shift) +
                       "] (the scheduler shifts in float32), got " + detail::printed(shift));
  if (train_timesteps < 2)
    throw option_error("flow_match_sigmas: train_timesteps must be >= 2, got " +
                       std::to_string(train_timesteps));
  // The scheduler's constructor works in float32: t / T, then the shift, for t = 1 and t = T.
  const auto shifted32 = [shift](float s) {
    const auto f = static_cast<float>(shift);
    return f * s / (1.0f + (f - 1.0f) * s);
  };
  const auto total = static_cast<float>(train_timesteps);
  const double sigma_max = shifted32(total / total);
  const double sigma_min = shifted32(1.0f / total);
  // set_timesteps works in float64, shifts again, and casts to float32.
  std::vector<double> sigmas(static_cast<std::size_t>(steps) + 1, 0.0);
  for (int i = 0; i < steps; ++i) {
    const double t_max = sigma_max * train_timesteps, t_min = sigma_min * train_timesteps;
    const double t = steps == 1 ? t_max : t_max + (t_min - t_max) * i / (steps - 1);
    const double s = t / train_timesteps;
    sigmas[static_cast<std::size_t>(i)] =
        static_cast<float>(shift * s / (1.0 + (shift - 1.0) * s));
  }
  return sigmas;
}

/// @brief The model timesteps `1000 * sigma` (float32 product, as diffusers), one per step.
inline std::vector<double> flow_match_timesteps(std::span<const double> sigmas,
                                                int train_timesteps = 1000) {
  std::vector<double> timesteps;
  for (std::size_t i = 0; i + 1 < sigmas.size(); ++i)
    timesteps.push_back(static_cast<float>(sigmas[i]) * static_cast<float>(train_timesteps));
  return timesteps;
}

/// @brief The scalars of one Flow-GRPO SDE step `x_k -> x_{k+1}`:
/// `mu = coef_x * x + coef_v * v`, `x_{k+1} = mu + transition_std * eps`.
struct sde_coefficients {
  double sigma = 0;           ///< `sigma_k`
  double sigma_next = 0;      ///< `sigma_{k+1}`
  double dt = 0;              ///< `sigma_{k+1} - sigma_k` (negative)
  double noise_scale = 0;     ///< `s_k = a * sqrt(sigma / (1 - sigma~))` (Flow-GRPO's std_dev_t)
  double transition_std = 0;  ///< `std_k = s_k * sqrt(|dt_k|)`
  double coef_x = 0;          ///< `1 + s^2 dt / (2 sigma)`
  double coef_v = 0;          ///< `(1 + s^2 (1 - sigma) / (2 sigma)) dt`
};

/// @brief Coefficients of step `step` of a sigma schedule, as Flow-GRPO computes them
/// (`sigma~ = sigma`, except `sigma == 1` where `sigma~ = sigmas[1]`).
/// @param sigmas      `[K + 1]` the schedule, decreasing, ending at 0
/// @param step        `k` in `[0, K)`
/// @param noise_level `a` (Flow-GRPO: 0.7), >= 0
inline sde_coefficients flow_grpo_sde_coefficients(std::span<const double> sigmas,
                                                   std::size_t step,
                                                   double noise_level = 0.7) {
  if (sigmas.size() < 2 || step + 1 >= sigmas.size())
    throw option_error("flow_grpo_sde_coefficients: step " + std::to_string(step) +
                       " needs sigmas[step + 1], but sigmas has " +
                       std::to_string(sigmas.size()) + " entries");
  if (!(noise_level >= 0.0) || !std::isfinite(noise_level))
    throw option_error("flow_grpo_sde_coefficients: noise_level must be finite and >= 0, got " +
                       detail::printed(noise_level));
  sde_coefficients c;
  c.sigma = sigmas[step];
  c.sigma_next = sigmas[step + 1];
  if (!(c.sigma > 0.0 && c.sigma <= 1.0 && c.sigma_next < c.sigma))
    throw option_error("flow_grpo_sde_coefficients: sigmas must decrease within (0, 1]; got "
                       "sigma " + detail::printed(c.sigma) + " then " +
                       detail::printed(c.sigma_next));
  c.dt = c.sigma_next - c.sigma;
  const double sigma_tilde = c.sigma == 1.0 ? sigmas[1] : c.sigma;
  c.noise_scale = noise_level * std::sqrt(c.sigma / (1.0 - sigma_tilde));
  c.transition_std = c.noise_scale * std::sqrt(-c.dt);
  const double s2 = c.noise_scale * c.noise_scale;
  c.coef_x = 1.0 + s2 * c.dt / (2.0 * c.sigma);
  c.coef_v = (1.0 + s2 * (1.0 - c.sigma) / (2.0 * c.sigma)) * c.dt;
  return c;
}

}  // namespace star
