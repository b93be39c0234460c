#include "images.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <cctype>
#include <vector>

#include "files/atomic_file.hpp"

namespace star::generate_cli {
namespace {

/// A blue-to-red heat colouring of `map` [H, W] in [0, 1]: [3, H, W].
at::Tensor heat_colours(const at::Tensor& map) {
  const auto red = (1.5 - (4.0 * map - 3.0).abs()).clamp(0, 1);    // [H, W]
  const auto green = (1.5 - (4.0 * map - 2.0).abs()).clamp(0, 1);  // [H, W]
  const auto blue = (1.5 - (4.0 * map - 1.0).abs()).clamp(0, 1);   // [H, W]
  return at::stack({red, green, blue}, 0);                         // [3, H, W]
}

}  // namespace

void write_png(const std::filesystem::path& path, const at::Tensor& image) {
  const auto pixels = (image.clamp(0, 1) * 255.0)
                          .round()
                          .to(at::kByte)
                          .permute({1, 2, 0})
                          .contiguous()
                          .cpu();  // [H, W, 3]
  const auto height = static_cast<int>(pixels.size(0));
  const auto width = static_cast<int>(pixels.size(1));
  star::files::write_file_atomically(path, [&](const std::filesystem::path& partial) {
    if (!stbi_write_png(partial.c_str(), width, height, 3, pixels.data_ptr<std::uint8_t>(),
                        width * 3))
      throw star::files::file_write_error("cannot write the PNG " + partial.string());
  });
}

at::Tensor overlay(const at::Tensor& image, const at::Tensor& map, std::int64_t grid_h,
                   std::int64_t grid_w) {
  const auto grid = map.to(image.device()).reshape({1, 1, grid_h, grid_w});  // [1, 1, h, w]
  const auto range = (grid.max() - grid.min()).clamp_min(1e-12);           // []
  const auto unit = (grid - grid.min()) / range;                           // [1, 1, h, w]
  const std::vector<std::int64_t> size{image.size(1), image.size(2)};
  const auto upsampled = at::upsample_bilinear2d(unit, at::IntArrayRef(size),
                                                 /*align_corners=*/false, c10::nullopt,
                                                 c10::nullopt)[0][0];  // [H, W]
  return 0.5 * image + 0.5 * heat_colours(upsampled);  // [3, H, W]
}

std::string file_safe(const std::string& word) {
  std::string out;
  for (const char c : word)
    out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

}  // namespace star::generate_cli
