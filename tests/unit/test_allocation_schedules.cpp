// Temporal adaptivity (docs/math.md §4): the mixing schedules lambda_k and the per-step
// temporal weights gamma_k.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "star/allocation/all.hpp"
#include "star/objective/flow_schedule.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"

using star::mixing_schedule;

TEST_CASE("mixing schedules: constant, linear and cosine endpoints and monotonicity",
          "[allocation][schedule]") {
  star::allocation_options options;
  constexpr std::int64_t steps = 9;
  REQUIRE(options.lambda == 0.5);
  for (std::int64_t k = 0; k < steps; ++k)
    REQUIRE(star::mixing_lambda(options, k, steps, 0.0) == 0.5);

  for (const auto schedule : {mixing_schedule::linear, mixing_schedule::cosine}) {
    INFO("schedule " << static_cast<int>(schedule));
    options.schedule = schedule;
    for (const auto& [start, end] : {std::pair{1.0, 0.5}, std::pair{0.2, 0.9}}) {
      options.lambda_start = start;
      options.lambda_end = end;
      REQUIRE(star::mixing_lambda(options, 0, steps, 0.0) == Approx(start).margin(1e-15));
      REQUIRE(star::mixing_lambda(options, steps - 1, steps, 0.0) == Approx(end).margin(1e-15));
      REQUIRE(star::mixing_lambda(options, (steps - 1) / 2, steps, 0.0) ==
              Approx(0.5 * (start + end)).margin(1e-15));
      double previous = start;
      for (std::int64_t k = 1; k < steps; ++k) {
        const double lambda = star::mixing_lambda(options, k, steps, 0.0);
        REQUIRE((end < start ? lambda < previous : lambda > previous));
        previous = lambda;
      }
    }
    REQUIRE(star::mixing_lambda(options, 0, 1, 0.0) == Approx(options.lambda_start).margin(1e-15));
  }
  // The cosine ease is flatter than the line next to both endpoints.
  options.lambda_start = 1.0;
  options.lambda_end = 0.0;
  options.schedule = mixing_schedule::cosine;
  const double cosine_first = star::mixing_lambda(options, 1, steps, 0.0);
  options.schedule = mixing_schedule::linear;
  REQUIRE(cosine_first > star::mixing_lambda(options, 1, steps, 0.0));
  // The documented defaults: uniform at the noisiest step, the constant default at the last.
  const star::allocation_options defaults;
  REQUIRE(defaults.lambda_start == 1.0);
  REQUIRE(defaults.lambda_end == defaults.lambda);
}

TEMPLATE_LIST_TEST_CASE("entropy schedule: a uniform map gives lambda 1, a one-hot map lambda 0",
                        "[allocation][schedule]", star::test::all_backends) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  constexpr std::int64_t tokens = 16;
  std::vector<double> maps(3 * tokens, 0.7);                  // row 0 uniform
  for (std::int64_t n = 0; n < tokens; ++n) maps[tokens + n] = n == 5 ? 2.0 : 0.0;  // one-hot
  for (std::int64_t n = 0; n < tokens; ++n) maps[2 * tokens + n] = n < 4 ? 1.0 : 0.0;  // 4 cells
  star::allocation_options options;
  options.schedule = mixing_schedule::entropy;
  const auto result = star::allocate(be, be.from_host(maps, {3, tokens}), 0, 1, options);
  star::test::require_close(result.lambda, {1.0, 0.0, 0.5}, tol, "lambda = H / log N");
  star::test::require_close(result.entropy, {std::log(16.0), 0.0, std::log(4.0)}, tol, "H");
  std::vector<double> want(3 * tokens, 1.0);  // uniform row: all ones
  for (std::int64_t n = 0; n < tokens; ++n) want[tokens + n] = n == 5 ? tokens : 0.0;
  for (std::int64_t n = 0; n < tokens; ++n) want[2 * tokens + n] = n < 4 ? 0.5 * 4 + 0.5 : 0.5;
  star::test::require_close(be.to_host(result.weights), want, tol, "W");

  REQUIRE(star::normalized_entropy(0.3, 1) == 1.0);  // one cell: uniform and one-hot coincide
  REQUIRE(star::mixing_lambda(options, 0, 1, 1.0 + 1e-12) == 1.0);  // rounding is clamped
  REQUIRE_THROWS_AS(star::mixing_lambda(options, 0, 1, NAN), star::value_error);
}

