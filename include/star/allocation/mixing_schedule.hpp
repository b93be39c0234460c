#pragma once
/// @file
/// @brief The mixing weight `lambda_k` per step (temporal adaptivity, docs/math.md §4).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>

#include "star/allocation/allocation_options.hpp"
#include "star/core/error.hpp"

namespace star {

/// @brief `H / log N`, the spatial entropy of a map over `N` cells scaled to [0, 1]
/// (1 for a uniform map, 0 for a one-hot map; 1 when `N == 1`, where both coincide).
/// @param entropy     `H(m)` in nats
/// @param image_tokens `N`, >= 1
inline double normalized_entropy(double entropy, std::int64_t image_tokens) {
  if (image_tokens < 1)
    throw option_error("normalized_entropy: image_tokens must be >= 1, got " +
                       std::to_string(image_tokens));
  if (image_tokens == 1) return 1.0;
  return entropy / std::log(static_cast<double>(image_tokens));
}

/// @brief `lambda_k` of `options.schedule` at step `step` of `num_steps`.
/// `linear`: `start + (end - start) t`; `cosine`: `end + (start - end) (1 + cos(pi t)) / 2`,
/// with `t = step / (num_steps - 1)` (0 when `num_steps == 1`); `entropy`: the map's
/// `normalized_entropy`, clamped to [0, 1].
/// @param options            validated here
/// @param step               `k` in `[0, num_steps)`
/// @param num_steps          `K` >= 1, the steps the schedule spans (e.g. the trained ones)
/// @param normalized_entropy the map's `H(m) / log N` (read by the `entropy` schedule only)
inline double mixing_lambda(const allocation_options& options, std::int64_t step,
                            std::int64_t num_steps, double normalized_entropy) {
  options.validate();
  if (num_steps < 1)
    throw option_error("mixing_lambda: num_steps must be >= 1, got " + std::to_string(num_steps));
  if (step < 0 || step >= num_steps)
    throw option_error("mixing_lambda: step must be in [0, " + std::to_string(num_steps) +
                       "), got " + std::to_string(step));
  const double t = num_steps == 1 ? 0.0
                                  : static_cast<double>(step) / static_cast<double>(num_steps - 1);
  const double start = options.lambda_start, end = options.lambda_end;
  switch (options.schedule) {
    case mixing_schedule::constant:
      return options.lambda;
    case mixing_schedule::linear:
      return start + (end - start) * t;
    case mixing_schedule::cosine:
      return end + (start - end) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
    case mixing_schedule::entropy:
      if (std::isnan(normalized_entropy))
        throw value_error("mixing_lambda: normalized_entropy is NaN");
      return std::clamp(normalized_entropy, 0.0, 1.0);
  }
  throw option_error("allocation_options.schedule: unknown schedule");
}

}  // namespace star
