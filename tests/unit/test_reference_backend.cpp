// The reference backend's operations against hand-worked values: the oracle's own check.
#include <catch2/catch.hpp>

#include <cstdint>
#include <span>

#include "star/backends/reference.hpp"
#include "star/core/ops.hpp"
#include "support/compare.hpp"

using star::reference_backend;

TEST_CASE("reference: broadcasting add, matmul, reductions, layout") {
  const reference_backend be;
  const auto a = be.from_host(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});  // [2, 3]
  const auto row = be.from_host(std::vector<double>{10, 20, 30}, {3});       // [3]
  star::test::require_close(be.to_host(be.add(a, row)), {11, 22, 33, 14, 25, 36}, 0);

  const auto b = be.from_host(std::vector<double>{1, 0, 0, 1, 1, 1}, {3, 2});  // [3, 2]
  star::test::require_close(be.to_host(be.matmul(a, b)), {4, 5, 10, 11}, 0);

  star::test::require_close(be.to_host(be.sum(a, {0}, false)), {5, 7, 9}, 0);
  star::test::require_close(be.to_host(be.amax(a, {-1}, false)), {3, 6}, 0);
  star::test::require_close(be.to_host(be.permute(a, {1, 0})), {1, 4, 2, 5, 3, 6}, 0);
  const std::vector<std::int64_t> cols{2, 0};
  star::test::require_close(be.to_host(be.index_select(a, 1, cols)), {3, 1, 6, 4}, 0);
  star::test::require_close(be.to_host(be.slice(a, 1, 1, 3)), {2, 3, 5, 6}, 0);
  const auto lse = star::ops::logsumexp(be, a, 1);  // [2]
  star::test::require_close(be.to_host(lse),
                            {std::log(std::exp(1) + std::exp(2) + std::exp(3)),
                             std::log(std::exp(4) + std::exp(5) + std::exp(6))},
                            1e-14);
}

TEST_CASE("reference: bad arguments name the operation and print the shapes") {
  const reference_backend be;
  const auto a = be.full({2, 3}, 1.0);  // [2, 3]
  const auto b = be.full({4}, 1.0);     // [4]
  REQUIRE_THROWS_WITH(be.add(a, b), Catch::Contains("add") && Catch::Contains("[2, 3]") &&
                                        Catch::Contains("[4]"));
  REQUIRE_THROWS_AS(be.matmul(a, a), star::shape_error);
  REQUIRE_THROWS_AS(be.reshape(a, {5}), star::shape_error);
  const std::vector<std::int64_t> bad{3};
  REQUIRE_THROWS_AS(be.index_select(a, 1, bad), star::shape_error);
  REQUIRE_THROWS_WITH(be.sum(a, {2}, false), Catch::Contains("sum") && Catch::Contains("axis 2"));
  REQUIRE_THROWS_AS(be.clamp(a, 1.0, 0.0), star::value_error);
  // shapes whose element count is undefined: negative, or beyond int64
  REQUIRE(star::numel({3, 0, std::int64_t{1} << 62, 5}) == 0);
  REQUIRE(star::numel({std::int64_t{1} << 62, 4, 0}) == 0);
  REQUIRE_THROWS_WITH(be.full({2, -1}, 0.0), Catch::Contains("[2, -1]: an extent is negative"));
  const std::int64_t big = std::int64_t{1} << 32;
  REQUIRE_THROWS_WITH(be.from_host(std::span<const double>{}, {big, big}),
                      Catch::Contains("more than 2^63 - 1 elements"));
}
