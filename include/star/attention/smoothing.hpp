#pragma once
/// @file
/// @brief Optional Gaussian smoothing of relevance maps on the `h x w` token grid.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "star/core/token_layout.hpp"

namespace star {

/// @brief The row-stochastic Gaussian blur matrix of one grid axis, row-major [extent, extent]:
/// `G[i][j] ∝ exp(-(i - j)^2 / (2 sigma^2))` for `|i - j| <= ceil(3 sigma)`, else 0, each row
/// renormalised to sum 1 (so a constant map stays constant at the borders too).
/// @param extent  the axis length, >= 1
/// @param sigma   the standard deviation in tokens, > 0
inline std::vector<double> gaussian_blur_matrix(std::int64_t extent, double sigma) {
  if (extent < 1)
    throw option_error("gaussian_blur_matrix: extent must be >= 1, got " + std::to_string(extent));
  if (!(std::isfinite(sigma) && sigma > 0.0))
    throw option_error("gaussian_blur_matrix: sigma must be finite and > 0, got " +
                       detail::printed(sigma));
  // ceil(3 sigma) in double, clamped to the largest distance on the axis before the cast (a
  // huge sigma's radius exceeds any int64).
  const auto radius = static_cast<std::int64_t>(
      std::min(std::ceil(3.0 * sigma), static_cast<double>(extent - 1)));
  std::vector<double> matrix(static_cast<std::size_t>(extent * extent), 0.0);
  for (std::int64_t i = 0; i < extent; ++i) {
    double row_sum = 0.0;
    for (std::int64_t j = 0; j < extent; ++j) {
      if (std::abs(i - j) > radius) continue;
      // exp(-(d / sigma)^2 / 2), not exp(-d^2 / (2 sigma^2)): sigma^2 may underflow to 0, but
      // d = 0 gives exactly 1, so every row has mass >= 1 (a tiny sigma gives the identity).
      const double scaled = static_cast<double>(i - j) / sigma;
      const double weight = std::exp(-0.5 * scaled * scaled);
      matrix[static_cast<std::size_t>(i * extent + j)] = weight;
      row_sum += weight;
    }
    for (std::int64_t j = 0; j < extent; ++j)
      matrix[static_cast<std::size_t>(i * extent + j)] /= row_sum;
  }
  return matrix;
}

/// @brief Separable Gaussian smoothing of maps on the `layout.grid_h x layout.grid_w` grid,
/// as two matrix products `G_h X G_w^T`. `smooth_sigma == 0` returns `map` unchanged.
/// @param be            the backend
/// @param map           [B, N] maps over the image tokens (row-major grid, `n = w * row + col`)
/// @param layout        gives the grid `grid_h x grid_w`, with `N = grid_h * grid_w`
/// @param smooth_sigma  standard deviation in tokens; 0 = off; finite and >= 0
/// @return              [B, N]
template <complete_backend B>
typename B::tensor smooth_on_grid(const B& be, const typename B::tensor& map,
                                  const token_layout& layout, double smooth_sigma) {
  if (!(std::isfinite(smooth_sigma) && smooth_sigma >= 0.0))
    throw option_error("smooth_sigma: expected a finite value >= 0 (0 = off), got " +
                       detail::printed(smooth_sigma));
  layout.validate();
  const shape map_shape = be.shape_of(map);
  require_rank("map", map_shape, 2, "[B, N]");
  require_shape("map", map_shape, {map_shape[0], layout.image_tokens()}, "[B, N]");
  if (smooth_sigma == 0.0) return map;
  const std::int64_t h = layout.grid_h, w = layout.grid_w;
  const auto blur_rows = be.from_host(gaussian_blur_matrix(h, smooth_sigma), {h, h});  // [h, h]
  const auto blur_cols = be.from_host(gaussian_blur_matrix(w, smooth_sigma), {w, w});  // [w, w]
  const auto blur_cols_t = be.permute(blur_cols, {1, 0});                              // [w, w]
  const auto grid = be.reshape(map, {map_shape[0], h, w});                             // [B, h, w]
  const auto smoothed = be.matmul(be.matmul(blur_rows, grid), blur_cols_t);            // [B, h, w]
  return be.reshape(smoothed, map_shape);                                              // [B, N]
}

}  // namespace star
