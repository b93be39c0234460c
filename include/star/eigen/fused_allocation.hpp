#pragma once
/// @file
/// @brief The Eigen backend's fused allocation kernel (`star::fused_allocation_backend`): each
/// row of relevance is sharpened, normalised, measured (entropy), mixed and capped while it
/// sits in cache, rows split over OpenMP threads.

#include <Eigen/Core>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "star/allocation/allocate.hpp"
#include "star/allocation/fused_allocation.hpp"
#include "star/eigen/fast_log.hpp"
#include "star/eigen/parallel.hpp"
#include "star/eigen/tensor.hpp"

namespace star::eigen::detail {

template <class Scalar>
using row_map = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
template <class Scalar>
using const_row_map = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;

/// @brief An unsigned integer as wide as `Scalar`: bit patterns and per-lane counters.
template <class Scalar>
using lane_count = std::conditional_t<sizeof(Scalar) == 4, std::uint32_t, std::uint64_t>;

/// @brief `water_fill` on one row, in place: `W = min(w_max, c W0)` with `c` rescaling the
/// uncapped entries to the budget `N - w_max |C|`, grown round by round; a budget whose
/// uncapped entries carry no mass is spread evenly over them.
/// @param weights [N] `W0` (finite, >= 0) on entry, `W` on return
/// @param capped  [N] scratch
/// @return        the entries held at `w_max`
template <class Scalar>
std::int64_t water_fill_row(row_map<Scalar> weights, row_map<Scalar> capped, double w_max) {
  constexpr double starved_fraction = 1e-30;  // as water_fill: free mass below this is none
  const auto cap = static_cast<Scalar>(w_max);
  const auto image_tokens = static_cast<double>(weights.size());
  capped.setZero();
  std::int64_t count = 0;
  for (;;) {
    const double free_mass = static_cast<double>((weights * (Scalar{1} - capped)).sum());
    const double budget = std::max(image_tokens - w_max * static_cast<double>(count), 0.0);
    const bool starved = !(free_mass > budget * starved_fraction);
    const auto scale = static_cast<Scalar>(starved ? 0.0 : budget / free_mass);
    const auto even_share = static_cast<Scalar>(
        starved ? budget / std::max(image_tokens - static_cast<double>(count), 1.0) : 0.0);
    // One vectorisable pass marks C' = C | (filled > cap) and counts it (Eigen's count of a
    // boolean expression runs a scalar loop); C' == C when the counts agree, as C' contains C.
    // The counter has the lanes' width, which the vectoriser needs (a row holds < 2^32).
    Scalar* const values = weights.data();
    Scalar* const held = capped.data();
    const std::ptrdiff_t size = weights.size();
    lane_count<Scalar> grown_count = 0;
    for (std::ptrdiff_t n = 0; n < size; ++n) {
      const bool grown = (held[n] > Scalar{0}) | (values[n] * scale + even_share > cap);
      held[n] = grown ? Scalar{1} : Scalar{0};
      grown_count += grown ? 1 : 0;
    }
    if (static_cast<std::int64_t>(grown_count) == count) {
      for (std::ptrdiff_t n = 0; n < size; ++n) {
        const Scalar filled = values[n] * scale + even_share;
        values[n] = held[n] > Scalar{0} ? cap : filled;
      }
      return count;
    }
    count = static_cast<std::int64_t>(grown_count);
  }
}

/// @brief What one row of the allocation reports.
struct allocation_row {
  double entropy = 0.0;
  double lambda = 0.0;
  std::int64_t capped = 0;
};

/// @brief The largest entry of a row, or nullopt when an entry is negative, NaN or infinite.
/// One integer pass: the bit patterns of floats >= +0, read as unsigned integers, order as
/// the values do, and every negative, infinite or NaN entry has a pattern >= that of +inf.
/// Only rows landing there (or holding -0) take the exact checks.
/// @param row [N], N >= 1
template <class Scalar>
std::optional<Scalar> checked_row_max(const_row_map<Scalar> row) {
  using bits = lane_count<Scalar>;
  const Scalar* values = row.data();
  bits largest = 0;
  for (std::ptrdiff_t n = 0; n < row.size(); ++n)
    largest = std::max(largest, std::bit_cast<bits>(values[n]));
  if (largest < std::bit_cast<bits>(std::numeric_limits<Scalar>::infinity()))
    return std::bit_cast<Scalar>(largest);
  // sum(0 R) is NaN exactly when an entry is NaN or infinite.
  if (!((row * Scalar{0}).sum() == Scalar{0}) || row.minCoeff() < Scalar{0}) return std::nullopt;
  return row.maxCoeff();
}

/// @brief `sum_n w(n) log w(n)` (0 log 0 = 0) with `fast_log`, through a stack block of
/// products (GCC vectorises the product loop; the sum is Eigen's).
/// @param weights [N], finite and >= 0
template <class Scalar>
double weighted_log_sum(const_row_map<Scalar> weights) {
  constexpr std::ptrdiff_t block = 1024;
  alignas(64) Scalar products[block];
  double total = 0.0;
  for (std::ptrdiff_t begin = 0; begin < weights.size(); begin += block) {
    const std::ptrdiff_t length = std::min(block, weights.size() - begin);
    const Scalar* values = weights.data() + begin;
    for (std::ptrdiff_t n = 0; n < length; ++n) products[n] = values[n] * fast_log(values[n]);
    total += static_cast<double>(const_row_map<Scalar>(products, length).sum());
  }
  return total;
}

/// @brief One row of `allocate_composite`: writes `W` into `weights` from a relevance row
/// that is finite and >= 0 with largest entry `row_max`.
/// @param relevance [N]
/// @param weights   [N] output
/// @param capped    [N] scratch for the cap (unused without one)
template <class Scalar>
allocation_row allocate_row(const_row_map<Scalar> relevance, Scalar row_max,
                            row_map<Scalar> weights, row_map<Scalar> capped, std::int64_t row,
                            const fused_allocation_request& request) {
  const std::int64_t image_tokens = relevance.size();
  // powered = (R / max R)^{1/tau} in [0, 1], max exactly 1; an all-zero row counts as all
  // ones. A division, as the composite path: a product with 1 / max R overflows to inf for a
  // subnormal max (0 inf = NaN) and can round the max below 1 (49 (1 / 49) < 1), which
  // pow(., 1 / tau) sends to 0 for a small tau, leaving a row of zero mass.
  if (row_max == Scalar{0})
    weights.setOnes();
  else if (request.tau == 1.0)
    weights = relevance / row_max;
  else
    weights = (relevance / row_max).pow(static_cast<Scalar>(1.0 / request.tau));
  const auto mass = static_cast<double>(weights.sum());  // >= 1
  const double plogp =
      weighted_log_sum<Scalar>(const_row_map<Scalar>(weights.data(), weights.size()));
  allocation_row out;
  out.entropy = std::log(mass) - plogp / mass;  // -sum m log m with m = powered / mass
  out.lambda = request.row_lambda(row, out.entropy, image_tokens);
  // W = N ((1 - lambda) m + lambda / N)
  weights = weights * static_cast<Scalar>(static_cast<double>(image_tokens) *
                                          (1.0 - out.lambda) / mass) +
            static_cast<Scalar>(out.lambda);
  // A row already under the cap is the water fill's fixed point (its rescale to mass N is 1
  // to rounding), so only rows reaching the cap pay for it.
  if (request.w_max && static_cast<double>(weights.maxCoeff()) > *request.w_max)
    out.capped = water_fill_row<Scalar>(weights, capped, *request.w_max);
  return out;
}

/// @brief `fused_allocate` of `star::eigen::backend<Scalar>`; see `fused_allocation_backend`.
/// @param relevance [B, N], B, N >= 1
/// @return          nullopt when an entry is negative or not finite
template <class Scalar>
std::optional<allocation_result<tensor<Scalar>>> fused_allocate(
    const tensor<Scalar>& relevance, const fused_allocation_request& request) {
  using values = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const std::int64_t rows = relevance.dims[0], image_tokens = relevance.dims[1];
  tensor<Scalar> weights{relevance.dims, values(relevance.values.size())};  // [B, N]
  std::vector<allocation_row> per_row(static_cast<std::size_t>(rows));
  std::vector<unsigned char> invalid(static_cast<std::size_t>(rows), 0);
  constexpr std::int64_t cost = 16;  // scalar operations per entry (max, pow/log, sums, mix)
  parallel_ranges(rows, rows * image_tokens * cost, [&](std::int64_t begin, std::int64_t end) {
    values capped(request.w_max ? image_tokens : 0);  // [N] scratch
    for (std::int64_t r = begin; r < end; ++r) {
      const const_row_map<Scalar> in(relevance.values.data() + r * image_tokens, image_tokens);
      const std::optional<Scalar> row_max = checked_row_max<Scalar>(in);
      if (!row_max) {
        invalid[static_cast<std::size_t>(r)] = 1;
        continue;
      }
      per_row[static_cast<std::size_t>(r)] = allocate_row<Scalar>(
          in, *row_max, row_map<Scalar>(weights.values.data() + r * image_tokens, image_tokens),
          row_map<Scalar>(capped.data(), capped.size()), r, request);
    }
  });
  if (std::find(invalid.begin(), invalid.end(), 1) != invalid.end()) return std::nullopt;
  allocation_result<tensor<Scalar>> result{std::move(weights), {}, {}, 0};
  for (const allocation_row& row : per_row) {
    result.lambda.push_back(row.lambda);
    result.entropy.push_back(row.entropy);
    result.capped_entries += row.capped;
  }
  return result;
}

}  // namespace star::eigen::detail
