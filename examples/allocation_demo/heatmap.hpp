#pragma once
// Shows allocation weights: as characters in the terminal, and as a tiled greyscale PGM image
// written atomically (star::files: a `.partial` file renamed into place, removed on failure).

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "files/atomic_file.hpp"

namespace demo {

/// Prints an h x w map with ten shades from its minimum to its maximum.
inline std::string ascii_heatmap(const std::vector<double>& values, std::int64_t h,
                                 std::int64_t w) {
  static const std::string shades = " .:-=+*#%@";
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  std::string out;
  for (std::int64_t r = 0; r < h; ++r) {
    for (std::int64_t c = 0; c < w; ++c) {
      const double x = values[static_cast<std::size_t>(r * w + c)];
      const double t = *hi > *lo ? (x - *lo) / (*hi - *lo) : 0.0;
      out += std::string(2, shades[static_cast<std::size_t>(std::min(9.0, t * 10.0))]);
    }
    out += '\n';
  }
  return out;
}

/// Writes tiles[i][j] (each h x w, scaled so 0 is black and `white` is white) as a binary PGM
/// with rows of tiles i and columns j, each cell enlarged `zoom` times.
/// @throws star::files::file_write_error naming the file when it cannot be written (an existing
///   `path` is then left as it was, and no partial file remains)
inline void write_pgm(const std::filesystem::path& path,
                      const std::vector<std::vector<std::vector<double>>>& tiles, std::int64_t h,
                      std::int64_t w, double white, std::int64_t zoom = 8) {
  const std::int64_t gap = 2, tile_rows = static_cast<std::int64_t>(tiles.size()),
                     tile_cols = static_cast<std::int64_t>(tiles.front().size());
  const std::int64_t width = tile_cols * (w * zoom + gap), height = tile_rows * (h * zoom + gap);
  std::vector<unsigned char> pixels(static_cast<std::size_t>(width * height), 255);
  for (std::int64_t i = 0; i < tile_rows; ++i)
    for (std::int64_t j = 0; j < tile_cols; ++j)
      for (std::int64_t y = 0; y < h * zoom; ++y)
        for (std::int64_t x = 0; x < w * zoom; ++x) {
          const double v = tiles[i][j][static_cast<std::size_t>((y / zoom) * w + x / zoom)];
          const auto shade = static_cast<unsigned char>(std::clamp(v / white, 0.0, 1.0) * 255.0);
          const std::int64_t row = i * (h * zoom + gap) + y, column = j * (w * zoom + gap) + x;
          pixels[static_cast<std::size_t>(row * width + column)] = shade;
        }
  star::files::write_stream_atomically(path, [&](std::ostream& out) {
    out << "P5\n" << width << ' ' << height << "\n255\n";
    out.write(reinterpret_cast<const char*>(pixels.data()),
              static_cast<std::streamsize>(pixels.size()));
  });
}

}  // namespace demo
