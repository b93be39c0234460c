// Every backend of star::test::all_backends against the reference backend, one test body per
// operation group, on seeded random inputs; plus the odd backend's operation counter and the
// Eigen backend's own conveniences and thread-count independence.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "star/backends/reference.hpp"
#include "star/core/ops.hpp"
#include "star/eigen/parallel.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/odd_backend.hpp"
#include "support/random.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using star::reference_backend;
using star::reference_tensor;
using star::shape;
using axes_list = std::vector<std::int64_t>;

const reference_backend oracle;

/// Seeded uniform values in [lo, hi) of shape `s`, rounded to float so that every backend,
/// whatever its precision, sees exactly the same inputs.
reference_tensor random_input(const shape& s, std::uint64_t seed, double lo = -1.0,
                              double hi = 1.0) {
  auto values = star::test::uniform(static_cast<std::size_t>(star::numel(s)), seed, lo, hi);
  for (double& x : values) x = static_cast<float>(x);
  return {s, std::move(values)};
}

template <class B>
typename B::tensor to_backend(const B& be, const reference_tensor& t) {
  return be.from_host(t.values, t.dims);
}

/// The backend result has the oracle's shape, the same infinities, and finite values within
/// the backend's tolerance.
template <class B>
void require_matches(const B& be, const typename B::tensor& got, const reference_tensor& want,
                     const std::string& what) {
  INFO(what << ": got shape " << star::to_string(be.shape_of(got)) << ", want "
            << star::to_string(want.dims));
  REQUIRE(be.shape_of(got) == want.dims);
  std::vector<double> got_values = be.to_host(got), want_values = want.values;
  for (std::size_t i = 0; i < want_values.size(); ++i)
    if (std::isinf(want_values[i])) {
      REQUIRE(got_values[i] == want_values[i]);
      got_values[i] = want_values[i] = 0.0;
    }
  star::test::require_close(got_values, want_values, star::test::tolerance<B>::value, what);
}

/// Runs `op(backend, x, y)` on both the backend and the oracle and compares.
template <class B, class Op>
void check_binary(const B& be, const reference_tensor& x, const reference_tensor& y,
                  const std::string& what, Op op) {
  require_matches(be, op(be, to_backend(be, x), to_backend(be, y)), op(oracle, x, y),
                  what + " " + star::to_string(x.dims) + " with " + star::to_string(y.dims));
}

