// Spatio-temporal allocation (docs/math.md §4): relevance maps to mean-one weights W, the
// spatially resolved advantage, and the upsampling to the latent grid.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include "star/allocation/all.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

using star::mixing_schedule;

constexpr mixing_schedule all_schedules[] = {mixing_schedule::constant, mixing_schedule::linear,
                                             mixing_schedule::cosine, mixing_schedule::entropy};

// Rows = (rollout, step) pairs of a 4 x 6 token grid: random, peaked, one-hot, all-zero.
constexpr std::int64_t grid_h = 4, grid_w = 6, tokens = grid_h * grid_w, rows = 6;

std::vector<double> relevance_maps(std::uint64_t seed) {
  std::vector<double> r = star::test::uniform(rows * tokens, seed, 0.0, 1.0);
  for (std::int64_t n = 0; n < tokens; ++n) {
    r[1 * tokens + n] = std::pow(r[1 * tokens + n], 8.0);     // peaked
    r[3 * tokens + n] = n == 7 ? 0.3 : 0.0;                    // one-hot
    r[4 * tokens + n] = 0.0;                                   // all zero
    r[5 * tokens + n] = n % 5 == 0 ? 0.0 : r[5 * tokens + n];  // some exact zeros
  }
  return r;
}

// The obvious double loops, independent of the library: m, entropy, lambda, W, and the cap by
// bisection on c in sum_n min(w_max, c W0(n)) = N.
struct host_allocation {
  std::vector<double> weights, lambda, entropy;
};

std::vector<double> host_cap(std::vector<double> w0, double w_max) {
  const auto n = static_cast<double>(w0.size());
  double support = 0, smallest = std::numeric_limits<double>::infinity();
  for (const double x : w0)
    if (x > 0) ++support, smallest = std::min(smallest, x);
  if (w_max * support < n) {  // the support alone cannot hold N: the rest is spread evenly
    for (double& x : w0) x = x > 0 ? w_max : (n - w_max * support) / (n - support);
    return w0;
  }
  double lo = 0, hi = 2 * w_max / smallest;
  for (int i = 0; i < 200; ++i) {
    const double c = 0.5 * (lo + hi);
    double total = 0;
    for (const double x : w0) total += std::min(w_max, c * x);
    (total < n ? lo : hi) = c;
  }
  for (double& x : w0) x = std::min(w_max, hi * x);
  return w0;
}

host_allocation host_allocate(const std::vector<double>& r, std::int64_t n_rows, std::int64_t n,
                              const star::allocation_options& o, std::int64_t k, std::int64_t K) {
  host_allocation out;
  for (std::int64_t b = 0; b < n_rows; ++b) {
    std::vector<double> m(static_cast<std::size_t>(n));
    double total = 0;
    for (std::int64_t i = 0; i < n; ++i) total += m[i] = std::pow(r[b * n + i], 1.0 / o.tau);
    for (double& x : m) x = total > 0 ? x / total : 1.0 / static_cast<double>(n);
    double h = 0;
    for (const double x : m)
      if (x > 0) h -= x * std::log(x);
    const double t = K == 1 ? 0.0 : static_cast<double>(k) / static_cast<double>(K - 1);
    double lambda = o.lambda;
    if (o.schedule == mixing_schedule::linear)
      lambda = (1 - t) * o.lambda_start + t * o.lambda_end;
    if (o.schedule == mixing_schedule::cosine)
      lambda = o.lambda_end + (o.lambda_start - o.lambda_end) * std::pow(std::cos(0.5 * std::numbers::pi * t), 2);
    if (o.schedule == mixing_schedule::entropy)
      lambda = std::clamp(h / std::log(static_cast<double>(n)), 0.0, 1.0);
    std::vector<double> w(m.size());
    for (std::size_t i = 0; i < m.size(); ++i)
      w[i] = static_cast<double>(n) * ((1 - lambda) * m[i] + lambda / static_cast<double>(n));
    if (o.w_max) w = host_cap(w, *o.w_max);
    out.weights.insert(out.weights.end(), w.begin(), w.end());
    out.lambda.push_back(lambda);
    out.entropy.push_back(h);
  }
  return out;
}

