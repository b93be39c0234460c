// flow_match_euler_scheduler against diffusers' FlowMatchEulerDiscreteScheduler (shift 3,
// tests/data/sd35/scheduler.json) and Flow-GRPO's sde_step_with_logprob
// (tests/data/sde_step.safetensors); its config parsing and rejected inputs.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "sd35/scheduler/flow_match_euler.hpp"
#include "star/core/error.hpp"
#include "star/torch/backend.hpp"
#include "support/compare.hpp"
#include "support/safetensors.hpp"

namespace {

using star::sd35::flow_match_euler_config;
using star::sd35::flow_match_euler_scheduler;

const nlohmann::json& scheduler_fixture() {
  static const auto fixture = [] {
    std::ifstream in(star::test::data_path("sd35/scheduler.json"));
    return nlohmann::json::parse(in);
  }();
  return fixture;
}

const std::map<std::string, star::test::fixture_tensor>& sde_fixture() {
  static const auto fixture =
      star::test::read_safetensors(star::test::data_path("sde_step.safetensors"));
  return fixture;
}

at::Tensor sde_tensor(const std::string& name) {
  const auto& t = sde_fixture().at(name);
  return star::libtorch::backend{}.from_host(t.values, t.dims);  // the fixture's shape
}

void require_fixture(const at::Tensor& got, const std::string& name, double tol) {
  star::test::require_close(star::libtorch::backend{}.to_host(got), sde_fixture().at(name).values,
                            tol, name);
}

/// The fixture's step index of each row of case `name`.
std::vector<std::size_t> row_steps(const std::string& name) {
  std::vector<std::size_t> steps;
  for (const double k : sde_fixture().at(name + ".step_index").values)
    steps.push_back(static_cast<std::size_t>(k));
  return steps;
}

flow_match_euler_scheduler scheduler_with(int steps) {
  flow_match_euler_scheduler scheduler(star::sd35::sd35_medium_scheduler());
  scheduler.set_timesteps(steps);
  return scheduler;
}

std::vector<std::string> sde_cases() {
  std::vector<std::string> cases{"mixed"};
  for (int k = 0; k < 10; ++k) cases.push_back("step" + std::to_string(k));
  return cases;
}

}  // namespace

TEST_CASE("the fixture's scheduler_config parses to the SD3.5 scheduler", "[scheduler][config]") {
  const auto config =
      flow_match_euler_config::from_json(scheduler_fixture().at("scheduler_config").dump());
  REQUIRE(config.num_train_timesteps == 1000);
  REQUIRE(config.shift == 3.0);
  const auto release = flow_match_euler_config::from_json(
      R"({"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.29.0.dev0",
          "num_train_timesteps": 1000, "shift": 3.0})");
  REQUIRE(release.num_train_timesteps == star::sd35::sd35_medium_scheduler().num_train_timesteps);
  REQUIRE(release.shift == star::sd35::sd35_medium_scheduler().shift);
  REQUIRE(flow_match_euler_config::from_json("{}").shift == 1.0);  // diffusers' default
}

TEST_CASE("sigmas and timesteps equal diffusers' for 10, 28 and 40 steps", "[scheduler]") {
  for (const int steps : {10, 28, 40}) {
    INFO(steps << " steps");
    const auto& want = scheduler_fixture().at("values").at("steps" + std::to_string(steps));
    const auto scheduler = scheduler_with(steps);
    REQUIRE(scheduler.num_steps() == static_cast<std::size_t>(steps));
    star::test::require_close(scheduler.sigmas(), want.at("sigmas").get<std::vector<double>>(),
                              1e-7, "sigmas");
    star::test::require_close(scheduler.timesteps(),
                              want.at("timesteps").get<std::vector<double>>(), 1e-7,
                              "timesteps");
    REQUIRE(scheduler.sigmas().back() == 0.0);
  }
}

TEST_CASE("index_for_timestep finds each scheduled timestep exactly and rejects others",
          "[scheduler]") {
  const auto scheduler = scheduler_with(28);
  for (std::size_t k = 0; k < scheduler.num_steps(); ++k)
    REQUIRE(scheduler.index_for_timestep(scheduler.timesteps()[k]) == k);
  REQUIRE_THROWS_AS(scheduler.index_for_timestep(500.0), star::value_error);
  REQUIRE_THROWS_WITH(scheduler.index_for_timestep(500.0), Catch::Contains("timestep"));
}

TEST_CASE("step is diffusers' deterministic Euler step at every step", "[scheduler]") {
  const auto scheduler = scheduler_with(10);
  for (int k = 0; k < 10; ++k) {
    const std::string name = "step" + std::to_string(k);
    INFO(name);
    REQUIRE(row_steps(name) == std::vector<std::size_t>(2, static_cast<std::size_t>(k)));
    const auto next = scheduler.step(sde_tensor(name + ".v"), static_cast<std::size_t>(k),
                                     sde_tensor(name + ".x"));  // [2, 16, 8, 8]
    require_fixture(next, name + ".euler_prev_sample", 1e-6);
  }
}

TEST_CASE("sde_step reproduces Flow-GRPO's mu, x_next and per-element log-prob, rows at their "
          "own steps",
          "[scheduler][sde]") {
  const auto scheduler = scheduler_with(10);
  for (const auto& name : sde_cases()) {
    INFO(name);
    const auto result = scheduler.sde_step(sde_tensor(name + ".v"), row_steps(name),
                                           sde_tensor(name + ".x"), sde_tensor(name + ".eps"));
    require_fixture(result.mu, name + ".mu", 1e-5);
    require_fixture(result.x_next, name + ".x_next", 1e-5);
    require_fixture(result.log_prob, name + ".logp", 1e-4);  // float32 cancellation at step 9
    star::test::require_close(star::libtorch::backend{}.to_host(result.log_prob.mean({1, 2, 3})),
                              sde_fixture().at(name + ".logp_mean_flow_grpo").values, 1e-5,
                              "mean log-prob");
  }
}

