// The flow-matching sigma schedule against diffusers' FlowMatchEulerDiscreteScheduler (golden
// fixture) and the Flow-GRPO SDE coefficients (docs/math.md §5) against Flow-GRPO's table.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "star/objective/flow_schedule.hpp"
#include "support/safetensors.hpp"

namespace {

/// Requires equal sizes and equal values once both sides are rounded to float32.
void require_equal_as_float(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("index " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(static_cast<float>(got[i]) == static_cast<float>(want[i]));
  }
}

}  // namespace

TEST_CASE("flow_match_sigmas and flow_match_timesteps equal diffusers' shift-3 schedule exactly",
          "[schedule]") {
  const auto fixture =
      star::test::read_safetensors(star::test::data_path("flow_match_euler_shift3.safetensors"));
  for (const int steps : {10, 28, 40}) {
    INFO("steps " << steps);
    const std::string prefix = "steps" + std::to_string(steps);
    const auto sigmas = star::flow_match_sigmas(steps);
    require_equal_as_float(sigmas, fixture.at(prefix + ".sigmas").values);
    require_equal_as_float(star::flow_match_timesteps(sigmas),
                           fixture.at(prefix + ".timesteps").values);
  }
}

TEST_CASE("flow_grpo_sde_coefficients reproduce the 10-step table of Flow-GRPO", "[schedule]") {
  struct row {
    double noise_scale, transition_std, coef_x, coef_v;
  };
  // Flow-GRPO's 10-step schedule at shift 3 and noise level a = 0.7 (the step of docs/math.md
  // §5), printed to 4-5 significant digits.
  const std::array<row, 10> table{{{3.5057, 0.7000, 0.75500, -0.03987},
                                   {3.4351, 0.7430, 0.71254, -0.05824},
                                   {2.2726, 0.5362, 0.84263, -0.06929},
                                   {1.7185, 0.4459, 0.88409, -0.08382},
                                   {1.3592, 0.3918, 0.90289, -0.10345},
                                   {1.0881, 0.3528, 0.91201, -0.13088},
                                   {0.8612, 0.3191, 0.91546, -0.17091},
                                   {0.6524, 0.2820, 0.91446, -0.23260},
                                   {0.4344, 0.2254, 0.90867, -0.33505},
                                   {0.0664, 0.0063, 0.99779, -0.01112}}};
  const auto sigmas = star::flow_match_sigmas(10);
  for (std::size_t k = 0; k < table.size(); ++k) {
    INFO("step " << k);
    const auto c = star::flow_grpo_sde_coefficients(sigmas, k, 0.7);
    CHECK(c.noise_scale == Approx(table[k].noise_scale).margin(1e-4));
    CHECK(c.transition_std == Approx(table[k].transition_std).margin(1e-4));
    CHECK(c.coef_x == Approx(table[k].coef_x).margin(1e-5));
    CHECK(c.coef_v == Approx(table[k].coef_v).margin(1e-5));
    CHECK(c.dt == sigmas[k + 1] - sigmas[k]);
  }
}

TEST_CASE("flow schedule: bad arguments throw option_error naming them", "[schedule][errors]") {
  REQUIRE_THROWS_AS(star::flow_match_sigmas(0), star::option_error);
  REQUIRE_THROWS_WITH(star::flow_match_sigmas(0), Catch::Contains("steps"));
  REQUIRE_THROWS_WITH(star::flow_match_sigmas(10, 0.0), Catch::Contains("shift"));
  REQUIRE_THROWS_WITH(star::flow_match_sigmas(10, 3.0, 1), Catch::Contains("train_timesteps"));
  const auto sigmas = star::flow_match_sigmas(10);
  REQUIRE_THROWS_AS(star::flow_grpo_sde_coefficients(sigmas, 10), star::option_error);
  REQUIRE_THROWS_WITH(star::flow_grpo_sde_coefficients(sigmas, 10), Catch::Contains("step"));
  REQUIRE_THROWS_WITH(star::flow_grpo_sde_coefficients(sigmas, 0, -0.1),
                      Catch::Contains("noise_level"));
  const std::vector<double> increasing{0.5, 0.9, 0.0};
  REQUIRE_THROWS_WITH(star::flow_grpo_sde_coefficients(increasing, 0), Catch::Contains("sigmas"));
}

TEST_CASE("flow schedule: a shift whose float32 value breaks the schedule and a bad noise_level "
          "are rejected with their value",
          "[schedule][errors]") {
  const double inf = std::numeric_limits<double>::infinity();
  // Each made a sigma NaN or inf, or is not a shift at all.
  const std::vector<std::pair<double, std::string>> bad_shifts{
      {inf, "inf"}, {1e39, "1e+39"}, {1e-8, "1e-08"}, {1e-50, "1e-50"},
      {0.0, "0"},   {-3.0, "-3"},    {std::nan(""), "nan"}};
  for (const auto& [shift, text] : bad_shifts) {
    INFO("shift " << text);
    REQUIRE_THROWS_AS(star::flow_match_sigmas(10, shift), star::option_error);
    REQUIRE_THROWS_WITH(star::flow_match_sigmas(10, shift),
                        Catch::Contains("shift must be in [2^-24, FLT_MAX]") &&
                            Catch::EndsWith("got " + text));
  }
  // The ends of the range give finite, decreasing schedules.
  for (const double shift : {0x1p-24, static_cast<double>(std::numeric_limits<float>::max())}) {
    INFO("shift " << shift);
    const auto sigmas = star::flow_match_sigmas(10, shift);
    for (std::size_t i = 0; i < sigmas.size(); ++i) {
      REQUIRE(std::isfinite(sigmas[i]));
      if (i > 0) REQUIRE(sigmas[i] <= sigmas[i - 1]);
    }
  }
  const auto sigmas = star::flow_match_sigmas(10);
  for (const auto& [noise_level, text] :
       std::vector<std::pair<double, std::string>>{{-0.1, "-0.1"}, {inf, "inf"}}) {
    INFO("noise_level " << text);
    REQUIRE_THROWS_AS(star::flow_grpo_sde_coefficients(sigmas, 0, noise_level),
                      star::option_error);
    REQUIRE_THROWS_WITH(star::flow_grpo_sde_coefficients(sigmas, 0, noise_level),
                        Catch::Contains("noise_level") && Catch::EndsWith("got " + text));
  }
}