std::vector<double> row_means(const std::vector<double>& x, std::int64_t n) {
  std::vector<double> means(x.size() / static_cast<std::size_t>(n), 0.0);
  for (std::size_t i = 0; i < x.size(); ++i) means[i / static_cast<std::size_t>(n)] += x[i] / static_cast<double>(n);
  return means;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE(
    "I2 conservation: mean of W is 1 for every rollout and step under every option",
    "[allocation][invariant]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 11;
  INFO("seed " << seed);
  const auto relevance = be.from_host(relevance_maps(seed), {rows, tokens});  // [B, N]
  const std::vector<double> advantage_values{1.5, -0.7, 0.0, 2.0, -3.0, 0.25};
  const auto advantages = be.from_host(advantage_values, {rows});  // [B]
  constexpr std::int64_t steps = 9;
  for (const auto schedule : all_schedules)
    for (const double tau : {0.25, 1.0, 3.0})
      for (const std::optional<double> w_max : {std::optional<double>{}, std::optional<double>{1.0},
                                                std::optional<double>{1.2},
                                                std::optional<double>{4.0}})
        for (std::int64_t step = 0; step < steps; ++step) {
          star::allocation_options options;
          options.schedule = schedule;
          options.tau = tau;
          options.w_max = w_max;
          INFO("schedule " << static_cast<int>(schedule) << " tau " << tau << " w_max "
                           << w_max.value_or(0) << " step " << step);
          const auto result = star::allocate(be, relevance, step, steps, options);
          const auto w = be.to_host(result.weights);
          star::test::require_close(row_means(w, tokens), std::vector<double>(rows, 1.0), tol,
                                    "row means of W");
          for (const double x : w) {
            REQUIRE(x >= -tol);
            REQUIRE(x <= w_max.value_or(static_cast<double>(tokens)) + tol);
          }
          const double gamma = 0.8;
          const auto spatial = be.to_host(
              star::spatial_advantage(be, advantages, gamma, result.weights));  // [B, N]
          std::vector<double> want(rows);
          for (std::int64_t b = 0; b < rows; ++b) want[b] = advantage_values[b] * gamma;
          star::test::require_close(row_means(spatial, tokens), want, tol,
                                    "sum_n Â / N = A gamma");
        }
}

TEMPLATE_LIST_TEST_CASE("allocate matches an independent host implementation on seeded random maps",
                        "[allocation]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  for (const std::uint64_t seed : {1u, 2u, 3u}) {
    INFO("seed " << seed);
    const auto values = relevance_maps(seed);
    const auto relevance = be.from_host(values, {rows, tokens});  // [B, N]
    for (const auto schedule : all_schedules)
      for (const std::optional<double> w_max : {std::optional<double>{}, std::optional<double>{1.2},
                                                std::optional<double>{2.5}}) {
        star::allocation_options options;
        options.schedule = schedule;
        options.tau = 0.5 + static_cast<double>(seed) * 0.4;
        options.lambda = 0.3;
        options.lambda_start = 0.9;
        options.lambda_end = 0.1;
        options.w_max = w_max;
        INFO("schedule " << static_cast<int>(schedule) << " w_max " << w_max.value_or(0));
        const auto got = star::allocate(be, relevance, 3, 7, options);
        const auto want = host_allocate(values, rows, tokens, options, 3, 7);
        star::test::require_close(be.to_host(got.weights), want.weights, tol, "W");
        star::test::require_close(got.lambda, want.lambda, tol, "lambda");
        star::test::require_close(got.entropy, want.entropy, tol, "entropy");
        std::int64_t at_cap = 0;
        for (const double x : want.weights) at_cap += w_max && x >= *w_max - 1e-9;
        REQUIRE(got.capped_entries == at_cap);
        REQUIRE(got.cap_active() == (at_cap > 0));
      }
  }
}

TEMPLATE_LIST_TEST_CASE("allocate: rows at different steps match one call per step",
                        "[allocation]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 17;
  INFO("seed " << seed);
  const auto values = relevance_maps(seed);
  const std::vector<std::int64_t> steps{0, 8, 3, 3, 5, 1};
  for (const auto schedule : all_schedules) {
    star::allocation_options options;
    options.schedule = schedule;
    options.w_max = 1.5;
    INFO("schedule " << static_cast<int>(schedule));
    const auto mixed = star::allocate(be, be.from_host(values, {rows, tokens}), steps, 9, options);
    const auto got = be.to_host(mixed.weights);
    for (std::int64_t b = 0; b < rows; ++b) {
      const std::vector<double> row(values.begin() + b * tokens, values.begin() + (b + 1) * tokens);
      const auto alone = star::allocate(be, be.from_host(row, {1, tokens}), steps[b], 9, options);
      star::test::require_close(
          std::vector<double>(got.begin() + b * tokens, got.begin() + (b + 1) * tokens),
          be.to_host(alone.weights), tol, "row " + std::to_string(b));
      REQUIRE(mixed.lambda[b] == Approx(alone.lambda[0]).margin(tol));
    }
  }
}

