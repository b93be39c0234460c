#pragma once
// Synthetic post-norm q and k for one joint-attention block: the tokens of each object word
// share a direction that the image queries near that object's centre also carry, more sharply
// as denoising proceeds (early steps give diffuse maps, late steps focused ones).

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "star/core/token_layout.hpp"

namespace demo {

/// Where one object lies on the h x w token grid of one rollout, and its direction index.
struct object_placement {
  double row = 0, col = 0;  ///< centre, in tokens
  int direction = 0;        ///< which concept direction its words and region carry
};

/// Host buffers of q and k, [G, H, T, D] each, row-major.
struct joint_qk_host {
  std::vector<double> q, k;
};

/// Builds q and k for every rollout of the group at `focus` (0 = diffuse .. 1 = sharp).
/// @param text_direction [L] the concept direction of each text position, -1 for none
/// @param objects        [G][objects] placements per rollout
inline joint_qk_host synthetic_block(const star::token_layout& layout,
                                     const std::vector<int>& text_direction,
                                     const std::vector<std::vector<object_placement>>& objects,
                                     std::int64_t heads, std::int64_t head_dim, double focus,
                                     std::uint64_t seed) {
  const auto rollouts = static_cast<std::int64_t>(objects.size());
  const std::int64_t tokens = layout.total_tokens();
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  // One unit-ish random direction per concept, shared by all rollouts, heads and blocks.
  std::mt19937_64 concept_rng(12345);
  std::vector<std::vector<double>> directions(
      4, std::vector<double>(static_cast<std::size_t>(head_dim)));
  for (auto& direction : directions)
    for (double& x : direction) x = noise(concept_rng) / std::sqrt(static_cast<double>(head_dim));

  const auto values = static_cast<std::size_t>(rollouts * heads * tokens * head_dim);
  joint_qk_host out{std::vector<double>(values), std::vector<double>(values)};
  const double strength = 2.0 + 10.0 * focus, radius = 3.0 - 1.5 * focus;
  for (std::int64_t g = 0; g < rollouts; ++g)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t t = 0; t < tokens; ++t) {
        const auto base = static_cast<std::size_t>(((g * heads + h) * tokens + t) * head_dim);
        std::vector<double> q(static_cast<std::size_t>(head_dim)), k(q.size());
        for (std::size_t d = 0; d < q.size(); ++d) {
          q[d] = 0.3 * noise(rng);
          k[d] = 0.3 * noise(rng);
        }
        const std::int64_t image_index = t - layout.image_begin();
        const std::int64_t text_index = t - layout.text_begin();
        if (image_index >= 0 && image_index < layout.image_tokens()) {
          const double row = static_cast<double>(image_index / layout.grid_w);
          const double col = static_cast<double>(image_index % layout.grid_w);
          for (const auto& object : objects[static_cast<std::size_t>(g)]) {
            const double dr = row - object.row, dc = col - object.col;
            const double bump = strength * std::exp(-(dr * dr + dc * dc) / (2 * radius * radius));
            for (std::size_t d = 0; d < q.size(); ++d)
              q[d] += bump * directions[object.direction][d];
          }
        } else if (text_index >= 0 && text_index < layout.text_tokens()) {
          const int direction = text_direction[static_cast<std::size_t>(text_index)];
          if (direction >= 0)
            for (std::size_t d = 0; d < k.size(); ++d) k[d] += 8.0 * directions[direction][d];
        }
        for (std::size_t d = 0; d < q.size(); ++d) {
          out.q[base + d] = q[d];
          out.k[base + d] = k[d];
        }
      }
  return out;
}

}  // namespace demo
