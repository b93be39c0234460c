#pragma once
/// @file
/// @brief The main entry point of §4: relevance maps to mean-one allocation weights `W`.

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "star/allocation/allocation_options.hpp"
#include "star/allocation/mixing_schedule.hpp"
#include "star/allocation/relevance_map.hpp"
#include "star/allocation/water_filling.hpp"
#include "star/core/backend.hpp"
#include "star/core/shape.hpp"

namespace star {

/// @brief What `allocate` returns: the weights and, per row, what shaped them.
template <class Tensor>
struct allocation_result {
  Tensor weights;               ///< [B, N] `W`, >= 0, mean 1 per row
  std::vector<double> lambda;   ///< [B] the mixing weight used per row
  std::vector<double> entropy;  ///< [B] `H(m)` of the sharpened map, in nats
  std::int64_t capped_entries = 0;  ///< entries held at `w_max` (0 when the cap is off)

  /// @brief Whether the cap changed anything.
  bool cap_active() const { return capped_entries > 0; }
};

/// @brief Allocation weights: `m = R^{1/tau} / sum R^{1/tau}`, `q = (1 - lambda) m + lambda / N`,
/// `W = N q`, then the optional cap (`water_fill`), with each row at its own denoising step.
/// `W` is a constant of the policy objective: the relevance maps carry no gradient, and the
/// per-row `lambda` and entropy are read back to the host (one `[B]` read, plus one scalar per
/// water-filling round).
/// @param relevance [B, N] relevance maps `R`, rows = (rollout, step) pairs, finite and >= 0
///                  (an all-zero row is allocated uniformly)
/// @param steps     [B] step `k` of each row, in `[0, num_steps)`
/// @param num_steps `K` >= 1, the steps the `linear` / `cosine` schedules span
/// @param options   validated here
template <elementwise_backend B>
  requires reduction_backend<B>
allocation_result<typename B::tensor> allocate(const B& be, const typename B::tensor& relevance,
                                               std::span<const std::int64_t> steps,
                                               std::int64_t num_steps,
                                               const allocation_options& options = {}) {
  options.validate();
  const auto map = sharpened_map(be, relevance, options.tau);  // [B, N]
  const shape dims = be.shape_of(map);
  require_shape("steps", {static_cast<std::int64_t>(steps.size())}, {dims[0]}, "[B]");
  std::vector<double> entropy = be.to_host(map_entropy(be, map));
  std::vector<double> lambda(entropy.size());
  for (std::size_t row = 0; row < entropy.size(); ++row)
    lambda[row] = mixing_lambda(options, steps[row], num_steps,
                                normalized_entropy(entropy[row], dims[1]));

  const auto mix = be.from_host(lambda, {dims[0], 1});                    // [B, 1]
  const auto concentrated = be.mul(map, static_cast<double>(dims[1]));     // [B, N] N m
  const auto weights = be.add(be.mul(concentrated, be.add(be.mul(mix, -1.0), 1.0)),
                              mix);  // [B, N] (1 - lambda) N m + lambda
  if (!options.w_max) return {weights, std::move(lambda), std::move(entropy), 0};
  auto capped = water_fill(be, weights, *options.w_max);
  return {std::move(capped.weights), std::move(lambda), std::move(entropy), capped.capped_entries};
}

/// @brief `allocate` with every row at the same step `step` (e.g. one trained timestep of a
/// micro-batch of rollouts).
template <elementwise_backend B>
  requires reduction_backend<B>
allocation_result<typename B::tensor> allocate(const B& be, const typename B::tensor& relevance,
                                               std::int64_t step, std::int64_t num_steps,
                                               const allocation_options& options = {}) {
  const shape dims = be.shape_of(relevance);
  const std::vector<std::int64_t> steps(dims.empty() ? 0 : static_cast<std::size_t>(dims[0]), step);
  return allocate(be, relevance, std::span<const std::int64_t>(steps), num_steps, options);
}

}  // namespace star
