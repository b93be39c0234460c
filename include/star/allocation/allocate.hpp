#pragma once
/// @file
/// @brief The main entry point of §4: relevance maps to mean-one allocation weights `W`.

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "star/allocation/allocation_options.hpp"
#include "star/allocation/fused_allocation.hpp"
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
/// water-filling round). This is the composite path, in backend ops only; `allocate` runs a
/// backend's fused kernel instead when it has one.
/// @param be        the backend
/// @param relevance [B, N] relevance maps `R`, rows = (rollout, step) pairs, finite and >= 0
///                  (an all-zero row is allocated uniformly)
/// @param steps     [B] step `k` of each row, in `[0, num_steps)`
/// @param num_steps `K` >= 1, the steps the `linear` / `cosine` schedules span
/// @param options   validated here
template <elementwise_backend B>
  requires reduction_backend<B>
allocation_result<typename B::tensor> allocate_composite(const B& be,
                                                         const typename B::tensor& relevance,
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

/// @brief Allocation weights as `allocate_composite` defines them, from the backend's fused
/// kernel when it has one (`fused_allocation_backend`): one pass per row instead of a
/// sequence of whole-batch ops. Inputs whose checks need values (finite, >= 0) and every
/// invalid argument take the composite path, so errors are those of `allocate_composite`.
/// @param be        the backend
/// @param relevance [B, N] relevance maps `R`, finite and >= 0
/// @param steps     [B] step `k` of each row, in `[0, num_steps)`
/// @param num_steps `K` >= 1
/// @param options   validated here
template <elementwise_backend B>
  requires reduction_backend<B>
allocation_result<typename B::tensor> allocate(const B& be, const typename B::tensor& relevance,
                                               std::span<const std::int64_t> steps,
                                               std::int64_t num_steps,
                                               const allocation_options& options = {}) {
  if constexpr (fused_allocation_backend<B>) {
    options.validate();
    const shape dims = be.shape_of(relevance);
    const bool steps_valid =
        num_steps >= 1 && std::all_of(steps.begin(), steps.end(), [&](std::int64_t k) {
          return k >= 0 && k < num_steps;
        });
    if (dims.size() == 2 && dims[0] >= 1 && dims[1] >= 1 &&
        static_cast<std::int64_t>(steps.size()) == dims[0] && steps_valid) {
      std::vector<double> lambda;
      if (options.schedule != mixing_schedule::entropy)
        for (const std::int64_t k : steps)
          lambda.push_back(mixing_lambda(options, k, num_steps, 0.0));  // entropy unused
      auto fused = be.fused_allocate(relevance, {options.tau, lambda, options.w_max});
      if (fused) return std::move(*fused);
    }
  }
  return allocate_composite(be, relevance, steps, num_steps, options);
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
