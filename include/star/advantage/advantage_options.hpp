#pragma once
/// @file
/// @brief Options of the group-relative advantage (docs/math.md §1).

#include <cmath>
#include <string>

#include "star/core/error.hpp"

namespace star {

/// @brief Which rewards the advantage's standard deviation is taken over.
enum class std_scope {
  global,     ///< all rewards of the epoch across all ranks (Flow-GRPO's `global_std = True`)
  per_group,  ///< the rewards of the sample's own group
};

/// @brief What to do with a NaN or infinite reward.
enum class nonfinite_policy {
  error,  ///< throw `star::value_error` naming the sample
  drop,   ///< give the sample advantage exactly 0 and leave it out of every statistic
};

/// @brief `A_g = clip((r_g - mean_group) / (std + eps_std), -clip_max, clip_max)`.
struct advantage_options {
  std_scope scope = std_scope::global;                ///< std over the epoch or the group
  double eps_std = 1e-4;                              ///< added to the std; finite, >= 0
  double clip_max = 5.0;                              ///< `A_max`, > 0 (+inf: no clipping)
  nonfinite_policy nonfinite = nonfinite_policy::error;  ///< non-finite reward handling

  /// @brief Throws `star::option_error` naming the field and its allowed range.
  void validate() const {
    if (scope != std_scope::global && scope != std_scope::per_group)
      throw option_error("advantage_options.scope: expected std_scope::global or per_group");
    if (!(eps_std >= 0.0) || !std::isfinite(eps_std))
      throw option_error("advantage_options.eps_std: must be finite and >= 0, got " +
                         std::to_string(eps_std));
    if (!(clip_max > 0.0))
      throw option_error("advantage_options.clip_max (A_max): must be > 0, got " +
                         std::to_string(clip_max));
    if (nonfinite != nonfinite_policy::error && nonfinite != nonfinite_policy::drop)
      throw option_error("advantage_options.nonfinite: expected nonfinite_policy::error or drop");
  }
};

}  // namespace star