TEMPLATE_LIST_TEST_CASE("allocate: an all-zero row gets the uniform allocation, never NaN",
                        "[allocation]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const auto zeros = be.full({2, tokens}, 0.0);  // [B, N]
  for (const auto schedule : all_schedules)
    for (const double tau : {0.2, 1.0, 5.0}) {
      star::allocation_options options;
      options.schedule = schedule;
      options.tau = tau;
      options.lambda = 0.0;
      options.lambda_end = 0.0;
      options.w_max = 1.5;
      const auto result = star::allocate(be, zeros, 4, 5, options);
      star::test::require_close(be.to_host(result.weights),
                                std::vector<double>(2 * tokens, 1.0), tol, "W");
      star::test::require_close(result.entropy,
                                std::vector<double>(2, std::log(static_cast<double>(tokens))), tol,
                                "entropy of the uniform map");
      REQUIRE_FALSE(result.cap_active());
    }
}

TEMPLATE_LIST_TEST_CASE("I4 equivariance: permuting rollouts and flipping the grid permute/flip the weights",
                        "[allocation][invariant]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 5;
  INFO("seed " << seed);
  const auto values = relevance_maps(seed);
  const std::vector<std::int64_t> permutation{4, 2, 5, 0, 3, 1};
  // Row b of the permuted batch is row permutation[b]; the flipped grid reverses rows and columns.
  const auto token_of = [](std::int64_t b, std::int64_t n) { return b * tokens + n; };
  const auto flipped_token = [](std::int64_t n) {
    return (grid_h - 1 - n / grid_w) * grid_w + (grid_w - 1 - n % grid_w);
  };
  std::vector<double> permuted(values.size()), flipped(values.size());
  for (std::int64_t b = 0; b < rows; ++b)
    for (std::int64_t n = 0; n < tokens; ++n) {
      permuted[token_of(b, n)] = values[token_of(permutation[b], n)];
      flipped[token_of(b, n)] = values[token_of(b, flipped_token(n))];
    }
  const std::vector<double> advantage_values{0.5, -1.0, 2.0, 0.0, 1.0, -0.25};
  std::vector<double> permuted_advantages(rows);
  for (std::int64_t b = 0; b < rows; ++b) permuted_advantages[b] = advantage_values[permutation[b]];

  for (const auto schedule : all_schedules)
    for (const std::optional<double> w_max : {std::optional<double>{}, std::optional<double>{1.3}}) {
      star::allocation_options options;
      options.schedule = schedule;
      options.tau = 0.7;
      options.w_max = w_max;
      INFO("schedule " << static_cast<int>(schedule) << " w_max " << w_max.value_or(0));
      const auto base = star::allocate(be, be.from_host(values, {rows, tokens}), 2, 9, options);
      const auto base_advantage = be.to_host(star::spatial_advantage(
          be, be.from_host(advantage_values, {rows}), 1.0, base.weights));  // [B, N]
      const auto w = be.to_host(base.weights);

      const auto by_rollout = star::allocate(be, be.from_host(permuted, {rows, tokens}), 2, 9, options);
      const auto by_rollout_advantage = be.to_host(star::spatial_advantage(
          be, be.from_host(permuted_advantages, {rows}), 1.0, by_rollout.weights));  // [B, N]
      const auto by_grid = star::allocate(be, be.from_host(flipped, {rows, tokens}), 2, 9, options);
      std::vector<double> want_permuted(w.size()), want_advantage(w.size()), want_flipped(w.size());
      for (std::int64_t b = 0; b < rows; ++b)
        for (std::int64_t n = 0; n < tokens; ++n) {
          want_permuted[token_of(b, n)] = w[token_of(permutation[b], n)];
          want_advantage[token_of(b, n)] = base_advantage[token_of(permutation[b], n)];
          want_flipped[token_of(b, n)] = w[token_of(b, flipped_token(n))];
        }
      star::test::require_close(be.to_host(by_rollout.weights), want_permuted, tol, "permuted W");
      star::test::require_close(by_rollout_advantage, want_advantage, tol, "permuted Â");
      star::test::require_close(be.to_host(by_grid.weights), want_flipped, tol, "flipped W");
      for (std::int64_t b = 0; b < rows; ++b) {
        REQUIRE(by_rollout.lambda[b] == Approx(base.lambda[permutation[b]]).margin(tol));
        REQUIRE(by_grid.lambda[b] == Approx(base.lambda[b]).margin(tol));
      }
    }
}