TEST_CASE("noise_aware gamma: mean 1 over the trained steps, proportional to the SDE std",
          "[allocation][temporal]") {
  const auto sigmas = star::flow_match_sigmas(10);
  const std::vector<std::size_t> trained{0, 1, 2, 3, 4, 5, 6, 7, 8};
  const auto gamma = star::temporal_weights({star::temporal_weighting::noise_aware}, sigmas, trained);
  REQUIRE(gamma.size() == trained.size());
  double mean = 0;
  for (const double g : gamma) mean += g / static_cast<double>(gamma.size());
  REQUIRE(mean == Approx(1.0).margin(1e-14));
  const double ratio0 = gamma[0] / star::flow_grpo_sde_coefficients(sigmas, 0).transition_std;
  for (std::size_t i = 0; i < trained.size(); ++i)
    REQUIRE(gamma[i] / star::flow_grpo_sde_coefficients(sigmas, trained[i]).transition_std ==
            Approx(ratio0).epsilon(1e-14));
  // The transition std s_k sqrt(|dt_k|) of docs/math.md §5 on 10 steps: 0.7000, 0.7430, ...,
  // 0.2254 for steps 0..8 (mean ~0.44).
  REQUIRE(gamma[1] / gamma[8] == Approx(0.7430 / 0.2254).epsilon(1e-3));
  REQUIRE(gamma[1] > gamma[0]);
  REQUIRE(gamma[8] < 1.0);

  // A subset in any order: aligned with the list, mean 1 over it.
  const std::vector<std::size_t> subset{8, 2};
  const auto sub = star::temporal_weights({star::temporal_weighting::noise_aware}, sigmas, subset);
  REQUIRE(sub[0] + sub[1] == Approx(2.0).margin(1e-14));
  REQUIRE(sub[0] / sub[1] == Approx(gamma[8] / gamma[2]).epsilon(1e-14));
  // A different noise level scales every std alike: gamma is unchanged.
  const auto louder = star::temporal_weights({star::temporal_weighting::noise_aware, 1.0}, sigmas, trained);
  star::test::require_close(louder, gamma, 1e-14, "gamma independent of a");

  const auto uniform = star::temporal_weights({}, sigmas, trained);
  star::test::require_close(uniform, std::vector<double>(9, 1.0), 0.0, "uniform");
}

TEST_CASE("temporal weights and schedules reject bad options, naming them",
          "[allocation][errors]") {
  const auto sigmas = star::flow_match_sigmas(10);
  const std::vector<std::size_t> trained{0, 1, 2};
  const star::temporal_weight_options noise_aware{star::temporal_weighting::noise_aware};
  const auto rejects = [&](const star::temporal_weight_options& options,
                           const std::vector<std::size_t>& steps, const char* name) {
    REQUIRE_THROWS_AS(star::temporal_weights(options, sigmas, steps), star::option_error);
    REQUIRE_THROWS_WITH(star::temporal_weights(options, sigmas, steps), Catch::Contains(name));
  };
  rejects(noise_aware, {}, "trained_steps");
  rejects(noise_aware, {0, 10}, "trained_steps");
  rejects(noise_aware, {3, 1, 3}, "trained_steps");
  rejects({star::temporal_weighting::noise_aware, 0.0}, trained, "noise_level");
  rejects({star::temporal_weighting::noise_aware, NAN}, trained, "noise_level");
  rejects({static_cast<star::temporal_weighting>(7)}, trained, "weighting");
  const std::vector<double> one_sigma{1.0};
  REQUIRE_THROWS_WITH(star::temporal_weights(noise_aware, one_sigma, trained),
                      Catch::Contains("sigmas"));

  star::allocation_options options;
  REQUIRE_THROWS_WITH(star::mixing_lambda(options, 3, 3, 0.0), Catch::Contains("step"));
  REQUIRE_THROWS_WITH(star::mixing_lambda(options, 0, 0, 0.0), Catch::Contains("num_steps"));
  options.lambda_end = 1.01;
  REQUIRE_THROWS_AS(star::mixing_lambda(options, 0, 3, 0.0), star::option_error);
  REQUIRE_THROWS_WITH(star::mixing_lambda(options, 0, 3, 0.0), Catch::Contains("lambda_end"));
  REQUIRE_THROWS_WITH(star::normalized_entropy(1.0, 0), Catch::Contains("image_tokens"));
}
