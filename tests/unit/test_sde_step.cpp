// The Flow-GRPO SDE step, its per-element log-density, the per-token reduction and the
// per-token KL: against Flow-GRPO's own outputs (tests/data/sde_step.safetensors) and host loops.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "star/core/ops.hpp"
#include "star/objective/reference_kl.hpp"
#include "star/objective/sde_step.hpp"
#include "star/objective/token_log_prob.hpp"
#include "star/objective/token_reduction.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"
#include "support/safetensors.hpp"

namespace {

using star::test::fixture_tensor;

const std::map<std::string, fixture_tensor>& sde_fixture() {
  static const auto fixture =
      star::test::read_safetensors(star::test::data_path("sde_step.safetensors"));
  return fixture;
}

/// The coefficients of each row's step of the 10-step shift-3 schedule, noise level 0.7.
std::vector<star::sde_coefficients> coefficients_at(const std::vector<double>& steps) {
  const auto sigmas = star::flow_match_sigmas(10);
  std::vector<star::sde_coefficients> out;
  for (const double step : steps)
    out.push_back(star::flow_grpo_sde_coefficients(sigmas, static_cast<std::size_t>(step), 0.7));
  return out;
}

/// Requires max |got - want| <= atol.
void require_abs_close(const std::vector<double>& got, const std::vector<double>& want,
                       double atol, const std::string& what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::isnan(got[i]) ? INFINITY : std::abs(got[i] - want[i]));
  INFO("max abs error " << worst);
  REQUIRE(worst <= atol);
}

/// Host loop: the mean of `values` [B, C, H, W] over each P x P token, [B, N].
std::vector<double> host_token_mean(const std::vector<double>& values, const star::shape& s,
                                    std::int64_t patch) {
  const std::int64_t batch = s[0], channels = s[1], height = s[2], width = s[3];
  const std::int64_t cols = width / patch, tokens = (height / patch) * cols;
  std::vector<double> out(static_cast<std::size_t>(batch * tokens), 0.0);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t i = 0; i < height; ++i)
        for (std::int64_t j = 0; j < width; ++j)
          out[static_cast<std::size_t>(b * tokens + (i / patch) * cols + j / patch)] +=
              values[static_cast<std::size_t>(((b * channels + c) * height + i) * width + j)] /
              static_cast<double>(channels * patch * patch);
  return out;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("sde_step reproduces Flow-GRPO's sde_step_with_logprob at every step "
                        "and on rows at different steps",
                        "[sde]", star::test::all_backends) {
  TestType be{};
  const auto& fixture = sde_fixture();
  std::vector<std::string> cases{"mixed"};
  for (int k = 0; k < 10; ++k) cases.push_back("step" + std::to_string(k));
  for (const auto& name : cases) {
    INFO("case " << name);
    const auto at = [&](const std::string& field) -> const fixture_tensor& {
      return fixture.at(name + "." + field);
    };
    const auto tensor = [&](const std::string& field) {
      return be.from_host(at(field).values, at(field).dims);  // [B, C, H, W]
    };
    const auto& steps = at("step_index").values;
    const auto coefficients = coefficients_at(steps);
    for (std::size_t b = 0; b < coefficients.size(); ++b) {
      CHECK(static_cast<float>(coefficients[b].sigma) == static_cast<float>(at("sigma").values[b]));
      CHECK(coefficients[b].dt == Approx(at("dt").values[b]).margin(1e-7));
      CHECK(coefficients[b].noise_scale == Approx(at("std_dev_t").values[b]).epsilon(1e-6));
    }

    const auto step = star::sde_step(be, tensor("x"), tensor("v"), tensor("eps"), coefficients);
    require_abs_close(be.to_host(step.mean), at("mu").values, 1e-5, "mu");
    require_abs_close(be.to_host(step.next), at("x_next").values, 1e-5, "x_next");

    // Flow-GRPO's float32 x_next - mu cancels badly at the last step (|dt| ~ 0.009): up to
    // ~7e-5 from the exact log-density (fixture README), hence atol 1e-4 there.
    const bool last_step = std::find(steps.begin(), steps.end(), 9.0) != steps.end();
    const auto log_density =
        star::gaussian_log_density(be, step.next, step.mean, coefficients);  // [B, C, H, W]
    require_abs_close(be.to_host(log_density), at("logp").values, last_step ? 1e-4 : 1e-5,
                      "per-element log-density");
    const auto on_fixture = star::gaussian_log_density(be, tensor("x_next"), tensor("mu"),
                                                       coefficients);  // [B, C, H, W]
    require_abs_close(be.to_host(on_fixture), at("logp").values, 1e-5,
                      "log-density of Flow-GRPO's own x_next under its own mu");
    require_abs_close(be.to_host(star::ops::mean(be, log_density, {1, 2, 3})),
                      at("logp_mean_flow_grpo").values, 1e-5, "per-sample mean log-prob");
    const auto per_token =
        star::per_token_log_prob(be, step.next, step.mean, coefficients, 2);  // [B, N]
    REQUIRE(be.shape_of(per_token) == star::shape{2, 16});
    require_abs_close(be.to_host(star::ops::mean(be, per_token, {1})),
                      at("logp_mean_flow_grpo").values, 1e-5,
                      "mean of the per-token means is Flow-GRPO's log-prob");
  }
}

