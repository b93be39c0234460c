// The objective's gradients through the SDE log-density: invariants I1 (reduction to the
// Flow-GRPO baseline) and I5 (zero-advantage groups), and central finite differences of the
// loss with respect to ell and mu for every mode (reference backend, double).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "star/objective/policy_gradient.hpp"
#include "star/objective/policy_objective.hpp"
#include "star/objective/reference_kl.hpp"
#include "star/objective/token_log_prob.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

using star::kl_denominator;
using star::kl_weighting;
using star::objective_mode;

/// One SDE transition per row: rows at steps 1, 4, 6, 8 of the 10-step schedule, latents
/// [4, 2, 4, 6], patch 2 (N = 6 tokens of 8 elements). Values are float-representable.
struct latent_case {
  star::shape latent{4, 2, 4, 6};
  std::int64_t patch = 2;
  std::int64_t rows = 4, tokens = 6;
  std::vector<star::sde_coefficients> coefficients;
  std::vector<double> x_next, mu, mu_ref;
};

latent_case make_latent_case(std::uint64_t seed) {
  latent_case c;
  const auto sigmas = star::flow_match_sigmas(10);
  for (const std::size_t step : {1, 4, 6, 8})
    c.coefficients.push_back(star::flow_grpo_sde_coefficients(sigmas, step, 0.7));
  const std::size_t count = 192, per_row = 48;
  const auto mu = star::test::normal(count, seed);
  const auto noise = star::test::normal(count, seed + 1);
  const auto reference_offset = star::test::normal(count, seed + 2, 0.0, 0.05);
  for (std::size_t e = 0; e < count; ++e) {
    const double std_dev = c.coefficients[e / per_row].transition_std;
    c.mu.push_back(static_cast<float>(mu[e]));
    c.x_next.push_back(static_cast<float>(mu[e] + std_dev * noise[e]));
    c.mu_ref.push_back(static_cast<float>(mu[e] + reference_offset[e]));
  }
  return c;
}

/// The policy side of one evaluation: advantages, allocation, step weights and options.
struct policy_setup {
  std::vector<double> advantages, allocation, step_weights;
  star::policy_objective_options options;
  kl_denominator denominator = kl_denominator::transition_variance;
};

template <class B>
star::policy_objective_inputs<typename B::tensor> objective_inputs(
    const B& be, const latent_case& c, const std::vector<double>& mu,
    const std::vector<double>& ell_old, const policy_setup& p) {
  const auto mu_t = be.from_host(mu, c.latent);  // [B, C, H, W]
  const star::shape tokens{c.rows, c.tokens}, rows{c.rows};
  return {star::per_token_log_prob(be, be.from_host(c.x_next, c.latent), mu_t, c.coefficients,
                                   c.patch),
          be.from_host(ell_old, tokens),
          be.from_host(p.advantages, rows),
          be.from_host(p.allocation, tokens),
          be.from_host(p.step_weights, rows),
          star::per_token_kl(be, mu_t, be.from_host(c.mu_ref, c.latent), c.coefficients, c.patch,
                             p.denominator)};
}

/// d loss / d mu by the analytic chain.
template <class B>
std::vector<double> mean_gradient(const B& be, const latent_case& c,
                                  const std::vector<double>& ell_old, const policy_setup& p) {
  const auto in = objective_inputs(be, c, c.mu, ell_old, p);
  const auto gradient = star::spatial_policy_gradient(be, in, p.options);
  return be.to_host(star::spatial_policy_mean_gradient(
      be, gradient, be.from_host(c.x_next, c.latent), be.from_host(c.mu, c.latent),
      std::optional{be.from_host(c.mu_ref, c.latent)}, c.coefficients, c.patch, p.denominator));
}

/// Central differences of `loss` at `x` in every coordinate.
template <class Loss>
std::vector<double> central_differences(const std::vector<double>& x, double step, Loss loss) {
  std::vector<double> gradient(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto plus = x, minus = x;
    plus[i] += step;
    minus[i] -= step;
    gradient[i] = (loss(plus) - loss(minus)) / (2 * step);
  }
  return gradient;
}

