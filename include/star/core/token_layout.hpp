#pragma once
/// @file
/// @brief Where image and text tokens sit in a joint attention sequence, never hard-coded.

#include <cstdint>
#include <string>
#include <vector>

#include "star/core/error.hpp"

namespace star {

/// @brief A contiguous run of text positions produced by one text encoder.
struct text_segment {
  std::string name;      ///< e.g. `"clip"`, `"t5"`
  std::int64_t length;   ///< positions in the text block, padding included
};

/// @brief The token layout of one joint attention: an `h x w` image grid (row-major,
/// `n = w * row + col`) and a text block made of segments, in either order.
struct token_layout {
  std::int64_t grid_h = 0;                 ///< image token rows `h`
  std::int64_t grid_w = 0;                 ///< image token columns `w`
  std::vector<text_segment> text_segments; ///< text block, in sequence order
  bool image_first = true;                 ///< diffusers SD3: image tokens, then text

  /// @brief `N = h * w`.
  std::int64_t image_tokens() const { return grid_h * grid_w; }
  /// @brief `L`, the sum of the segment lengths.
  std::int64_t text_tokens() const {
    std::int64_t total = 0;
    for (const auto& segment : text_segments) total += segment.length;
    return total;
  }
  /// @brief `T = N + L`.
  std::int64_t total_tokens() const { return image_tokens() + text_tokens(); }
  /// @brief Position of the first image token in the joint sequence.
  std::int64_t image_begin() const { return image_first ? 0 : text_tokens(); }
  /// @brief Position of the first text token in the joint sequence.
  std::int64_t text_begin() const { return image_first ? image_tokens() : 0; }
  /// @brief Offset of segment `index` inside the text block.
  std::int64_t segment_begin(std::size_t index) const {
    std::int64_t begin = 0;
    for (std::size_t i = 0; i < index && i < text_segments.size(); ++i)
      begin += text_segments[i].length;
    return begin;
  }

  /// @brief Throws `option_error` on a non-positive grid or an empty or negative segment.
  void validate() const {
    if (grid_h <= 0 || grid_w <= 0)
      throw option_error("token_layout: grid h x w must be positive, got " +
                         std::to_string(grid_h) + " x " + std::to_string(grid_w));
    if (text_segments.empty())
      throw option_error("token_layout: text_segments is empty (expected e.g. clip 77, t5 256)");
    for (const auto& segment : text_segments)
      if (segment.length <= 0)
        throw option_error("token_layout: text segment '" + segment.name +
                           "' has length " + std::to_string(segment.length) + ", expected > 0");
  }

  /// @brief The SD3 layout: image tokens first, then 77 CLIP positions and `t5_length` T5
  /// positions (256 by default; Flow-GRPO encodes 128).
  static token_layout sd3(std::int64_t grid_h, std::int64_t grid_w,
                          std::int64_t t5_length = 256) {
    return {grid_h, grid_w, {{"clip", 77}, {"t5", t5_length}}, true};
  }
};

}  // namespace star
