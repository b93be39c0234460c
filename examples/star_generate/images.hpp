#pragma once
/// @file
/// @brief star-generate's image output: PNG files written atomically, and a word's attention
/// map drawn over its image as a blue-to-red heat colouring.

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace star::generate_cli {

/// @brief Writes `image` [3, H, W] in [0, 1] as an RGB PNG, atomically (`<path>.partial`,
/// renamed; removed on failure).
/// @throws star::files::file_write_error naming the file when it cannot be written
void write_png(const std::filesystem::path& path, const at::Tensor& image);

/// @brief `image` [3, H, W] blended half and half with the heat colours of `map` [N] (the
/// `grid_h` x `grid_w` token grid), min-max normalised and bilinearly upsampled to H x W.
/// @return [3, H, W] on `image`'s device
at::Tensor overlay(const at::Tensor& image, const at::Tensor& map, std::int64_t grid_h,
                   std::int64_t grid_w);

/// @brief `word` with every character other than an ASCII letter or digit replaced by `_`, for
/// file names.
std::string file_safe(const std::string& word);

}  // namespace star::generate_cli
