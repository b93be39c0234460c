#pragma once
/// @file
/// @brief Options of attention-map extraction (docs/math.md §3).

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "star/core/error.hpp"

namespace star {

/// @brief Which attention the maps are read from.
enum class attention_direction {
  image_to_text,  ///< image query `n`, text key `j`, softmax over ALL keys (default)
  text_to_image,  ///< text query `j`, image key `n`, softmax over the IMAGE keys only
};

/// @brief How the attention probabilities are formed from the post-QK-norm `q`, `k`.
struct attention_options {
  /// Which attention the maps are read from; default `image_to_text`.
  attention_direction direction = attention_direction::image_to_text;
  /// Logit scale `s`; unset means `1 / sqrt(D)`. When set: finite and > 0.
  std::optional<double> scale = std::nullopt;
  /// Keys per chunk of the online log-sum-exp (memory `O(N * lse_key_chunk)`); >= 1.
  std::int64_t lse_key_chunk = 256;

  /// @brief Throws `option_error` naming the field that is out of range.
  void validate() const {
    if (direction != attention_direction::image_to_text &&
        direction != attention_direction::text_to_image)
      throw option_error("attention_options.direction: expected image_to_text or text_to_image");
    if (scale && !(std::isfinite(*scale) && *scale > 0.0))
      throw option_error("attention_options.scale: expected a finite value > 0, got " +
                         std::to_string(*scale));
    if (lse_key_chunk < 1)
      throw option_error("attention_options.lse_key_chunk: expected >= 1, got " +
                         std::to_string(lse_key_chunk));
  }

  /// @brief The logit scale for head dimension `head_dim`: `scale`, or `1 / sqrt(head_dim)`.
  double scale_for(std::int64_t head_dim) const {
    return scale ? *scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
  }
};

namespace attention_detail {

/// @brief Throws `option_error` unless `options.direction` is `image_to_text`, which is the
/// only direction `entry` computes.
inline void require_image_to_text(const attention_options& options, const std::string& entry) {
  if (options.direction != attention_direction::image_to_text)
    throw option_error("attention_options.direction: " + entry +
                       " computes image_to_text only, got text_to_image");
}

}  // namespace attention_detail
}  // namespace star