TEMPLATE_LIST_TEST_CASE("per_token_mean averages each token's C*P*P elements, "
                        "token n = w*row + col",
                        "[sde][tokens]", star::test::all_backends) {
  TestType be{};
  const std::uint64_t seed = 11;
  INFO("seed " << seed);
  const star::shape latent{2, 3, 4, 8};
  const auto values = star::test::normal(static_cast<std::size_t>(star::numel(latent)), seed);
  const auto t = be.from_host(values, latent);  // [B, C, H, W]
  for (const std::int64_t patch : {1, 2, 4}) {
    INFO("patch " << patch);
    const auto means = star::per_token_mean(be, t, patch);  // [B, N]
    REQUIRE(be.shape_of(means) == star::shape{2, (4 / patch) * (8 / patch)});
    star::test::require_close(be.to_host(means), host_token_mean(values, latent, patch),
                              star::test::tolerance<TestType>::value);
  }
}

TEMPLATE_LIST_TEST_CASE("scale_by_token multiplies every latent element by its token's value",
                        "[sde][tokens]", star::test::all_backends) {
  TestType be{};
  const std::uint64_t seed = 12;
  INFO("seed " << seed);
  const star::shape latent{2, 3, 4, 6};
  const auto values = star::test::normal(144, seed);
  const auto token_values = star::test::normal(12, seed + 1);
  const auto scaled = star::scale_by_token(be, be.from_host(values, latent),
                                           be.from_host(token_values, {2, 6}), 2);  // [B, C, H, W]
  std::vector<double> want(values.size());
  for (std::size_t e = 0; e < values.size(); ++e) {
    const std::size_t b = e / 72, i = (e / 6) % 4, j = e % 6;
    want[e] = values[e] * token_values[b * 6 + (i / 2) * 3 + j / 2];
  }
  star::test::require_close(be.to_host(scaled), want, star::test::tolerance<TestType>::value);
}

TEMPLATE_LIST_TEST_CASE("per_token_kl: exact Gaussian (2 std^2) and Flow-GRPO July (2 s^2) "
                        "denominators, averaged per token",
                        "[sde][kl]", star::test::all_backends) {
  TestType be{};
  const std::uint64_t seed = 13;
  INFO("seed " << seed);
  const star::shape latent{3, 2, 4, 4};
  const auto mu = star::test::normal(96, seed);
  auto mu_ref = star::test::normal(96, seed + 1, 0.0, 0.1);
  for (std::size_t e = 0; e < mu.size(); ++e) mu_ref[e] += mu[e];
  const auto coefficients = coefficients_at({0, 4, 8});
  for (const auto denominator :
       {star::kl_denominator::transition_variance, star::kl_denominator::noise_scale_squared}) {
    const bool exact = denominator == star::kl_denominator::transition_variance;
    INFO((exact ? "transition_variance" : "noise_scale_squared"));
    std::vector<double> per_element(mu.size());
    for (std::size_t e = 0; e < mu.size(); ++e) {
      const auto& c = coefficients[e / 32];
      const double d = exact ? c.transition_std : c.noise_scale;
      per_element[e] = (mu[e] - mu_ref[e]) * (mu[e] - mu_ref[e]) / (2.0 * d * d);
    }
    const auto kl = star::per_token_kl(be, be.from_host(mu, latent), be.from_host(mu_ref, latent),
                                       coefficients, 2, denominator);  // [B, N]
    star::test::require_close(be.to_host(kl), host_token_mean(per_element, latent, 2),
                              star::test::tolerance<TestType>::value);
  }
  // The two variants differ by the factor |dt_k| of each row.
  const auto exact = be.to_host(star::per_token_kl(be, be.from_host(mu, latent),
                                                   be.from_host(mu_ref, latent), coefficients, 2));
  const auto july = be.to_host(star::per_token_kl(be, be.from_host(mu, latent),
                                                  be.from_host(mu_ref, latent), coefficients, 2,
                                                  star::kl_denominator::noise_scale_squared));
  std::vector<double> july_from_exact(exact.size());
  for (std::size_t i = 0; i < exact.size(); ++i)
    july_from_exact[i] = exact[i] * -coefficients[i / 4].dt;
  star::test::require_close(july, july_from_exact, 10 * star::test::tolerance<TestType>::value);
}

