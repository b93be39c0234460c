#pragma once
/// @file
/// @brief diffusers' `FlowMatchEulerDiscreteScheduler` as SD3 / SD3.5 use it (static shift),
/// over star's schedule (`star::flow_match_sigmas`) and Flow-GRPO SDE step (`star::sde_step`):
/// the deterministic Euler step of sampling and the stochastic step with its log-density that
/// RL rollouts take.

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "star/objective/flow_schedule.hpp"

namespace star::sd35 {

/// @brief diffusers' `FlowMatchEulerDiscreteScheduler` config. Defaults are diffusers'
/// constructor defaults; `sd35_medium_scheduler()` is the SD3.5 release's.
struct flow_match_euler_config {
  std::int64_t num_train_timesteps = 1000;  ///< `T`; timesteps are `T * sigma`
  double shift = 1.0;                       ///< the static time shift (SD3.5: 3)

  /// @brief Throws `star::option_error` naming the field: `num_train_timesteps >= 2`, `shift`
  /// finite and > 0.
  void validate() const;

  /// @brief Parses a diffusers `scheduler_config.json` text. Keys starting with `_` are
  /// ignored, as are the dynamic-shifting parameters (`base_shift`, `max_shift`,
  /// `base_image_seq_len`, `max_image_seq_len`, `time_shift_type`) when it is off. Throws
  /// `star::option_error` naming the key on an unknown key, a wrong JSON type, or a feature
  /// this port does not implement: `use_dynamic_shifting`, `invert_sigmas`,
  /// `use_karras_sigmas`, `use_exponential_sigmas`, `use_beta_sigmas`, `stochastic_sampling`
  /// true, or a non-null `shift_terminal`. The result is validated.
  static flow_match_euler_config from_json(std::string_view json_text);

  /// @brief Reads and parses `path`: the scheduler_config.json itself or a folder holding one
  /// (a release's `scheduler/`). Errors name the file.
  static flow_match_euler_config from_file(const std::filesystem::path& path);
};

/// @brief The SD3.5 Medium scheduler: 1000 training timesteps, shift 3.
flow_match_euler_config sd35_medium_scheduler();

/// @brief The outputs of one stochastic step.
struct flow_match_sde_result {
  at::Tensor x_next;    ///< [B, C, H, W] `x_{k+1} = mu + std_k * eps` (float32)
  at::Tensor mu;        ///< [B, C, H, W] the transition mean, differentiable in `x` and `v`
  at::Tensor log_prob;  ///< [B, C, H, W] per-element log N(x_next; mu, std_k^2), `x_next` detached
};

/// @brief The sampler: `set_timesteps(K)` builds the `K + 1` sigmas and `K` model timesteps
/// exactly as diffusers does; `step` / `sde_step` move a latent from step `k` to `k + 1`.
class flow_match_euler_scheduler {
 public:
  /// @brief A scheduler with no steps yet (call `set_timesteps`); validates `config`.
  explicit flow_match_euler_scheduler(const flow_match_euler_config& config);

  /// @brief Builds the schedule of `steps` sampling steps (`star::flow_match_sigmas`).
  /// @param steps  `K >= 1`; else `star::option_error` naming `steps`
  void set_timesteps(int steps);

  /// @brief `[K + 1]` the sigmas, decreasing from 1, ending with 0 (float32 values).
  const std::vector<double>& sigmas() const { return sigmas_; }
  /// @brief `[K]` the model timesteps `T * sigma_k` (float32 values).
  const std::vector<double>& timesteps() const { return timesteps_; }
  /// @brief `K`, 0 before `set_timesteps`.
  std::size_t num_steps() const { return timesteps_.size(); }
  /// @brief The config it was built from.
  const flow_match_euler_config& config() const { return config_; }

  /// @brief The step whose timestep equals `timestep` exactly, as diffusers'
  /// `index_for_timestep` (the second match when there are several); `star::value_error`
  /// naming `timestep` when none does.
  std::size_t index_for_timestep(double timestep) const;

  /// @brief The deterministic Euler step `x + (sigma_{k+1} - sigma_k) v`, computed in float32
  /// and returned in `v`'s dtype (diffusers' `step(...).prev_sample`).
  /// @param v           [B, C, H, W] velocity prediction
  /// @param step_index  `k < K`; else `star::option_error` naming `step_index`
  /// @param x           [B, C, H, W] latent `x_k`; a different shape is a `star::shape_error`
  /// @return            [B, C, H, W] `x_{k+1}`
  at::Tensor step(const at::Tensor& v, std::size_t step_index, const at::Tensor& x) const;

  /// @brief Flow-GRPO's coefficients of step `step_index` (`star::flow_grpo_sde_coefficients`).
  /// @param step_index   `k < K`; else `star::option_error` naming `step_index`
  /// @param noise_level  `a >= 0` (Flow-GRPO: 0.7)
  sde_coefficients sde_coefficients_at(std::size_t step_index, double noise_level) const;

  /// @brief Flow-GRPO's stochastic step with its per-element log-density (`star::sde_step`,
  /// `star::gaussian_log_density` on the LibTorch backend, float32 on `x`'s device), each row
  /// at its own step.
  /// @param v             [B, C, H, W] velocity prediction (any floating dtype)
  /// @param step_indices  [B] the step `k < K` of each row
  /// @param x             [B, C, H, W] latents `x_k`
  /// @param eps           [B, C, H, W] standard normal noise
  /// @param noise_level   `a >= 0` (Flow-GRPO: 0.7); `a = 0` has no log-density (value_error)
  flow_match_sde_result sde_step(const at::Tensor& v, std::span<const std::size_t> step_indices,
                                 const at::Tensor& x, const at::Tensor& eps,
                                 double noise_level = 0.7) const;

  /// @brief `sde_step` with every row at step `step_index`.
  flow_match_sde_result sde_step(const at::Tensor& v, std::size_t step_index, const at::Tensor& x,
                                 const at::Tensor& eps, double noise_level = 0.7) const;

 private:
  void require_step(std::size_t step_index) const;

  flow_match_euler_config config_;
  std::vector<double> sigmas_;
  std::vector<double> timesteps_;
};

}  // namespace star::sd35
