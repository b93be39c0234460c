#pragma once
/// @file
/// @brief Options of the spatio-temporal allocation (docs/math.md §4).

#include <cmath>
#include <optional>
#include <string>

#include "star/core/error.hpp"

namespace star {

/// @brief How the mixing weight `lambda_k` of `q = (1 - lambda) m + lambda / N` is chosen
/// (0: the sharpened map alone, 1: uniform, i.e. Flow-GRPO).
enum class mixing_schedule {
  constant,  ///< `lambda` at every step
  linear,    ///< `lambda_start` at step 0 to `lambda_end` at step K-1, linear in `k`
  cosine,    ///< same endpoints, half-cosine ease (flat at both ends)
  entropy,   ///< per rollout and step: the normalised spatial entropy `H(m) / log N`
};

/// @brief The knobs of §4, with the defaults of docs/math.md.
///
/// `lambda_start = 1`, `lambda_end = 0.5` (used by `linear` and `cosine`): at step 0 the latent
/// is pure noise (`sigma = 1`), so the attention maps of the first steps describe the noise
/// rather than the image and the allocation starts uniform (exactly Flow-GRPO); as the layout
/// forms, the maps become reliable and the schedule reaches the `constant` default 0.5 at the
/// last step. With `lambda >= 0.5` every region keeps at least half the uniform weight
/// (`W >= lambda`), so no region's update is switched off.
struct allocation_options {
  double tau = 1.0;  ///< sharpening temperature, finite and > 0 (`m ∝ R^{1/tau}`)
  mixing_schedule schedule = mixing_schedule::constant;  ///< how `lambda_k` is chosen
  double lambda = 0.5;        ///< `constant` schedule, in [0, 1]
  double lambda_start = 1.0;  ///< `linear` / `cosine` value at step 0, in [0, 1]
  double lambda_end = 0.5;    ///< `linear` / `cosine` value at step K-1, in [0, 1]
  std::optional<double> w_max;  ///< cap `W <= w_max` (unset: off); finite and >= 1 when set

  /// @brief Throws `option_error` naming the field that is out of range.
  void validate() const {
    require_valid_tau(tau, "allocation_options.tau");
    if (schedule != mixing_schedule::constant && schedule != mixing_schedule::linear &&
        schedule != mixing_schedule::cosine && schedule != mixing_schedule::entropy)
      throw option_error(
          "allocation_options.schedule: expected constant, linear, cosine or entropy");
    require_unit_interval(lambda, "allocation_options.lambda");
    require_unit_interval(lambda_start, "allocation_options.lambda_start");
    require_unit_interval(lambda_end, "allocation_options.lambda_end");
    if (w_max) require_valid_cap(*w_max, "allocation_options.w_max");
  }

  /// @brief Throws `option_error` naming `field` unless `tau` is finite and > 0.
  static void require_valid_tau(double tau, const std::string& field) {
    if (!(std::isfinite(tau) && tau > 0.0))
      throw option_error(field + ": expected a finite value > 0, got " + std::to_string(tau));
  }

  /// @brief Throws `option_error` naming `field` unless `w_max` is finite and >= 1.
  static void require_valid_cap(double w_max, const std::string& field) {
    if (!(std::isfinite(w_max) && w_max >= 1.0))
      throw option_error(field + ": expected a finite value >= 1 (mean W is 1), got " +
                         std::to_string(w_max));
  }

 private:
  static void require_unit_interval(double value, const std::string& field) {
    if (!(value >= 0.0 && value <= 1.0))
      throw option_error(field + ": expected a value in [0, 1], got " + std::to_string(value));
  }
};

}  // namespace star
