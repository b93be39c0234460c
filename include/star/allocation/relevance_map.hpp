#pragma once
/// @file
/// @brief From relevance maps to normalised allocation maps `m`, and their spatial entropy
/// (docs/math.md §4, step 1).

#include <cstdint>
#include <limits>

#include "star/allocation/allocation_options.hpp"
#include "star/core/value_checks.hpp"
#include "star/core/backend.hpp"
#include "star/core/shape.hpp"

namespace star {

/// @brief Sharpens and normalises each row: `m(n) = R(n)^{1/tau} / sum_n' R(n')^{1/tau}`.
/// Rows are first divided by their maximum (the result is unchanged, and `R^{1/tau}` can
/// neither overflow nor underflow to an all-zero row); an all-zero row gives the uniform map
/// `1 / N`. The `pow` is skipped when `tau == 1`.
/// @param be        the backend
/// @param relevance [B, N] relevance maps, rows = (rollout, step) pairs, finite and >= 0
/// @param tau       sharpening temperature, finite and > 0
/// @return          [B, N] maps, each row >= 0 summing to 1
template <elementwise_backend B>
  requires reduction_backend<B>
typename B::tensor sharpened_map(const B& be, const typename B::tensor& relevance, double tau) {
  const shape dims = be.shape_of(relevance);
  require_rank("relevance", dims, 2, "[B, N]");
  if (dims[0] < 1 || dims[1] < 1)
    throw shape_error("relevance: expected at least one row and one column [B, N], got shape " +
                      to_string(dims));
  allocation_options::require_valid_tau(tau, "tau");
  detail::require_finite_nonnegative(be, relevance, "relevance");
  const auto image_tokens = static_cast<double>(dims[1]);

  const auto row_max = be.amax(relevance, {1}, true);                        // [B, 1]
  const auto zero_row = be.add(be.mul(be.greater(row_max, be.full({1}, 0.0)), -1.0),
                               1.0);  // [B, 1] 1 for an all-zero row
  const auto scaled = be.div(relevance, be.add(row_max, zero_row));           // [B, N] max 1
  const auto powered = tau == 1.0 ? scaled : be.pow(scaled, 1.0 / tau);       // [B, N]
  const auto mass = be.sum(powered, {1}, true);                               // [B, 1] >= 1 or 0
  return be.div(be.add(powered, zero_row),
                be.add(mass, be.mul(zero_row, image_tokens)));                // [B, N]
}

/// @brief The spatial entropy `H(m) = -sum_n m(n) log m(n)` of each row, in nats, with
/// `0 log 0 = 0`.
/// @param be  the backend
/// @param map [B, N] rows >= 0 summing to 1 (e.g. from `sharpened_map`)
/// @return    [B] entropies in `[0, log N]`
template <elementwise_backend B>
  requires reduction_backend<B>
typename B::tensor map_entropy(const B& be, const typename B::tensor& map) {
  require_rank("map", be.shape_of(map), 2, "[B, N]");
  // m log max(m, tiny) equals m log m for m > 0 and is exactly 0 (not 0 * -inf) for m = 0.
  constexpr double tiny = 1e-30;  // representable in float, far below any m that matters
  const double inf = std::numeric_limits<double>::infinity();
  const auto log_map = be.log(be.clamp(map, tiny, inf));  // [B, N]
  return be.mul(be.sum(be.mul(map, log_map), {1}, false), -1.0);  // [B]
}

}  // namespace star
