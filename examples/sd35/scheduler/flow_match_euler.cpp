#include "sd35/scheduler/flow_match_euler.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "sd35/config/config_keys.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "star/objective/sde_step.hpp"
#include "star/torch/backend.hpp"

namespace star::sd35 {

namespace {

using config_detail::config_keys;

/// @brief Requires `key` to be `false` (or null): the feature it switches on is not ported.
void require_off(const config_keys& keys, const std::string& key) {
  if (keys.is_null(key) || !keys.boolean(key)) return;
  keys.fail(key, "is true, but only a static shift is supported (SD3 / SD3.5 use none of it)");
}

}  // namespace

void flow_match_euler_config::validate() const {
  if (num_train_timesteps < 2)
    throw option_error("scheduler config: num_train_timesteps must be >= 2, got " +
                       std::to_string(num_train_timesteps));
  if (!std::isfinite(shift) || !(shift > 0.0))
    throw option_error("scheduler config: shift must be finite and > 0, got " +
                       std::to_string(shift));
}

flow_match_euler_config flow_match_euler_config::from_json(std::string_view json_text) {
  const auto keys = config_keys::parse(json_text, "scheduler config");
  const char* const dynamic_shifting_only[] = {"base_shift", "max_shift", "base_image_seq_len",
                                               "max_image_seq_len", "time_shift_type"};
  const char* const must_be_off[] = {"use_dynamic_shifting", "invert_sigmas",
                                     "use_karras_sigmas",    "use_exponential_sigmas",
                                     "use_beta_sigmas",      "stochastic_sampling"};
  const auto listed = [](const auto& table, const std::string& key) {
    return std::find(std::begin(table), std::end(table), key) != std::end(table);
  };
  flow_match_euler_config config;
  for (const auto& item : keys.object().items()) {
    const std::string& key = item.key();
    if (key.starts_with('_') || listed(dynamic_shifting_only, key)) continue;
    if (listed(must_be_off, key)) {
      require_off(keys, key);
    } else if (key == "num_train_timesteps") {
      config.num_train_timesteps = keys.integer(key);
    } else if (key == "shift") {
      config.shift = keys.number(key);
    } else if (key == "shift_terminal") {
      if (!keys.is_null(key)) keys.fail(key, "must be null (terminal shifting is not supported)");
    } else {
      keys.unknown_key(key);
    }
  }
  config.validate();
  return config;
}

flow_match_euler_config flow_match_euler_config::from_file(const std::filesystem::path& path) {
  return config_detail::parse_file(path, "scheduler_config.json", "scheduler config",
                                   [](const std::string& text) { return from_json(text); });
}

flow_match_euler_config sd35_medium_scheduler() {
  flow_match_euler_config config;
  config.num_train_timesteps = 1000;
  config.shift = 3.0;
  return config;
}

flow_match_euler_scheduler::flow_match_euler_scheduler(const flow_match_euler_config& config)
    : config_(config) {
  config_.validate();
}

void flow_match_euler_scheduler::set_timesteps(int steps) {
  const int train = static_cast<int>(config_.num_train_timesteps);
  sigmas_ = flow_match_sigmas(steps, config_.shift, train);
  timesteps_ = flow_match_timesteps(sigmas_, train);
}

std::size_t flow_match_euler_scheduler::index_for_timestep(double timestep) const {
  std::vector<std::size_t> matches;
  for (std::size_t k = 0; k < timesteps_.size(); ++k)
    if (timesteps_[k] == timestep) matches.push_back(k);
  if (matches.empty())
    throw value_error("index_for_timestep: timestep " + std::to_string(timestep) +
                      " is not one of the " + std::to_string(timesteps_.size()) +
                      " scheduled timesteps");
  return matches.size() > 1 ? matches[1] : matches[0];
}

void flow_match_euler_scheduler::require_step(std::size_t step_index) const {
  if (step_index >= num_steps())
    throw option_error("step_index: must be < the number of steps K = " +
                       std::to_string(num_steps()) + " (call set_timesteps first), got " +
                       std::to_string(step_index));
}

at::Tensor flow_match_euler_scheduler::step(const at::Tensor& v, std::size_t step_index,
                                            const at::Tensor& x) const {
  require_step(step_index);
  require_rank("x", x.sizes().vec(), 4, "[B, C, H, W]");
  require_shape("v", v.sizes().vec(), x.sizes().vec(), "[B, C, H, W] like x");
  // diffusers: float32 sigmas, their float32 difference, the sample upcast to float32.
  const float dt = static_cast<float>(sigmas_[step_index + 1]) -
                   static_cast<float>(sigmas_[step_index]);
  return (x.to(at::kFloat) + v * dt).to(v.scalar_type());  // [B, C, H, W]
}

sde_coefficients flow_match_euler_scheduler::sde_coefficients_at(std::size_t step_index,
                                                                 double noise_level) const {
  require_step(step_index);
  return flow_grpo_sde_coefficients(sigmas_, step_index, noise_level);
}

flow_match_sde_result flow_match_euler_scheduler::sde_step(
    const at::Tensor& v, std::span<const std::size_t> step_indices, const at::Tensor& x,
    const at::Tensor& eps, double noise_level) const {
  std::vector<sde_coefficients> coefficients;
  for (const std::size_t k : step_indices)
    coefficients.push_back(sde_coefficients_at(k, noise_level));
  const libtorch::backend be(x.device());
  const auto x32 = be.to_compute_dtype(x, "x");        // [B, C, H, W]
  const auto v32 = be.to_compute_dtype(v, "v");        // [B, C, H, W]
  const auto eps32 = be.to_compute_dtype(eps, "eps");  // [B, C, H, W]
  auto [mu, next] = star::sde_step(be, x32, v32, eps32, coefficients);  // [B, C, H, W] each
  auto log_prob = gaussian_log_density(be, next.detach(), mu, coefficients);  // [B, C, H, W]
  return {std::move(next), std::move(mu), std::move(log_prob)};
}

flow_match_sde_result flow_match_euler_scheduler::sde_step(const at::Tensor& v,
                                                           std::size_t step_index,
                                                           const at::Tensor& x,
                                                           const at::Tensor& eps,
                                                           double noise_level) const {
  require_rank("x", x.sizes().vec(), 4, "[B, C, H, W]");
  const std::vector<std::size_t> rows(static_cast<std::size_t>(x.size(0)), step_index);
  return sde_step(v, rows, x, eps, noise_level);
}

}  // namespace star::sd35