TEMPLATE_LIST_TEST_CASE("spatial_advantage: Â = A gamma W, per-row or one gamma, any trailing shape",
                        "[allocation]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 21;
  INFO("seed " << seed);
  const auto w = star::test::uniform(3 * 8, seed, 0.0, 2.0);
  const std::vector<double> a{1.0, -2.0, 0.5}, gamma{0.5, 1.0, 1.5};
  const auto weights = be.from_host(w, {3, 8});  // [B, N]
  std::vector<double> per_row(w.size()), shared(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    per_row[i] = a[i / 8] * gamma[i / 8] * w[i];
    shared[i] = a[i / 8] * 0.5 * w[i];
  }
  star::test::require_close(be.to_host(star::spatial_advantage(be, be.from_host(a, {3}),
                                                               be.from_host(gamma, {3}), weights)),
                            per_row, tol, "per-row gamma");
  star::test::require_close(
      be.to_host(star::spatial_advantage(be, be.from_host(a, {3}), 0.5, weights)), shared, tol,
      "one gamma");
  const auto cells = be.from_host(w, {3, 2, 4});  // [B, h*P, w*P]
  star::test::require_close(be.to_host(star::spatial_advantage(be, be.from_host(a, {3}),
                                                               be.from_host(gamma, {3}), cells)),
                            per_row, tol, "latent-grid weights");
}

TEMPLATE_LIST_TEST_CASE("upsample_to_latent: each latent cell holds its token's value",
                        "[allocation]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 8;
  INFO("seed " << seed);
  constexpr std::int64_t patch = 3, batch = 2;
  const auto values = star::test::uniform(batch * tokens, seed, 0.0, 2.0);
  const auto latent = star::upsample_to_latent(be, be.from_host(values, {batch, tokens}), grid_h,
                                               grid_w, patch);  // [B, h*P, w*P]
  REQUIRE(be.shape_of(latent) == star::shape{batch, grid_h * patch, grid_w * patch});
  std::vector<double> want;
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t y = 0; y < grid_h * patch; ++y)
      for (std::int64_t x = 0; x < grid_w * patch; ++x)
        want.push_back(values[b * tokens + (y / patch) * grid_w + x / patch]);
  const auto got = be.to_host(latent);
  star::test::require_close(got, want, tol, "latent cells");
  star::test::require_close(row_means(got, grid_h * patch * grid_w * patch),
                            row_means(values, tokens), tol, "means preserved");
}

