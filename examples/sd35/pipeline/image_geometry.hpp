#pragma once
/// @file
/// @brief The image sizes an SD3 model generates: each side a whole number of tokens, each token
/// `vae_scale_factor * patch_size` pixels across, at most `pos_embed_max_size` tokens (the side
/// of the denoiser's positional table). Known from a loaded model or from the two config files
/// alone, so that a command line can check a size before loading any weight.

#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>

#include "sd35/pipeline/model_folder.hpp"

namespace star::sd35 {

/// @brief What limits the image sides of one model.
struct image_geometry {
  std::int64_t vae_scale_factor = 8;     ///< image pixels per latent cell
  std::int64_t patch_size = 2;           ///< latent cells per token side
  std::int64_t pos_embed_max_size = 96;  ///< tokens per side at most

  /// @brief Image pixels per token side: `vae_scale_factor * patch_size` (the largest int64
  /// where that overflows: the configs bound neither factor).
  std::int64_t token_pixels() const { return saturated_product(vae_scale_factor, patch_size); }
  /// @brief The largest side in pixels: `token_pixels() * pos_embed_max_size`, saturated alike.
  std::int64_t max_side() const { return saturated_product(token_pixels(), pos_embed_max_size); }

  /// @brief Why `pixels` is no image side of this model (not a positive multiple of
  /// `token_pixels()` up to `max_side()`), stating the accepted sides; nothing when it is one.
  std::optional<std::string> side_error(std::int64_t pixels) const;

  /// @brief The geometry of a loaded model.
  static image_geometry of(const sd35_model& model);
  /// @brief The geometry of the diffusers folder `folder`, from `transformer/config.json` and
  /// `vae/config.json` only (no weight is read).
  /// @throws star::option_error naming the config file that is missing or malformed
  static image_geometry from_folder(const std::filesystem::path& folder);

 private:
  /// @brief `a * b` for `a, b >= 1`, or the largest int64 where that overflows.
  static std::int64_t saturated_product(std::int64_t a, std::int64_t b) {
    return a > std::numeric_limits<std::int64_t>::max() / b
               ? std::numeric_limits<std::int64_t>::max()
               : a * b;
  }
};

}  // namespace star::sd35