template <class B, class Op>
void check_unary(const B& be, const reference_tensor& x, const std::string& what, Op op) {
  require_matches(be, op(be, to_backend(be, x)), op(oracle, x),
                  what + " of " + star::to_string(x.dims));
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("conformance: binary ops over same-shape, scalar and broadcast operands",
                        "[conformance]", star::test::all_backends) {
  const TestType be{};
  const std::vector<std::pair<shape, shape>> cases = {
      {{3, 4}, {3, 4}},             // same shape
      {{3, 4}, {}},                 // rank-0 scalar
      {{}, {3, 4}},                 // scalar on the left
      {{3, 4}, {1}},                // one-element operand
      {{5, 7}, {1, 7}},             // row broadcast
      {{5, 7}, {7}},                // row broadcast, lower rank
      {{1, 7}, {5, 7}},             // row broadcast on the left
      {{5, 7}, {5, 1}},             // column broadcast
      {{5, 1}, {5, 7}},             // column broadcast on the left
      {{5, 1}, {1, 7}},             // outer product
      {{2, 1, 3}, {4, 1}},          // general broadcast
      {{2, 3, 1, 5}, {3, 4, 1}},    // general broadcast, both sides
      {{4, 3, 1}, {4, 3, 1}},       // trailing extent 1
      {{0, 3}, {3}},                // empty
      {{300, 257}, {257}},          // row broadcast large enough to thread
      {{300, 257}, {300, 1}},       // column broadcast large enough to thread
      {{70000}, {70000}},           // one long run split over threads
      {{40, 30, 60}, {40, 1, 60}},  // middle broadcast, threaded
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const std::uint64_t seed = 100 + c;
    INFO("seed " << seed);
    const auto x = random_input(cases[c].first, seed);
    const auto y = random_input(cases[c].second, seed + 1000);
    const auto y_nonzero = random_input(cases[c].second, seed + 2000, 0.5, 2.0);
    check_binary(be, x, y, "add",
                 [](const auto& b, const auto& p, const auto& q) { return b.add(p, q); });
    check_binary(be, x, y, "sub",
                 [](const auto& b, const auto& p, const auto& q) { return b.sub(p, q); });
    check_binary(be, x, y, "mul",
                 [](const auto& b, const auto& p, const auto& q) { return b.mul(p, q); });
    check_binary(be, x, y_nonzero, "div",
                 [](const auto& b, const auto& p, const auto& q) { return b.div(p, q); });
    check_binary(be, x, y, "minimum",
                 [](const auto& b, const auto& p, const auto& q) { return b.minimum(p, q); });
    check_binary(be, x, y, "maximum",
                 [](const auto& b, const auto& p, const auto& q) { return b.maximum(p, q); });
    check_binary(be, x, y, "greater",
                 [](const auto& b, const auto& p, const auto& q) { return b.greater(p, q); });
  }
  const auto tied = be.from_host(std::vector<double>{1.0, 2.0, 3.0}, {3});  // [3]
  star::test::require_close(be.to_host(be.greater(tied, tied)), {0.0, 0.0, 0.0}, 0.0,
                            "greater of equal values");
}

TEMPLATE_LIST_TEST_CASE("conformance: scalar arithmetic and every unary op", "[conformance]",
                        star::test::all_backends) {
  const TestType be{};
  for (const shape& s : {shape{}, shape{7}, shape{3, 5, 2}, shape{0, 4}, shape{300, 333}}) {
    const std::uint64_t seed = 200 + static_cast<std::uint64_t>(star::numel(s));
    INFO("seed " << seed);
    const auto x = random_input(s, seed, -5.0, 5.0);
    const auto positive = random_input(s, seed + 1, 0.01, 10.0);
    check_unary(be, x, "add 2.5", [](const auto& b, const auto& p) { return b.add(p, 2.5); });
    check_unary(be, x, "mul -0.75", [](const auto& b, const auto& p) { return b.mul(p, -0.75); });
    check_unary(be, x, "exp", [](const auto& b, const auto& p) { return b.exp(p); });
    check_unary(be, positive, "log", [](const auto& b, const auto& p) { return b.log(p); });
    check_unary(be, x, "clamp", [](const auto& b, const auto& p) { return b.clamp(p, -1.5, 2.0); });
    check_unary(be, x, "pow 2", [](const auto& b, const auto& p) { return b.pow(p, 2.0); });
    check_unary(be, x, "pow 3", [](const auto& b, const auto& p) { return b.pow(p, 3.0); });
    for (const double c : {0.5, -1.0, 1.7, 0.0})
      check_unary(be, positive, "pow " + std::to_string(c),
                  [c](const auto& b, const auto& p) { return b.pow(p, c); });
  }
  const auto edge = be.from_host(std::vector<double>{0.0, 1.0, -3.0, 4.0}, {2, 2});  // [2, 2]
  const auto logs = be.to_host(be.log(edge));
  REQUIRE(std::isinf(logs[0]));
  REQUIRE(logs[0] < 0.0);
  REQUIRE(logs[1] == 0.0);
  REQUIRE(std::isnan(logs[2]));
  star::test::require_close(be.to_host(be.clamp(edge, 0.5, 0.5)), {0.5, 0.5, 0.5, 0.5}, 0.0,
                            "clamp to a point");
}

TEMPLATE_LIST_TEST_CASE("conformance: sum and amax over any axes, with and without keepdim",
                        "[conformance]", star::test::all_backends) {
  const TestType be{};
  const std::vector<std::pair<shape, axes_list>> cases = {
      {{3, 4, 5, 6}, {0}},
      {{3, 4, 5, 6}, {1}},
      {{3, 4, 5, 6}, {3}},
      {{3, 4, 5, 6}, {-1}},
      {{3, 4, 5, 6}, {0, 1}},
      {{3, 4, 5, 6}, {1, 2}},
      {{3, 4, 5, 6}, {3, 2}},
      {{3, 4, 5, 6}, {0, 2}},
      {{3, 4, 5, 6}, {1, 3}},
      {{3, 4, 5, 6}, {0, 3}},
      {{3, 4, 5, 6}, {-1, -3}},
      {{3, 4, 5, 6}, {0, 1, 2, 3}},
      {{3, 4, 5, 6}, {}},
      {{3, 1, 5}, {1}},
      {{3, 1, 5}, {0, 2}},
      {{1, 4, 1, 6}, {0, 2}},
      {{7}, {0}},
      {{}, {}},
      {{2, 0, 3}, {1}},
      {{2, 0, 3}, {0}},
      {{512, 300}, {0}},
      {{512, 300}, {1}},
      {{4, 50000}, {0}},
      {{64, 32, 48}, {0, 2}},
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const std::uint64_t seed = 300 + c;
    INFO("seed " << seed);
    const auto& [s, axes] = cases[c];
    const auto x = random_input(s, seed);
    for (const bool keepdim : {false, true}) {
      const std::string what =
          "over axes of case " + std::to_string(c) + (keepdim ? " (keepdim)" : "");
      check_unary(be, x, "sum " + what,
                  [&](const auto& b, const auto& p) { return b.sum(p, axes, keepdim); });
      check_unary(be, x, "amax " + what,
                  [&](const auto& b, const auto& p) { return b.amax(p, axes, keepdim); });
    }
  }
}

TEMPLATE_LIST_TEST_CASE("conformance: batched matmul with broadcast batch dimensions",
                        "[conformance]", star::test::all_backends) {
  const TestType be{};
  const std::vector<std::pair<shape, shape>> cases = {
      {{3, 4}, {4, 5}},              // plain
      {{1, 4}, {4, 1}},              // dot product
      {{2, 3, 4}, {4, 5}},           // shared right operand
      {{3, 4}, {2, 4, 5}},           // shared left operand
      {{2, 3, 4}, {2, 4, 5}},        // same batch
      {{1, 3, 4}, {2, 4, 5}},        // batch of one broadcast
      {{2, 1, 3, 4}, {5, 4, 6}},     // batch dims broadcast both ways
      {{2, 0}, {0, 3}},              // empty inner dimension: zeros
      {{0, 3}, {3, 2}},              // no rows
      {{64, 16, 32}, {64, 32, 16}},  // many small products: threaded over batches
      {{4, 96, 64}, {4, 64, 96}},    // a few larger products
      {{2, 16, 32}, {32, 16}},       // shared right operand, folded
      {{160, 256}, {256, 192}},      // one large product: Eigen's own threads
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const std::uint64_t seed = 400 + c;
    INFO("seed " << seed);
    check_binary(be, random_input(cases[c].first, seed), random_input(cases[c].second, seed + 1),
                 "matmul",
                 [](const auto& b, const auto& p, const auto& q) { return b.matmul(p, q); });
  }
}

TEMPLATE_LIST_TEST_CASE("conformance: reshape, permute, slice and index_select", "[conformance]",
                        star::test::all_backends) {
  const TestType be{};
  const std::uint64_t seed = 500;
  INFO("seed " << seed);
  const auto x = random_input({2, 3, 4, 5}, seed);
  const auto big = random_input({300, 400}, seed + 1);
  check_unary(be, x, "reshape", [](const auto& b, const auto& p) { return b.reshape(p, {6, 20}); });
  check_unary(be, x, "reshape then permute", [](const auto& b, const auto& p) {
    return b.permute(b.reshape(p, {6, 4, 5}), {2, 0, 1});
  });
  for (const axes_list& dims : {axes_list{3, 1, 0, 2}, axes_list{0, 1, 3, 2}, axes_list{1, 0, 2, 3},
                                axes_list{-1, 0, 1, 2}, axes_list{0, 1, 2, 3}})
    check_unary(be, x, "permute", [&](const auto& b, const auto& p) { return b.permute(p, dims); });
  check_unary(be, big, "transpose", [](const auto& b, const auto& p) {
    return b.permute(p, {1, 0});
  });
  const std::vector<std::array<std::int64_t, 3>> slices = {{0, 1, 2},  {1, 0, 3}, {2, 1, 3},
                                                           {-1, 2, 5}, {3, 0, 5}, {2, 2, 2}};
  for (const auto& [axis, begin, end] : slices)
    check_unary(be, x, "slice",
                [&](const auto& b, const auto& p) { return b.slice(p, axis, begin, end); });
  check_unary(be, big, "slice rows",
              [](const auto& b, const auto& p) { return b.slice(p, 0, 10, 290); });
  const std::vector<std::pair<std::int64_t, std::vector<std::int64_t>>> selections = {
      {0, {1, 0, 1}}, {2, {3, 0, 3, 1}}, {3, {4, 2}}, {-1, {0}}};
  for (const auto& [axis, picks] : selections)
    check_unary(be, x, "index_select",
                [&](const auto& b, const auto& p) { return b.index_select(p, axis, picks); });
  const std::vector<std::int64_t> none{}, many_rows{299, 0, 150, 7, 7};
  check_unary(be, x, "index_select none",
              [&](const auto& b, const auto& p) { return b.index_select(p, 1, none); });
  check_unary(be, big, "index_select rows",
              [&](const auto& b, const auto& p) { return b.index_select(p, 0, many_rows); });
}

TEMPLATE_LIST_TEST_CASE("conformance: bad inputs throw shape_error naming the operation",
                        "[conformance]", star::test::all_backends) {
  const TestType be{};
  const auto a = be.full({2, 3}, 1.0);     // [2, 3]
  const auto b = be.full({4}, 1.0);        // [4]
  const auto c = be.full({2, 3, 4}, 1.0);  // [2, 3, 4]
  const auto d = be.full({3, 4, 5}, 1.0);  // [3, 4, 5]
  REQUIRE_THROWS_AS(be.add(a, b), star::shape_error);
  REQUIRE_THROWS_WITH(
      be.add(a, b), Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(
      be.sub(a, b), Catch::Contains("sub") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(
      be.mul(a, b), Catch::Contains("mul") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(
      be.div(a, b), Catch::Contains("div") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(be.minimum(a, b), Catch::Contains("minimum") && Catch::Contains("[2, 3]") &&
                                            Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(be.maximum(a, b), Catch::Contains("maximum") && Catch::Contains("[2, 3]") &&
                                            Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(be.greater(a, b), Catch::Contains("greater") && Catch::Contains("[2, 3]") &&
                                            Catch::Contains("[4]"));

  REQUIRE_THROWS_AS(be.matmul(b, b), star::shape_error);
  REQUIRE_THROWS_WITH(be.matmul(b, b), Catch::Contains("matmul") && Catch::Contains("rank"));
  REQUIRE_THROWS_WITH(be.matmul(a, a), Catch::Contains("matmul") && Catch::Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(be.matmul(c, d), Catch::Contains("matmul") && Catch::Contains("[2]") &&
                                           Catch::Contains("[3]"));

  REQUIRE_THROWS_AS(be.sum(a, {2}, false), star::shape_error);
  REQUIRE_THROWS_WITH(be.sum(a, {-3}, false), Catch::Contains("axis -3"));
  REQUIRE_THROWS_WITH(be.amax(a, {2}, true), Catch::Contains("axis 2"));
  REQUIRE_THROWS_WITH(be.sum(a, {1, -1}, false), Catch::Contains("twice"));

  REQUIRE_THROWS_AS(be.reshape(a, {5}), star::shape_error);
  REQUIRE_THROWS_WITH(be.reshape(a, {5}), Catch::Contains("reshape") && Catch::Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(be.permute(a, {0}), Catch::Contains("permute"));
  REQUIRE_THROWS_WITH(be.permute(a, {0, 0}), Catch::Contains("permute"));
  REQUIRE_THROWS_WITH(be.slice(a, 1, 2, 4),
                      Catch::Contains("slice") && Catch::Contains("extent 3"));
  REQUIRE_THROWS_WITH(be.slice(a, 1, 2, 1), Catch::Contains("slice"));
  REQUIRE_THROWS_WITH(be.slice(a, 2, 0, 1), Catch::Contains("slice") && Catch::Contains("axis 2"));
  const std::vector<std::int64_t> bad_index{0, 3}, negative_index{-1};
  REQUIRE_THROWS_WITH(be.index_select(a, 1, bad_index),
                      Catch::Contains("index_select") && Catch::Contains("index 3"));
  REQUIRE_THROWS_AS(be.index_select(a, 0, negative_index), star::shape_error);
  REQUIRE_THROWS_WITH(be.index_select(a, -3, bad_index), Catch::Contains("index_select"));
  REQUIRE_THROWS_WITH(be.from_host(std::vector<double>{1, 2, 3}, {2, 2}),
                      Catch::Contains("from_host") && Catch::Contains("[2, 2]"));
}

TEMPLATE_LIST_TEST_CASE("conformance: ops::mean, logsumexp and softmax", "[conformance]",
                        star::test::all_backends) {
  const TestType be{};
  const std::uint64_t seed = 600;
  INFO("seed " << seed);
  const auto x = random_input({4, 6, 9}, seed, -3.0, 3.0);
  check_unary(be, x, "mean", [](const auto& b, const auto& p) {
    return star::ops::mean(b, p, {0, 2});
  });
  check_unary(be, x, "mean keepdim",
              [](const auto& b, const auto& p) { return star::ops::mean(b, p, {-1}, true); });
  for (const std::int64_t axis : {0, 1, -1}) {
    check_unary(be, x, "logsumexp",
                [axis](const auto& b, const auto& p) { return star::ops::logsumexp(b, p, axis); });
    check_unary(be, x, "softmax",
                [axis](const auto& b, const auto& p) { return star::ops::softmax(b, p, axis); });
  }

  // Inputs around 1e3 overflow a naive exp; the stabilised forms stay finite and exact.
  reference_tensor large = random_input({5, 40}, seed + 1, -4.0, 4.0);
  for (double& v : large.values) v += 1000.0;
  check_unary(be, large, "logsumexp near 1e3",
              [](const auto& b, const auto& p) { return star::ops::logsumexp(b, p, 1); });
  const auto probabilities = star::ops::softmax(be, to_backend(be, large), 1);  // [5, 40]
  for (const double v : be.to_host(probabilities)) REQUIRE(std::isfinite(v));
  star::test::require_close(be.to_host(be.sum(probabilities, {1}, false)),
                            std::vector<double>(5, 1.0), star::test::tolerance<TestType>::value,
                            "softmax rows sum to 1");
  require_matches(be, probabilities, star::ops::softmax(oracle, large, 1), "softmax near 1e3");
}

TEMPLATE_LIST_TEST_CASE("conformance: minimum, maximum, amax and clamp propagate NaN, as ATen",
                        "[conformance]", star::test::all_backends) {
  const TestType be{};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // NaN first, second, in both and in neither operand; 32 pairs so vector kernels see it too.
  std::vector<double> x(32, 1.0), y(32, 2.0);
  for (std::size_t i = 0; i < 32; i += 4) {
    x[i] = nan;
    y[i + 1] = nan;
    x[i + 2] = y[i + 2] = nan;
  }
  const auto a = be.from_host(x, {32}), b = be.from_host(y, {32});  // [32], [32]
  for (const bool flipped : {false, true}) {
    INFO((flipped ? "b, a" : "a, b"));
    const auto& first = flipped ? b : a;
    const auto& second = flipped ? a : b;
    const std::vector<double> low = be.to_host(be.minimum(first, second));    // [32]
    const std::vector<double> high = be.to_host(be.maximum(first, second));   // [32]
    for (std::size_t i = 0; i < 32; ++i) {
      INFO("entry " << i << ": " << x[i] << ", " << y[i]);
      if (i % 4 == 3) {
        CHECK(low[i] == 1.0);
        CHECK(high[i] == 2.0);
      } else {
        CHECK(std::isnan(low[i]));
        CHECK(std::isnan(high[i]));
      }
    }
  }
  // A NaN scalar operand, broadcast against a tensor and the other way round.
  const auto nan_scalar = be.full({}, nan);  // []
  for (const double v : be.to_host(be.maximum(b, nan_scalar))) CHECK(std::isnan(v));
  for (const double v : be.to_host(be.minimum(nan_scalar, b))) CHECK(std::isnan(v));
  for (const double v : be.to_host(be.clamp(nan_scalar, -1.0, 1.0))) CHECK(std::isnan(v));
  const std::vector<double> clamped = be.to_host(be.clamp(a, 0.0, 1.5));  // [32]
  for (std::size_t i = 0; i < 32; ++i) CHECK(std::isnan(clamped[i]) == std::isnan(x[i]));

  // amax: a slice holding a NaN anywhere (first, middle, last) reduces to NaN. [3, 40]
  std::vector<double> rows(3 * 40, 0.5);
  rows[0] = nan;        // row 0, first
  rows[40 + 21] = nan;  // row 1, middle
  rows[2 * 40 + 39] = 7.0;
  for (const std::int64_t axis : {1, 0}) {
    INFO("amax over axis " << axis);
    const auto values = axis == 1 ? be.from_host(rows, {3, 40})                          // [3, 40]
                                  : be.permute(be.from_host(rows, {3, 40}), {1, 0});  // [40, 3]
    const std::vector<double> got = be.to_host(be.amax(values, {axis}, false));       // [3]
    CHECK(std::isnan(got[0]));
    CHECK(std::isnan(got[1]));
    CHECK(got[2] == 7.0);
  }
  CHECK(std::isnan(
      be.to_host(be.amax(be.from_host(rows, {3, 40}), {0, 1}, false)).front()));  // []
}

TEMPLATE_LIST_TEST_CASE("conformance: logsumexp of rows with infinite maxima, as ATen",
                        "[conformance]", star::test::all_backends) {
  const TestType be{};
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Rows: all -inf, some -inf, one +inf, a NaN, finite. [5, 3]
  const std::vector<double> rows{-inf, -inf, -inf,  // -inf (was -inf - -inf = NaN)
                                 -inf, 0.0,  -inf,  // log(1) = 0
                                 inf,  1.0,  -inf,  // +inf (was inf - inf = NaN)
                                 0.0,  nan,  1.0,   // NaN
                                 0.0,  0.0,  0.0};  // log 3
  const auto x = be.from_host(rows, {5, 3});  // [5, 3]
  const std::vector<double> exps = be.to_host(be.exp(x));  // [5, 3]
  for (const double e : {exps[0], exps[1], exps[2], exps[3], exps[5], exps[8]})
    CHECK(e == 0.0);  // exp(-inf) exactly 0, not a tiny positive number
  for (const bool keepdim : {false, true}) {
    const auto lse = star::ops::logsumexp(be, x, 1, keepdim);  // [5] or [5, 1]
    REQUIRE(be.shape_of(lse) == (keepdim ? shape{5, 1} : shape{5}));
    const std::vector<double> got = be.to_host(lse);
    CHECK(got[0] == -inf);
    CHECK(got[1] == 0.0);
    CHECK(got[2] == inf);
    CHECK(std::isnan(got[3]));
    CHECK(got[4] == Approx(std::log(3.0)).epsilon(star::test::tolerance<TestType>::value));
  }
  // Along the first axis too (the columns of the transpose).
  const auto columns = be.permute(x, {1, 0});                                   // [3, 5]
  const std::vector<double> got = be.to_host(star::ops::logsumexp(be, columns, 0));  // [5]
  CHECK(got[0] == -inf);
  CHECK(got[2] == inf);
  CHECK(std::isnan(got[3]));
}

TEST_CASE("odd backend: every algorithm call goes through its shared operation counter",
          "[conformance][odd]") {
  const star::test::odd_backend be{};
  const star::test::odd_backend copy = be;
  REQUIRE(be.operations() == 0);
  const auto x = be.from_host(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});  // [2, 3]
  REQUIRE(be.operations() == 1);
  const auto y = be.add(x, x);  // [2, 3]
  REQUIRE(be.operations() == 2);
  const auto before = copy.operations();
  const auto p = star::ops::softmax(copy, y, -1);  // [2, 3]
  REQUIRE(copy.operations() > before);
  REQUIRE(be.operations() == copy.operations());
  star::test::require_close(copy.to_host(copy.sum(p, {1}, false)), {1.0, 1.0}, 1e-15);
  REQUIRE(star::test::odd_backend{}.operations() == 0);  // a new backend has its own counter
  REQUIRE_THROWS_AS(be.clamp(x, 1.0, 0.0), star::value_error);
}

#if STAR_TEST_WITH_EIGEN
TEMPLATE_TEST_CASE("eigen backend: values in and out without conversion", "[conformance][eigen]",
                   float, double) {
  const star::eigen::backend<TestType> be{};
  const std::vector<TestType> values{TestType(0.1), TestType(-2), TestType(3.5), TestType(1e-3)};
  const auto t = be.from_values(values, {2, 2});  // [2, 2]
  const auto view = be.values_of(t);
  REQUIRE(std::vector<TestType>(view.begin(), view.end()) == values);
  REQUIRE(be.shape_of(t) == shape{2, 2});

  typename star::eigen::backend<TestType>::values_type owned(3);
  owned << TestType(1), TestType(2), TestType(3);
  const TestType* storage = owned.data();
  const auto adopted = be.adopt_values(std::move(owned), {3});  // [3]
  REQUIRE(be.values_of(adopted).data() == storage);
  REQUIRE_THROWS_WITH(be.from_values(values, {3}), Catch::Contains("from_values"));
  REQUIRE_THROWS_AS(be.clamp(t, 1.0, 0.0), star::value_error);
}

#ifdef _OPENMP
TEST_CASE("eigen backend: results are identical for one thread and many", "[conformance][eigen]") {
  const star::eigen::backend<float> be{};
  const auto x = to_backend(be, random_input({256, 700}, 700));          // [256, 700]
  const auto batched = to_backend(be, random_input({128, 8, 70}, 701));  // [128, 8, 70]
  const auto factors = to_backend(be, random_input({128, 70, 9}, 702));  // [128, 70, 9]
  const auto run = [&] {
    std::vector<std::vector<double>> results;
    results.push_back(be.to_host(be.sum(x, {0}, false)));
    results.push_back(be.to_host(be.sum(x, {1}, false)));
    results.push_back(be.to_host(be.amax(batched, {0, 2}, false)));
    results.push_back(be.to_host(be.exp(x)));
    results.push_back(be.to_host(be.add(x, be.sum(x, {0}, true))));
    results.push_back(be.to_host(be.permute(batched, {2, 0, 1})));
    results.push_back(be.to_host(be.matmul(batched, factors)));
    return results;
  };
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto serial = run();
  omp_set_num_threads(std::max(threads, 2));
  const auto parallel = run();
  omp_set_num_threads(threads);
  for (std::size_t i = 0; i < serial.size(); ++i) {
    INFO("result " << i);
    REQUIRE(serial[i] == parallel[i]);
  }
}

TEST_CASE("eigen parallel_ranges: an exception thrown on a thread is rethrown to the caller",
          "[conformance][eigen]") {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(4);
  constexpr std::int64_t count = 8;  // 4 ranges of 2 items
  std::vector<int> done(count, 0);
  bool in_parallel = false;
  std::string message;
  try {
    star::eigen::detail::parallel_ranges(
        count, star::eigen::detail::min_parallel_work * 2,
        [&](std::int64_t begin, std::int64_t end) {
          if (begin == 0) in_parallel = omp_in_parallel() != 0;
          for (std::int64_t i = begin; i < end; ++i) done[static_cast<std::size_t>(i)] = 1;
          if (begin > 0) throw star::value_error("range from " + std::to_string(begin));
        });
  } catch (const star::value_error& e) {
    message = e.what();
  }
  omp_set_num_threads(threads);
  REQUIRE(in_parallel);  // the ranges ran on an OpenMP team
  CHECK_THAT(message, Catch::StartsWith("range from "));  // one of the three throws
  CHECK(std::count(done.begin(), done.end(), 1) == count);  // every range still ran
}
#endif
#endif