/// Finite-difference check of d loss / d ell and d loss / d mu for one mode, with beta > 0,
/// both KL weightings and both KL denominators. `log_ratio(r, n)` places the ratios away
/// from the clip kinks; the advantages' signs make the clip act on some entries only.
void check_against_finite_differences(objective_mode mode,
                                      const std::vector<double>& log_ratio_pattern,
                                      const std::vector<double>& advantages) {
  const star::reference_backend be;
  const std::uint64_t seed = 300;
  INFO("seed " << seed);
  const auto c = make_latent_case(seed);
  const auto ell = be.to_host(star::per_token_log_prob(be, be.from_host(c.x_next, c.latent),
                                                       be.from_host(c.mu, c.latent),
                                                       c.coefficients, c.patch));  // [R, N]
  std::vector<double> ell_old(ell.size());
  for (std::size_t i = 0; i < ell.size(); ++i)
    ell_old[i] = ell[i] - log_ratio_pattern[i % log_ratio_pattern.size()];
  auto allocation = star::test::uniform(ell.size(), seed + 3, 0.2, 2.5);
  for (std::size_t r = 0; r < 4; ++r) {
    double mean = 0.0;
    for (std::size_t n = 0; n < 6; ++n) mean += allocation[r * 6 + n] / 6.0;
    for (std::size_t n = 0; n < 6; ++n) allocation[r * 6 + n] /= mean;
  }
  for (const auto weighting : {kl_weighting::uniform, kl_weighting::allocation})
    for (const auto denominator :
         {kl_denominator::transition_variance, kl_denominator::noise_scale_squared}) {
      INFO("kl weighting " << (weighting == kl_weighting::uniform ? "uniform" : "allocation")
                           << ", denominator "
                           << (denominator == kl_denominator::transition_variance
                                   ? "transition_variance"
                                   : "noise_scale_squared"));
      policy_setup p{advantages, allocation, {1.0, 0.8, 1.2, 0.9}, {}, denominator};
      p.options.mode = mode;
      p.options.beta = 0.04;
      p.options.kl_weights = weighting;

      const auto in = objective_inputs(be, c, c.mu, ell_old, p);
      const auto result = star::spatial_policy_objective(be, in, p.options);
      REQUIRE(result.clip_fraction > 0.0);  // the clip acts on some entries ...
      REQUIRE(result.clip_fraction < 1.0);  // ... and not on others
      REQUIRE(result.kl_loss > 0.0);

      const auto d_ell = star::spatial_policy_gradient(be, in, p.options);
      const auto loss_of_ell = [&](const std::vector<double>& values) {
        auto perturbed = in;
        perturbed.log_prob = be.from_host(values, {c.rows, c.tokens});
        return star::ops::item(be, star::spatial_policy_objective(be, perturbed, p.options).loss);
      };
      star::test::require_close(be.to_host(d_ell.log_prob),
                                central_differences(ell, 1e-6, loss_of_ell), 1e-8,
                                "d loss / d ell");

      const auto loss_of_mu = [&](const std::vector<double>& mu) {
        const auto perturbed = objective_inputs(be, c, mu, ell_old, p);
        return star::ops::item(be, star::spatial_policy_objective(be, perturbed, p.options).loss);
      };
      const auto analytic = mean_gradient(be, c, ell_old, p);
      REQUIRE(std::any_of(analytic.begin(), analytic.end(), [](double g) { return g != 0.0; }));
      star::test::require_close(analytic, central_differences(c.mu, 1e-6, loss_of_mu), 1e-8,
                                "d loss / d mu");
    }
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("I1 reduction to the baseline: token-mode gradient equals scalar-mode "
                        "gradient when uniform and on-policy",
                        "[objective][invariant]", star::test::all_backends) {
  TestType be{};
  const double tol = 10 * star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 400;
  INFO("seed " << seed);
  const auto c = make_latent_case(seed);
  const auto ell = be.to_host(star::per_token_log_prob(be, be.from_host(c.x_next, c.latent),
                                                       be.from_host(c.mu, c.latent),
                                                       c.coefficients, c.patch));  // [R, N]
  policy_setup token{{1.2, -0.4, 0.0, 2.1}, std::vector<double>(24, 1.0), {1, 1, 1, 1}, {}, {}};
  token.options.mode = objective_mode::token;
  token.options.beta = 0.04;
  auto scalar = token;
  scalar.options.mode = objective_mode::scalar;

  const auto token_in = objective_inputs(be, c, c.mu, ell, token);  // on-policy: ell_old = ell
  auto scalar_in = objective_inputs(be, c, c.mu, ell, scalar);
  scalar_in.allocation.reset();  // the baseline has no allocation and no step weights
  scalar_in.step_weights.reset();

  const auto token_result = star::spatial_policy_objective(be, token_in, token.options);
  const auto scalar_result = star::spatial_policy_objective(be, scalar_in, scalar.options);
  star::test::require_close(be.to_host(token_result.loss), be.to_host(scalar_result.loss), tol,
                            "loss");
  CHECK(token_result.policy_loss == Approx(scalar_result.policy_loss).margin(tol));
  CHECK(token_result.clip_fraction == 0.0);
  CHECK(scalar_result.clip_fraction == 0.0);

  const auto token_gradient = star::spatial_policy_gradient(be, token_in, token.options);
  const auto scalar_gradient = star::spatial_policy_gradient(be, scalar_in, scalar.options);
  star::test::require_close(be.to_host(token_gradient.log_prob),
                            be.to_host(scalar_gradient.log_prob), tol, "d loss / d ell");
  star::test::require_close(mean_gradient(be, c, ell, token), mean_gradient(be, c, ell, scalar),
                            tol, "d loss / d mu");
}

TEMPLATE_LIST_TEST_CASE("I5 zero-advantage groups contribute exactly zero loss and gradient",
                        "[objective][invariant]", star::test::all_backends) {
  TestType be{};
  const std::uint64_t seed = 500;
  INFO("seed " << seed);
  const auto c = make_latent_case(seed);
  const auto ell = be.to_host(star::per_token_log_prob(be, be.from_host(c.x_next, c.latent),
                                                       be.from_host(c.mu, c.latent),
                                                       c.coefficients, c.patch));  // [R, N]
  // Off-policy: log-ratios up to +-0.05, far outside every clip range.
  const auto offsets = star::test::uniform(ell.size(), seed + 1, -0.05, 0.05);
  std::vector<double> ell_old(ell.size());
  for (std::size_t i = 0; i < ell.size(); ++i) ell_old[i] = ell[i] - offsets[i];
  const auto allocation = star::test::uniform(ell.size(), seed + 2, 0.2, 2.0);

  for (const auto mode : {objective_mode::scalar, objective_mode::weighted_scalar,
                          objective_mode::token}) {
    INFO("mode " << (mode == objective_mode::token ? "token"
                     : mode == objective_mode::scalar ? "scalar" : "weighted_scalar"));
    // Every row in a zero-advantage group: the loss and every gradient are exactly 0.
    policy_setup all_zero{{0, 0, 0, 0}, allocation, {1.0, 0.8, 1.2, 0.9}, {}, {}};
    all_zero.options.mode = mode;
    const auto in = objective_inputs(be, c, c.mu, ell_old, all_zero);
    const auto result = star::spatial_policy_objective(be, in, all_zero.options);
    CHECK(star::ops::item(be, result.loss) == 0.0);
    CHECK(result.policy_loss == 0.0);
    CHECK(result.clip_fraction == 0.0);
    const auto gradient = star::spatial_policy_gradient(be, in, all_zero.options);
    for (const double g : be.to_host(gradient.log_prob)) REQUIRE(g == 0.0);
    for (const double g : mean_gradient(be, c, ell_old, all_zero)) REQUIRE(g == 0.0);

    // Rows 1 and 3 in zero-advantage groups, rows 0 and 2 not: rows 1 and 3 get exactly zero
    // gradient, and the loss is the other rows' contribution alone.
    policy_setup mixed = all_zero;
    mixed.advantages = {1.3, 0.0, -0.8, 0.0};
    const auto mixed_in = objective_inputs(be, c, c.mu, ell_old, mixed);
    const auto d_ell =
        be.to_host(star::spatial_policy_gradient(be, mixed_in, mixed.options).log_prob);
    const auto d_mu = mean_gradient(be, c, ell_old, mixed);
    for (const std::size_t r : {1, 3}) {
      INFO("row " << r);
      for (std::size_t n = 0; n < 6; ++n) REQUIRE(d_ell[r * 6 + n] == 0.0);
      for (std::size_t e = 0; e < 48; ++e) REQUIRE(d_mu[r * 48 + e] == 0.0);
    }
    REQUIRE(std::any_of(d_ell.begin(), d_ell.end(), [](double g) { return g != 0.0; }));
  }
}

TEST_CASE("finite differences: scalar mode gradient with respect to ell and mu",
          "[objective][gradient]") {
  // Row log-ratios: inside (3e-5), below with A < 0 (clip acts), above with A > 0 (clip acts),
  // below with A > 0 (unclipped wins); eps = 1e-4.
  std::vector<double> pattern;
  for (const double row : {3e-5, -5e-4, 4e-4, -4e-4}) pattern.insert(pattern.end(), 6, row);
  check_against_finite_differences(objective_mode::scalar, pattern, {1.3, -0.7, 0.9, 1.1});
}

TEST_CASE("finite differences: weighted_scalar mode gradient with respect to ell and mu",
          "[objective][gradient]") {
  // W has mean 1 per row, so the weighted row log-ratio is the row's constant log-ratio.
  std::vector<double> pattern;
  for (const double row : {3e-5, -5e-4, 4e-4, -4e-4}) pattern.insert(pattern.end(), 6, row);
  check_against_finite_differences(objective_mode::weighted_scalar, pattern,
                                   {1.3, -0.7, 0.9, 1.1});
}

TEST_CASE("finite differences: token mode gradient with respect to ell and mu",
          "[objective][gradient]") {
  // Per-token log-ratios inside (|.| <= 1e-3) and outside (|.| >= 1.2e-2) eps_tok = 2e-3, in a
  // pattern of 5 so that every row sees a different mix.
  check_against_finite_differences(objective_mode::token, {5e-4, -1e-3, 1.2e-2, -1.5e-2, 2.5e-2},
                                   {1.3, -0.7, 0.9, -1.1});
}

TEST_CASE("spatial_policy_mean_gradient needs mu_ref for a KL part and checks shapes",
          "[objective][errors]") {
  const star::reference_backend be;
  const auto c = make_latent_case(600);
  const star::policy_gradient<star::reference_backend::tensor> gradient{
      be.full({4, 6}, 0.1), be.full({4, 6}, 0.01)};
  const auto x_next = be.from_host(c.x_next, c.latent);  // [B, C, H, W]
  const auto mu = be.from_host(c.mu, c.latent);          // [B, C, H, W]
  REQUIRE_THROWS_AS(star::spatial_policy_mean_gradient(be, gradient, x_next, mu, std::nullopt,
                                                       c.coefficients, c.patch),
                    star::option_error);
  REQUIRE_THROWS_WITH(star::spatial_policy_mean_gradient(be, gradient, x_next, mu, std::nullopt,
                                                         c.coefficients, c.patch),
                      Catch::Contains("mu_ref"));
  const star::policy_gradient<star::reference_backend::tensor> wrong_tokens{
      be.full({4, 5}, 0.1), std::nullopt};
  REQUIRE_THROWS_AS(star::spatial_policy_mean_gradient(be, wrong_tokens, x_next, mu, std::nullopt,
                                                       c.coefficients, c.patch),
                    star::shape_error);
  REQUIRE_THROWS_WITH(star::spatial_policy_mean_gradient(be, wrong_tokens, x_next, mu,
                                                         std::nullopt, c.coefficients, c.patch),
                      Catch::Contains("d_log_prob") && Catch::Contains("[4, 6]"));
  const star::policy_gradient<star::reference_backend::tensor> wrong_kl{be.full({4, 6}, 0.1),
                                                                        be.full({4, 6, 1}, 0.1)};
  REQUIRE_THROWS_WITH(star::spatial_policy_mean_gradient(be, wrong_kl, x_next, mu, mu,
                                                         c.coefficients, c.patch),
                      Catch::Contains("d_kl"));
}