TEST_CASE("sde step, log-density, token reduction and KL reject bad inputs, naming them",
          "[sde][errors]") {
  const star::reference_backend be;
  const auto coefficients = coefficients_at({2, 5});
  const auto latent = be.full({2, 4, 4, 6}, 0.5);  // [B, C, H, W]
  const auto other = be.full({2, 4, 4, 4}, 0.5);   // [B, C, H, W'] mismatched

  REQUIRE_THROWS_AS(star::sde_mean(be, latent, other, coefficients), star::shape_error);
  REQUIRE_THROWS_WITH(star::sde_mean(be, latent, other, coefficients),
                      Catch::Contains("v") && Catch::Contains("[2, 4, 4, 4]"));
  REQUIRE_THROWS_WITH(star::sde_mean(be, be.full({2, 4, 4}, 0.0), be.full({2, 4, 4}, 0.0),
                                     coefficients),
                      Catch::Contains("x") && Catch::Contains("rank 4"));
  REQUIRE_THROWS_WITH(star::sde_sample(be, latent, other, coefficients), Catch::Contains("eps"));
  REQUIRE_THROWS_WITH(star::sde_step(be, latent, latent, other, coefficients),
                      Catch::Contains("eps"));
  REQUIRE_THROWS_WITH(star::gaussian_log_density(be, other, latent, coefficients),
                      Catch::Contains("x_next"));
  const auto three = coefficients_at({2, 5, 7});
  REQUIRE_THROWS_AS(star::sde_mean(be, latent, latent, three), star::shape_error);
  REQUIRE_THROWS_WITH(star::sde_mean(be, latent, latent, three),
                      Catch::Contains("coefficients"));

  auto deterministic = coefficients;
  deterministic[1].transition_std = 0.0;  // noise_level 0: a plain Euler step
  REQUIRE_NOTHROW(star::sde_sample(be, latent, latent, deterministic));
  REQUIRE_THROWS_AS(star::gaussian_log_density(be, latent, latent, deterministic),
                    star::value_error);
  REQUIRE_THROWS_WITH(star::gaussian_log_density(be, latent, latent, deterministic),
                      Catch::Contains("transition_std"));
  auto negative = coefficients;
  negative[0].transition_std = -0.1;
  REQUIRE_THROWS_AS(star::sde_sample(be, latent, latent, negative), star::value_error);
  auto not_finite = coefficients;
  not_finite[0].coef_v = NAN;
  REQUIRE_THROWS_AS(star::sde_mean(be, latent, latent, not_finite), star::value_error);
  REQUIRE_THROWS_WITH(star::sde_mean(be, latent, latent, not_finite),
                      Catch::Contains("coefficients[0]"));

  REQUIRE_THROWS_AS(star::per_token_mean(be, latent, 4), star::shape_error);
  REQUIRE_THROWS_WITH(star::per_token_mean(be, latent, 4),
                      Catch::Contains("P = 4") && Catch::Contains("[2, 4, 4, 6]"));
  REQUIRE_THROWS_AS(star::per_token_mean(be, latent, 0), star::option_error);
  REQUIRE_THROWS_WITH(star::per_token_mean(be, latent, 0), Catch::Contains("patch"));
  REQUIRE_THROWS_WITH(star::per_token_log_prob(be, latent, latent, coefficients, 4),
                      Catch::Contains("mu") && Catch::Contains("P = 4"));
  REQUIRE_THROWS_WITH(star::scale_by_token(be, latent, be.full({2, 5}, 1.0), 2),
                      Catch::Contains("token_values") && Catch::Contains("[2, 6]"));
  REQUIRE_THROWS_WITH(star::per_token_log_prob_vjp(be, be.full({2, 6}, 1.0), other, latent,
                                                   coefficients, 2),
                      Catch::Contains("x_next"));

  REQUIRE_THROWS_AS(star::per_token_kl(be, latent, other, coefficients, 2), star::shape_error);
  REQUIRE_THROWS_WITH(star::per_token_kl(be, latent, other, coefficients, 2),
                      Catch::Contains("mu_ref"));
  REQUIRE_THROWS_WITH(star::per_token_kl_vjp(be, be.full({2, 6}, 1.0), latent, other,
                                             coefficients, 2),
                      Catch::Contains("mu_ref"));
  auto silent = coefficients;
  silent[1].noise_scale = 0.0;
  silent[1].transition_std = 0.0;
  REQUIRE_THROWS_AS(star::per_token_kl(be, latent, latent, silent, 2,
                                       star::kl_denominator::noise_scale_squared),
                    star::value_error);
  REQUIRE_THROWS_WITH(star::per_token_kl(be, latent, latent, silent, 2,
                                         star::kl_denominator::noise_scale_squared),
                      Catch::Contains("noise_scale"));
}
