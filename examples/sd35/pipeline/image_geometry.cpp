#include "sd35/pipeline/image_geometry.hpp"

#include "sd35/mmdit/config.hpp"
#include "sd35/vae/config.hpp"

namespace star::sd35 {

std::optional<std::string> image_geometry::side_error(std::int64_t pixels) const {
  if (pixels >= token_pixels() && pixels <= max_side() && pixels % token_pixels() == 0)
    return std::nullopt;
  return "expected a multiple of " + std::to_string(token_pixels()) + " pixels in [" +
         std::to_string(token_pixels()) + ", " + std::to_string(max_side()) +
         "] (a token is vae scale " + std::to_string(vae_scale_factor) + " x patch size " +
         std::to_string(patch_size) + " pixels across, at most pos_embed_max_size " +
         std::to_string(pos_embed_max_size) + " tokens a side), got " + std::to_string(pixels);
}

image_geometry image_geometry::of(const sd35_model& model) {
  const auto& config = model.transformer->config();
  return {model.vae_scale_factor(), config.patch_size, config.pos_embed_max_size};
}

image_geometry image_geometry::from_folder(const std::filesystem::path& folder) {
  const auto transformer = transformer_config::from_file(folder / "transformer" / "config.json");
  const auto vae = vae_config::from_file(folder / "vae" / "config.json");
  return {vae.scale_factor(), transformer.patch_size, transformer.pos_embed_max_size};
}

}  // namespace star::sd35
