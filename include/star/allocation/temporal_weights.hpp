#pragma once
/// @file
/// @brief The per-step temporal weights `gamma_k` (docs/math.md §4).

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "star/core/error.hpp"
#include "star/objective/flow_schedule.hpp"

namespace star {

/// @brief How the steps are weighted against each other.
enum class temporal_weighting {
  uniform,      ///< `gamma_k = 1`
  noise_aware,  ///< `gamma_k ∝ s_k sqrt(|dt_k|)`, the SDE transition std (TempFlow-GRPO)
};

/// @brief Options of the temporal weights.
struct temporal_weight_options {
  temporal_weighting weighting = temporal_weighting::uniform;  ///< which weights
  double noise_level = 0.7;  ///< Flow-GRPO's `a` in `s_k`; finite and > 0 (noise_aware)

  /// @brief Throws `option_error` naming the field that is out of range.
  void validate() const {
    if (weighting != temporal_weighting::uniform && weighting != temporal_weighting::noise_aware)
      throw option_error("temporal_weight_options.weighting: expected uniform or noise_aware");
    if (!(std::isfinite(noise_level) && noise_level > 0.0))
      throw option_error("temporal_weight_options.noise_level: expected a finite value > 0, got " +
                         std::to_string(noise_level));
  }
};

/// @brief `gamma` for each trained step, normalised to mean 1 over the trained steps.
/// `noise_aware` uses `transition_std` of `flow_grpo_sde_coefficients`.
/// @param options       validated here
/// @param sigmas        [K + 1] the sampling schedule (e.g. `flow_match_sigmas(10)`)
/// @param trained_steps the step indices that are trained, distinct, each in `[0, K)`
///                      (Flow-GRPO: 0..8 of 10)
/// @return              one `gamma` per entry of `trained_steps`, in the same order
inline std::vector<double> temporal_weights(const temporal_weight_options& options,
                                            std::span<const double> sigmas,
                                            std::span<const std::size_t> trained_steps) {
  options.validate();
  if (sigmas.size() < 2)
    throw option_error("temporal_weights: sigmas must hold K + 1 >= 2 values, got " +
                       std::to_string(sigmas.size()));
  if (trained_steps.empty()) throw option_error("temporal_weights: trained_steps is empty");
  const std::size_t steps = sigmas.size() - 1;
  for (std::size_t i = 0; i < trained_steps.size(); ++i) {
    if (trained_steps[i] >= steps)
      throw option_error("temporal_weights: trained_steps[" + std::to_string(i) + "] = " +
                         std::to_string(trained_steps[i]) + " is outside [0, " +
                         std::to_string(steps) + ")");
    for (std::size_t j = 0; j < i; ++j)
      if (trained_steps[j] == trained_steps[i])
        throw option_error("temporal_weights: trained_steps lists step " +
                           std::to_string(trained_steps[i]) + " twice");
  }

  std::vector<double> gamma(trained_steps.size(), 1.0);
  if (options.weighting == temporal_weighting::uniform) return gamma;
  double total = 0.0;
  for (std::size_t i = 0; i < trained_steps.size(); ++i) {
    gamma[i] =
        flow_grpo_sde_coefficients(sigmas, trained_steps[i], options.noise_level).transition_std;
    total += gamma[i];
  }
  const double mean = total / static_cast<double>(gamma.size());  // > 0: each std is > 0
  for (double& g : gamma) g /= mean;
  return gamma;
}

}  // namespace star