TEST_CASE("sde_step with one step index for all rows equals the per-row call, its Flow-GRPO "
          "coefficients match the fixture's std",
          "[scheduler][sde]") {
  const auto scheduler = scheduler_with(10);
  const auto v = sde_tensor("step4.v"), x = sde_tensor("step4.x"), eps = sde_tensor("step4.eps");
  const auto one = scheduler.sde_step(v, 4, x, eps);
  const auto rows = scheduler.sde_step(v, std::vector<std::size_t>{4, 4}, x, eps);
  REQUIRE(at::equal(one.x_next, rows.x_next));
  REQUIRE(at::equal(one.log_prob, rows.log_prob));
  const auto c = scheduler.sde_coefficients_at(4, 0.7);
  star::test::require_close({c.noise_scale, c.dt},
                            {sde_fixture().at("step4.std_dev_t").values[0],
                             sde_fixture().at("step4.dt").values[0]},
                            1e-6);
}

TEST_CASE("sde_step's mu is differentiable in v and x with the Flow-GRPO coefficients",
          "[scheduler][sde]") {
  const auto scheduler = scheduler_with(10);
  const auto v = sde_tensor("step2.v").requires_grad_(true);
  const auto x = sde_tensor("step2.x").requires_grad_(true);
  const auto result = scheduler.sde_step(v, 2, x, sde_tensor("step2.eps"));
  result.mu.sum().backward();
  const auto c = scheduler.sde_coefficients_at(2, 0.7);
  REQUIRE(at::allclose(v.grad(), at::full_like(v, c.coef_v), 1e-6, 1e-7));
  REQUIRE(at::allclose(x.grad(), at::full_like(x, c.coef_x), 1e-6, 1e-7));
}

TEST_CASE("step and sde_step reject a step outside the schedule and mismatched shapes",
          "[scheduler][errors]") {
  const auto x = at::zeros({2, 16, 8, 8});
  flow_match_euler_scheduler unset(star::sd35::sd35_medium_scheduler());
  REQUIRE_THROWS_AS(unset.step(x, 0, x), star::option_error);
  REQUIRE_THROWS_WITH(unset.step(x, 0, x), Catch::Contains("step_index"));
  const auto scheduler = scheduler_with(10);
  REQUIRE_THROWS_AS(scheduler.step(x, 10, x), star::option_error);
  REQUIRE_THROWS_WITH(scheduler.step(x, 10, x), Catch::Contains("step_index"));
  REQUIRE_THROWS_AS(scheduler.sde_step(x, 10, x, x), star::option_error);
  REQUIRE_THROWS_AS(scheduler.step(at::zeros({2, 16, 8, 4}), 0, x), star::shape_error);
  REQUIRE_THROWS_WITH(scheduler.step(at::zeros({2, 16, 8, 4}), 0, x), Catch::Contains("v"));
  REQUIRE_THROWS_AS(scheduler.step(x[0], 0, x[0]), star::shape_error);
  REQUIRE_THROWS_AS(scheduler.sde_step(x, 0, x, at::zeros({2, 16, 8, 4})), star::shape_error);
  REQUIRE_THROWS_WITH(scheduler.sde_step(x, 0, x, at::zeros({2, 16, 8, 4})),
                      Catch::Contains("eps"));
  REQUIRE_THROWS_AS(scheduler.sde_step(x, std::vector<std::size_t>{0}, x, x), star::shape_error);
  REQUIRE_THROWS_AS(scheduler.sde_step(x, 0, x, x, 0.0), star::value_error);
  flow_match_euler_scheduler steps_checked(star::sd35::sd35_medium_scheduler());
  REQUIRE_THROWS_AS(steps_checked.set_timesteps(0), star::option_error);
  REQUIRE_THROWS_WITH(steps_checked.set_timesteps(0), Catch::Contains("steps"));
}

TEST_CASE("bad scheduler configs throw option_error naming the key", "[scheduler][config][errors]") {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"use_dynamic_shifting": true})", "use_dynamic_shifting"},
      {R"({"invert_sigmas": true})", "invert_sigmas"},
      {R"({"use_karras_sigmas": true})", "use_karras_sigmas"},
      {R"({"use_beta_sigmas": "yes"})", "use_beta_sigmas"},
      {R"({"shift_terminal": 0.1})", "shift_terminal"},
      {R"({"shift": "3"})", "shift"},
      {R"({"shift": 0.0})", "shift"},
      {R"({"num_train_timesteps": 1})", "num_train_timesteps"},
      {R"({"num_train_timesteps": 1000.5})", "num_train_timesteps"},
      {R"({"prediction_type": "epsilon"})", "prediction_type"},
      {"[]", "JSON object"},
      {"{", "not valid JSON"},
  };
  for (const auto& [text, key] : cases) {
    INFO(text);
    REQUIRE_THROWS_AS(flow_match_euler_config::from_json(text), star::option_error);
    REQUIRE_THROWS_WITH(flow_match_euler_config::from_json(text), Catch::Contains(key));
  }
  REQUIRE_THROWS_WITH(flow_match_euler_config::from_file("/nonexistent/scheduler"),
                      Catch::Contains("cannot open"));
  flow_match_euler_config bad;
  bad.shift = -1.0;
  REQUIRE_THROWS_AS(flow_match_euler_scheduler(bad), star::option_error);
}
