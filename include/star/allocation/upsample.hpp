#pragma once
/// @file
/// @brief Token-grid values to the latent grid (docs/math.md §4, step 5).

#include <cstdint>
#include <string>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"

namespace star {

/// @brief Repeats each token's value over the `P x P` latent cells it covers
/// (token `n = w * row + col` covers latent rows `P row .. P row + P - 1` and the same
/// columns), by a reshape and a broadcast multiply. Means over the grid are preserved.
/// @param be           the backend
/// @param token_values [B, h*w] per-token values (e.g. `W` or the spatial advantage)
/// @param grid_h       `h` >= 1
/// @param grid_w       `w` >= 1
/// @param patch        `P` >= 1 (SD3: 2)
/// @return             [B, h*P, w*P]
template <elementwise_backend B>
  requires layout_backend<B>
typename B::tensor upsample_to_latent(const B& be, const typename B::tensor& token_values,
                                      std::int64_t grid_h, std::int64_t grid_w,
                                      std::int64_t patch) {
  if (grid_h < 1 || grid_w < 1)
    throw option_error("upsample_to_latent: grid h x w must be positive, got " +
                       std::to_string(grid_h) + " x " + std::to_string(grid_w));
  if (patch < 1)
    throw option_error("upsample_to_latent: patch must be >= 1, got " + std::to_string(patch));
  const shape dims = be.shape_of(token_values);
  require_rank("token_values", dims, 2, "[B, h*w]");
  require_shape("token_values", dims, {dims[0], grid_h * grid_w}, "[B, h*w]");
  const std::int64_t rows = dims[0];
  const auto tokens = be.reshape(token_values, {rows, grid_h, 1, grid_w, 1});  // [B, h, 1, w, 1]
  const auto cells = be.mul(tokens, be.full({1, 1, patch, 1, patch}, 1.0));   // [B, h, P, w, P]
  return be.reshape(cells, {rows, grid_h * patch, grid_w * patch});            // [B, h*P, w*P]
}

}  // namespace star
