// The cap W <= w_max as an exact water-filling projection (docs/math.md §4, item 4).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "star/allocation/all.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

// Mean-one rows W0 = N q with q = (1 - lambda) m + lambda / N of a peaked random map m.
std::vector<double> peaked_mean_one_rows(std::int64_t rows, std::int64_t n, std::uint64_t seed) {
  auto w = star::test::uniform(static_cast<std::size_t>(rows * n), seed, 0.0, 1.0);
  for (std::int64_t b = 0; b < rows; ++b) {
    double total = 0;
    for (std::int64_t i = 0; i < n; ++i) total += w[b * n + i] = std::pow(w[b * n + i], 6.0);
    for (std::int64_t i = 0; i < n; ++i)
      w[b * n + i] = static_cast<double>(n) * (0.8 * w[b * n + i] / total + 0.2 / static_cast<double>(n));
  }
  return w;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("water_fill: W <= w_max, mean 1, W = min(w_max, c W0) with one c per row, order kept",
                        "[allocation][water_filling]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  constexpr std::int64_t rows = 5, n = 40;
  for (const std::uint64_t seed : {3u, 4u})
    for (const double w_max : {1.2, 2.0, 5.0}) {
      INFO("seed " << seed << " w_max " << w_max);
      const auto w0 = peaked_mean_one_rows(rows, n, seed);
      const auto result = star::water_fill(be, be.from_host(w0, {rows, n}), w_max);
      const auto w = be.to_host(result.weights);
      std::int64_t at_cap = 0;
      for (std::int64_t b = 0; b < rows; ++b) {
        INFO("row " << b);
        double mean = 0, ratio = -1;
        for (std::int64_t i = 0; i < n; ++i) {
          const double x = w[b * n + i], x0 = w0[b * n + i];
          mean += x / n;
          REQUIRE(x <= w_max * (1 + tol));
          if (x >= w_max * (1 - tol)) {
            ++at_cap;
            continue;
          }
          REQUIRE(x >= x0 * (1 - tol));  // c >= 1: nothing below the cap loses weight
          if (ratio < 0) ratio = x / x0;
          REQUIRE(x / x0 == Approx(ratio).epsilon(tol));  // one c for the uncapped entries
          REQUIRE(ratio * x0 <= w_max * (1 + tol));
        }
        REQUIRE(ratio >= 1.0 - tol);
        for (std::int64_t i = 0; i < n; ++i)  // capped entries are those with c W0 >= w_max
          if (w[b * n + i] >= w_max * (1 - tol)) REQUIRE(ratio * w0[b * n + i] >= w_max * (1 - tol));
        REQUIRE(mean == Approx(1.0).margin(tol));
        for (std::int64_t i = 0; i < n; ++i)
          for (std::int64_t j = 0; j < n; ++j)
            if (w0[b * n + i] < w0[b * n + j]) REQUIRE(w[b * n + i] <= w[b * n + j] * (1 + tol));
      }
      REQUIRE(result.capped_entries == at_cap);
      if (w_max == 1.2) REQUIRE(at_cap > rows);  // the cap binds hard on these peaked rows
    }
}

TEMPLATE_LIST_TEST_CASE("water_fill: w_max = 1 gives all ones, a cap that never binds changes nothing",
                        "[allocation][water_filling]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  constexpr std::int64_t rows = 3, n = 12;
  const auto w0 = peaked_mean_one_rows(rows, n, 9);
  const auto weights = be.from_host(w0, {rows, n});  // [B, N]
  star::test::require_close(be.to_host(star::water_fill(be, weights, 1.0).weights),
                            std::vector<double>(rows * n, 1.0), tol, "w_max = 1");
  const auto loose = star::water_fill(be, weights, static_cast<double>(n));
  star::test::require_close(be.to_host(loose.weights), w0, tol, "w_max = N");
  REQUIRE(loose.capped_entries == 0);
}

TEMPLATE_LIST_TEST_CASE("water_fill: when the uncapped entries carry no mass, the rest is spread evenly",
                        "[allocation][water_filling]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  // Row 0 one-hot (N at one cell); row 1 two cells of 4 and 4, zeros elsewhere.
  const std::vector<double> w0{0, 8, 0, 0, 0, 0, 0, 0,   //
                               4, 0, 0, 4, 0, 0, 0, 0};
  const auto result = star::water_fill(be, be.from_host(w0, {2, 8}), 1.5);
  const double rest0 = (8 - 1.5) / 7, rest1 = (8 - 3.0) / 6;
  star::test::require_close(be.to_host(result.weights),
                            {rest0, 1.5, rest0, rest0, rest0, rest0, rest0, rest0,  //
                             1.5, rest1, rest1, 1.5, rest1, rest1, rest1, rest1},
                            tol, "W");
  REQUIRE(result.capped_entries == 3);
}

TEMPLATE_LIST_TEST_CASE("water_fill rejects a bad w_max and wrong ranks, naming them",
                        "[allocation][water_filling][errors]", star::test::all_backends) {
  const TestType be{};
  const auto weights = be.full({2, 4}, 1.0);  // [B, N]
  for (const double bad : {0.99, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    REQUIRE_THROWS_AS(star::water_fill(be, weights, bad), star::option_error);
    REQUIRE_THROWS_WITH(star::water_fill(be, weights, bad), Catch::Contains("w_max"));
  }
  REQUIRE_THROWS_AS(star::water_fill(be, be.full({8}, 1.0), 2.0), star::shape_error);
  REQUIRE_THROWS_WITH(star::water_fill(be, be.full({8}, 1.0), 2.0),
                      Catch::Contains("weights") && Catch::Contains("[8]"));
}
