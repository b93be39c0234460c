#pragma once
/// @file
/// @brief The cap `W <= w_max` as an exact water-filling projection (docs/math.md §4, step 4).

#include <cmath>
#include <cstdint>
#include <limits>

#include "star/allocation/allocation_options.hpp"
#include "star/core/backend.hpp"
#include "star/core/ops.hpp"
#include "star/core/shape.hpp"

namespace star {

/// @brief Capped weights and how many entries the cap holds.
template <class Tensor>
struct water_filling_result {
  Tensor weights;                   ///< [B, N] `min(w_max, c_b * W0)`, mean 1 per row
  std::int64_t capped_entries = 0;  ///< entries held at `w_max`, over all rows
};

/// @brief Projects each row onto `{W : mean W = 1, 0 <= W <= w_max}` keeping the ratios of
/// the entries below the cap: `W = min(w_max, c * W0)` with one scalar `c` per row.
///
/// `c` is found exactly by "cap the entries over the limit, rescale the rest": with the set
/// `C` of capped entries, `c = (N - w_max |C|) / sum_{n not in C} W0(n)`; entries that now
/// exceed `w_max` join `C`, and `c` only grows, so a row settles within `N` rounds (typically
/// 2-3). Rounds run on the whole batch in backend ops; each reads back one scalar (the number
/// of capped entries) to test convergence. When the uncapped entries carry no mass (e.g. a
/// one-hot row with `w_max < N`), the remaining mass is spread evenly over them: the limit of
/// the same projection of `W0 + epsilon`.
/// @param be      the backend
/// @param weights [B, N] finite, >= 0 (for `N q`, each row has mean 1 and then `c >= 1`)
/// @param w_max   finite, >= 1
template <elementwise_backend B>
  requires reduction_backend<B>
water_filling_result<typename B::tensor> water_fill(const B& be,
                                                    const typename B::tensor& weights,
                                                    double w_max) {
  const shape dims = be.shape_of(weights);
  require_rank("weights", dims, 2, "[B, N]");
  allocation_options::require_valid_cap(w_max, "w_max");
  constexpr double infinity = std::numeric_limits<double>::infinity();
  // Free mass below this fraction of the budget counts as none (keeps c <= 1e30, finite in float).
  constexpr double starved_fraction = 1e-30;
  const auto image_tokens = static_cast<double>(dims[1]);
  const auto cap = be.full({1}, w_max);  // [1]

  auto capped = be.full(dims, 0.0);  // [B, N] 1 where held at w_max
  std::int64_t capped_entries = 0;
  for (;;) {
    const auto free = be.add(be.mul(capped, -1.0), 1.0);                       // [B, N]
    const auto free_mass = be.sum(be.mul(weights, free), {1}, true);           // [B, 1]
    const auto free_count = be.sum(free, {1}, true);                           // [B, 1]
    const auto budget = be.clamp(be.add(be.mul(be.sum(capped, {1}, true), -w_max), image_tokens),
                                 0.0, infinity);  // [B, 1] N - w_max |C|
    const auto starved = be.add(
        be.mul(be.greater(free_mass, be.mul(budget, starved_fraction)), -1.0), 1.0);  // [B, 1]
    const auto scale = be.div(be.mul(budget, be.add(be.mul(starved, -1.0), 1.0)),
                              be.add(free_mass, starved));  // [B, 1] c (0 when starved)
    const auto even_share =
        be.div(be.mul(budget, starved), be.clamp(free_count, 1.0, infinity));  // [B, 1]
    const auto filled = be.add(be.mul(weights, scale), even_share);           // [B, N]
    const auto grown = be.maximum(capped, be.greater(filled, cap));           // [B, N]
    const std::int64_t grown_entries = std::llround(ops::item(be, be.sum(grown, {0, 1}, false)));
    if (grown_entries == capped_entries)
      return {be.add(be.mul(capped, w_max), be.mul(free, filled)), capped_entries};  // [B, N]
    capped = grown;
    capped_entries = grown_entries;
  }
}

}  // namespace star