TEMPLATE_LIST_TEST_CASE("allocation entry points reject bad inputs and options, naming them",
                        "[allocation][errors]", star::test::all_backends) {
  const TestType be{};
  const auto good = be.full({2, 4}, 1.0);  // [B, N]
  const auto allocate = [&](const auto& relevance, const star::allocation_options& options) {
    return star::allocate(be, relevance, 0, 10, options);
  };
  const auto bad_option = [&](auto mutate, const char* name) {
    star::allocation_options options;
    mutate(options);
    REQUIRE_THROWS_AS(allocate(good, options), star::option_error);
    REQUIRE_THROWS_WITH(allocate(good, options), Catch::Contains(name));
    REQUIRE_THROWS_WITH(options.validate(), Catch::Contains(name));
  };
  bad_option([](auto& o) { o.tau = 0.0; }, "tau");
  bad_option([](auto& o) { o.tau = -1.0; }, "tau");
  bad_option([](auto& o) { o.tau = std::nan(""); }, "tau");
  bad_option([](auto& o) { o.lambda = 1.5; }, "lambda");
  bad_option([](auto& o) { o.lambda = -0.1; }, "lambda");
  bad_option([](auto& o) { o.lambda_start = 2.0; }, "lambda_start");
  bad_option([](auto& o) { o.lambda_end = -0.5; }, "lambda_end");
  bad_option([](auto& o) { o.lambda = std::nan(""); }, "lambda");
  bad_option([](auto& o) { o.w_max = 0.9; }, "w_max");
  bad_option([](auto& o) { o.w_max = std::numeric_limits<double>::infinity(); }, "w_max");
  bad_option([](auto& o) { o.schedule = static_cast<mixing_schedule>(9); }, "schedule");

  REQUIRE_THROWS_AS(star::allocate(be, good, 10, 10), star::option_error);
  REQUIRE_THROWS_WITH(star::allocate(be, good, 10, 10), Catch::Contains("step"));
  REQUIRE_THROWS_WITH(star::allocate(be, good, -1, 10), Catch::Contains("step"));
  REQUIRE_THROWS_WITH(star::allocate(be, good, 0, 0), Catch::Contains("num_steps"));
  const std::vector<std::int64_t> three_steps{0, 1, 2};
  REQUIRE_THROWS_AS(star::allocate(be, good, three_steps, 10), star::shape_error);
  REQUIRE_THROWS_WITH(star::allocate(be, good, three_steps, 10),
                      Catch::Contains("steps") && Catch::Contains("[3]"));

  const auto wrong_rank = be.full({2, 2, 2}, 1.0);  // [B, h, w]
  REQUIRE_THROWS_AS(allocate(wrong_rank, {}), star::shape_error);
  REQUIRE_THROWS_WITH(allocate(wrong_rank, {}),
                      Catch::Contains("relevance") && Catch::Contains("[2, 2, 2]"));
  REQUIRE_THROWS_WITH(allocate(be.full({0, 4}, 1.0), {}), Catch::Contains("relevance"));
  const auto negative = be.from_host(std::vector<double>{1, 2, -0.5, 1}, {1, 4});     // [B, N]
  const auto not_a_number = be.from_host(std::vector<double>{1, NAN, 0, 1}, {1, 4});  // [B, N]
  const auto infinite = be.from_host(std::vector<double>{1, INFINITY, 0, 1}, {1, 4});  // [B, N]
  for (const auto* bad : {&negative, &not_a_number, &infinite}) {
    REQUIRE_THROWS_AS(allocate(*bad, {}), star::value_error);
    REQUIRE_THROWS_WITH(allocate(*bad, {}), Catch::Contains("relevance"));
  }
  REQUIRE_THROWS_AS(star::sharpened_map(be, good, 0.0), star::option_error);
  REQUIRE_THROWS_WITH(star::sharpened_map(be, good, 0.0), Catch::Contains("tau"));
  REQUIRE_THROWS_WITH(star::map_entropy(be, be.full({4}, 0.25)), Catch::Contains("map"));

  const auto a = be.full({2}, 1.0);  // [B]
  REQUIRE_THROWS_AS(star::spatial_advantage(be, be.full({3}, 1.0), 1.0, good), star::shape_error);
  REQUIRE_THROWS_WITH(star::spatial_advantage(be, be.full({3}, 1.0), 1.0, good),
                      Catch::Contains("advantages") && Catch::Contains("[3]"));
  REQUIRE_THROWS_WITH(star::spatial_advantage(be, a, be.full({2, 1}, 1.0), good),
                      Catch::Contains("gamma"));
  REQUIRE_THROWS_WITH(star::spatial_advantage(be, a, 1.0, be.full({2}, 1.0)),
                      Catch::Contains("weights"));
  REQUIRE_THROWS_AS(star::spatial_advantage(be, a, -1.0, good), star::value_error);
  REQUIRE_THROWS_WITH(star::spatial_advantage(be, a, NAN, good), Catch::Contains("gamma"));
  REQUIRE_THROWS_WITH(star::spatial_advantage(be, a, be.from_host(std::vector<double>{1, -1}, {2}), good),
                      Catch::Contains("gamma"));
  REQUIRE_THROWS_AS(star::spatial_advantage(be, be.from_host(std::vector<double>{1, NAN}, {2}), 1.0, good),
                    star::value_error);
  REQUIRE_THROWS_WITH(star::spatial_advantage(be, be.from_host(std::vector<double>{1, NAN}, {2}), 1.0, good),
                      Catch::Contains("advantages"));

  REQUIRE_THROWS_AS(star::upsample_to_latent(be, good, 2, 3, 2), star::shape_error);
  REQUIRE_THROWS_WITH(star::upsample_to_latent(be, good, 2, 3, 2),
                      Catch::Contains("token_values") && Catch::Contains("[2, 4]"));
  REQUIRE_THROWS_WITH(star::upsample_to_latent(be, be.full({8}, 1.0), 2, 4, 2),
                      Catch::Contains("token_values"));
  REQUIRE_THROWS_AS(star::upsample_to_latent(be, good, 2, 2, 0), star::option_error);
  REQUIRE_THROWS_WITH(star::upsample_to_latent(be, good, 2, 2, 0), Catch::Contains("patch"));
  REQUIRE_THROWS_WITH(star::upsample_to_latent(be, good, 0, 4, 2), Catch::Contains("grid"));
}
