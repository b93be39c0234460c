#pragma once
/// @file
/// @brief Latent cells and image tokens: the mean over the `C * P * P` latent elements under
/// each token (`[B, C, H, W] -> [B, N]`, token `n = w * row + col`) and its adjoint.

#include <cstdint>
#include <string>
#include <string_view>

#include "star/core/backend.hpp"
#include "star/core/ops.hpp"

namespace star {

/// @brief How a latent `[B, C, H, W]` splits into `h x w` tokens of `P x P` cells.
struct latent_token_grid {
  std::int64_t batch = 0;     ///< `B`
  std::int64_t channels = 0;  ///< `C`
  std::int64_t rows = 0;      ///< `h = H / P`
  std::int64_t cols = 0;      ///< `w = W / P`
  std::int64_t patch = 0;     ///< `P`

  /// @brief `N = h * w`.
  std::int64_t tokens() const { return rows * cols; }
  /// @brief `C * P * P`, the latent elements under one token.
  std::int64_t elements_per_token() const { return channels * patch * patch; }
  /// @brief `[B, C, h, P, w, P]`, the latent with each token's cells on their own axes.
  shape patch_view() const { return {batch, channels, rows, patch, cols, patch}; }
  /// @brief `[B, 1, h, 1, w, 1]`, a per-token value broadcast over its cells.
  shape token_view() const { return {batch, 1, rows, 1, cols, 1}; }
};

/// @brief The token grid of a latent of shape `latent` (`[B, C, H, W]`) under patch `patch`.
/// Throws `option_error` unless `patch >= 1`, `shape_error` naming `arg` unless the latent has
/// rank 4 and `patch` divides `H` and `W`.
inline latent_token_grid token_grid_of(std::string_view arg, const shape& latent,
                                       std::int64_t patch) {
  if (patch < 1)
    throw option_error("patch: the patch size P must be >= 1, got " + std::to_string(patch));
  require_rank(arg, latent, 4, "[B, C, H, W]");
  if (latent[2] % patch != 0 || latent[3] % patch != 0)
    throw shape_error(std::string(arg) + ": patch size P = " + std::to_string(patch) +
                      " does not divide H x W of shape " + to_string(latent));
  return {latent[0], latent[1], latent[2] / patch, latent[3] / patch, patch};
}

/// @brief The mean of each token's `C * P * P` latent elements.
/// @param be     the backend
/// @param values [B, C, H, W] latent-shaped values (e.g. per-element log-densities)
/// @param patch  `P`, dividing `H` and `W`
/// @return [B, N] with `N = (H / P)(W / P)`, token `n = w * row + col`
template <reduction_backend B>
  requires elementwise_backend<B> && layout_backend<B>
typename B::tensor per_token_mean(const B& be, const typename B::tensor& values,
                                  std::int64_t patch) {
  const auto grid = token_grid_of("values", be.shape_of(values), patch);
  const auto patches = be.reshape(values, grid.patch_view());  // [B, C, h, P, w, P]
  const auto means = ops::mean(be, patches, {1, 3, 5});          // [B, h, w]
  return be.reshape(means, {grid.batch, grid.tokens()});         // [B, N]
}

/// @brief Multiplies every latent element by the value of the token it lies under:
/// `out[b, c, i, j] = latent[b, c, i, j] * token_values[b, n(i, j)]`. With `latent` all
/// `1 / (C P P)` this is the adjoint of `per_token_mean`.
/// @param be           the backend
/// @param latent       [B, C, H, W]
/// @param token_values [B, N]
/// @param patch        `P`, dividing `H` and `W`
/// @return [B, C, H, W]
template <elementwise_backend B>
  requires layout_backend<B>
typename B::tensor scale_by_token(const B& be, const typename B::tensor& latent,
                                  const typename B::tensor& token_values, std::int64_t patch) {
  const shape latent_shape = be.shape_of(latent);
  const auto grid = token_grid_of("latent", latent_shape, patch);
  require_shape("token_values", be.shape_of(token_values), {grid.batch, grid.tokens()},
                "[B, N]");
  const auto patches = be.reshape(latent, grid.patch_view());         // [B, C, h, P, w, P]
  const auto per_token = be.reshape(token_values, grid.token_view());  // [B, 1, h, 1, w, 1]
  return be.reshape(be.mul(patches, per_token), latent_shape);         // [B, C, H, W]
}

}  // namespace star
