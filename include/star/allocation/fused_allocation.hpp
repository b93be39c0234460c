#pragma once
/// @file
/// @brief The optional fused tier of `allocate` (docs/math.md §4): what a backend provides
/// to compute a whole allocation row by row in one pass, and the request it receives.

#include <concepts>
#include <cstdint>
#include <optional>
#include <span>

#include "star/allocation/allocation_options.hpp"
#include "star/allocation/mixing_schedule.hpp"

namespace star {

template <class Tensor>
struct allocation_result;

/// @brief What a fused allocation kernel is asked for; the relevance maps travel beside it.
struct fused_allocation_request {
  double tau = 1.0;  ///< sharpening temperature, finite and > 0 (`pow` skipped when 1)
  /// [B] `lambda` of each row; empty: each row's `lambda` is its normalised entropy
  /// (the `entropy` schedule, see `fused_row_lambda`).
  std::span<const double> lambda;
  std::optional<double> w_max;  ///< the cap, finite and >= 1; unset: off

  /// @brief `lambda` of row `row` whose sharpened map over `image_tokens` cells has entropy
  /// `entropy` (nats): the given value, or the `entropy` schedule's `mixing_lambda`.
  double row_lambda(std::int64_t row, double entropy, std::int64_t image_tokens) const {
    if (!lambda.empty()) return lambda[static_cast<std::size_t>(row)];
    allocation_options entropy_schedule;
    entropy_schedule.schedule = mixing_schedule::entropy;
    return mixing_lambda(entropy_schedule, 0, 1, normalized_entropy(entropy, image_tokens));
  }
};

/// @brief A backend with a fused allocation kernel:
/// `be.fused_allocate(relevance [B, N], request)` returns what `allocate` returns (weights,
/// per-row `lambda` and entropy, capped count) from one pass per row, or `std::nullopt` when
/// some relevance entry is negative or not finite (then `allocate` takes the checked
/// composite path, which throws the error). Shapes are checked before the call:
/// `relevance` is `[B, N]` with `B, N >= 1`, `request.lambda` empty or `[B]`.
template <class B>
concept fused_allocation_backend =
    requires(const B& be, const typename B::tensor& relevance,
             const fused_allocation_request& request) {
      {
        be.fused_allocate(relevance, request)
      } -> std::same_as<std::optional<allocation_result<typename B::tensor>>>;
    };

}  // namespace star
