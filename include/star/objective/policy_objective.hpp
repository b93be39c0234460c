#pragma once
/// @file
/// @brief The spatially resolved clipped policy objective (docs/math.md §5) in its three
/// modes, with the metrics a trainer logs. Rows `R` are (rollout, step) pairs; `N` tokens.

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/error.hpp"
#include "star/core/ops.hpp"
#include "star/core/value_checks.hpp"
#include "star/objective/fused_objective.hpp"

namespace star {

/// @brief How log-probability ratios and advantages are formed.
enum class objective_mode {
  /// Flow-GRPO: one ratio per row from `mean_n ell(n)`, advantage `A * gamma` (with
  /// `gamma` absent, exactly the baseline). `allocation` enters only a W-weighted KL.
  /// Clip `clip_range`.
  scalar,
  /// One ratio per row from `sum_n q(n) ell(n)`, `q = W / N`; advantage `A * gamma`.
  /// Clip `clip_range`.
  weighted_scalar,
  /// STAR: per-token ratios `rho(n)` and advantages `A * gamma * W(n)`. Clip
  /// `token_clip_range`.
  token,
};

/// @brief How the per-token KL is averaged over space.
enum class kl_weighting {
  uniform,     ///< `mean_n kl(n)` (default)
  allocation,  ///< `mean_n W(n) kl(n)`
};

/// @brief Options of `spatial_policy_objective`.
struct policy_objective_options {
  objective_mode mode = objective_mode::token;  ///< STAR's default
  double clip_range = 1e-4;        ///< `eps` of scalar / weighted_scalar, in (0, 1) (Flow-GRPO)
  double token_clip_range = 2e-3;  ///< `eps_tok` of token mode, in (0, 1)
  /// KL weight `beta >= 0`; > 0 needs the per-token KL. Flow-GRPO: 0.004 (OCR, GenEval),
  /// 0.001 (PickScore) with `kl_denominator::transition_variance`, x10 with
  /// `noise_scale_squared`.
  double beta = 0.0;
  kl_weighting kl_weights = kl_weighting::uniform;  ///< spatial weighting of the KL

  /// @brief The clip range of the selected mode.
  double active_clip_range() const {
    return mode == objective_mode::token ? token_clip_range : clip_range;
  }

  /// @brief Throws `option_error` naming the field outside its range.
  void validate() const {
    if (mode != objective_mode::scalar && mode != objective_mode::weighted_scalar &&
        mode != objective_mode::token)
      throw option_error("policy_objective_options.mode: expected scalar, weighted_scalar or "
                         "token, got " + std::to_string(static_cast<int>(mode)));
    if (kl_weights != kl_weighting::uniform && kl_weights != kl_weighting::allocation)
      throw option_error("policy_objective_options.kl_weights: expected uniform or allocation, "
                         "got " + std::to_string(static_cast<int>(kl_weights)));
    const auto require_open_unit = [](std::string_view field, double value) {
      if (!(value > 0.0 && value < 1.0))
        throw option_error("policy_objective_options." + std::string(field) +
                           " must be in (0, 1), got " + detail::printed(value));
    };
    require_open_unit("clip_range", clip_range);
    require_open_unit("token_clip_range", token_clip_range);
    if (!(beta >= 0.0) || !std::isfinite(beta))
      throw option_error("policy_objective_options.beta must be finite and >= 0, got " +
                         detail::printed(beta));
  }
};

/// @brief The tensors of one objective evaluation (`R` rows, `N` tokens).
template <class Tensor>
struct policy_objective_inputs {
  Tensor log_prob;                     ///< [R, N] `ell` (differentiable)
  Tensor old_log_prob;                 ///< [R, N] `ell_old`, stored at sampling time
  Tensor advantages;                   ///< [R] `A` of each row's rollout
  std::optional<Tensor> allocation;    ///< [R, N] `W`, mean 1 per row; weighted_scalar, token
  std::optional<Tensor> step_weights;  ///< [R] `gamma`; absent means 1
  std::optional<Tensor> kl;            ///< [R, N] per-token KL (`per_token_kl`); beta > 0
};

/// @brief The objective and what a trainer logs. "Ratio entries" are the rows (scalar modes)
/// or the row-token pairs (token mode).
template <class Tensor>
struct policy_objective_result {
  Tensor loss;  ///< [] `L_pg + beta * L_kl`, differentiable where the backend is
  double policy_loss = 0.0;  ///< `L_pg = mean max(-Â rho, -Â clip(rho, 1 - eps, 1 + eps))`
  double kl_loss = 0.0;      ///< `L_kl` before `beta` (0 without a KL input)
  /// Fraction of ratio entries where the clip acts: the clipped term is strictly larger, i.e.
  /// `Â > 0, rho > 1 + eps` or `Â < 0, rho < 1 - eps`; their gradient is zero.
  double clip_fraction = 0.0;
  /// Fraction of ratio entries with `|rho - 1| > eps`, whatever `Â` (Flow-GRPO's "clipfrac").
  double outside_clip_range_fraction = 0.0;
  double approx_kl = 0.0;  ///< `0.5 mean (log rho)^2` over the ratio entries
};

namespace detail {

/// @brief Checks the options and the shapes and presence of every input, not the values;
/// returns `{R, N}`.
template <tensor_backend B>
shape require_objective_shapes(const B& be,
                               const policy_objective_inputs<typename B::tensor>& in,
                               const policy_objective_options& options) {
  options.validate();
  const shape tokens = be.shape_of(in.log_prob);
  require_rank("log_prob", tokens, 2, "[R, N]");
  if (tokens[0] < 1 || tokens[1] < 1)
    throw shape_error("log_prob: expected at least one row and one token, got shape " +
                      to_string(tokens));
  const shape rows{tokens[0]};
  require_shape("old_log_prob", be.shape_of(in.old_log_prob), tokens, "[R, N] like log_prob");
  require_shape("advantages", be.shape_of(in.advantages), rows, "[R]");
  if (in.allocation)
    require_shape("allocation", be.shape_of(*in.allocation), tokens, "[R, N] like log_prob");
  if (in.step_weights) require_shape("step_weights", be.shape_of(*in.step_weights), rows, "[R]");
  if (in.kl) require_shape("kl", be.shape_of(*in.kl), tokens, "[R, N] like log_prob");
  if (!in.allocation && options.mode != objective_mode::scalar)
    throw option_error(std::string("allocation: mode ") +
                       (options.mode == objective_mode::token ? "token" : "weighted_scalar") +
                       " needs the allocation weights W [R, N]");
  if (!in.allocation && in.kl && options.kl_weights == kl_weighting::allocation)
    throw option_error("allocation: kl_weights = allocation needs the allocation weights W");
  if (!in.kl && options.beta > 0.0)
    throw option_error("kl: beta = " + detail::printed(options.beta) +
                       " > 0 needs the per-token KL [R, N]");
  return tokens;
}

/// @brief Checks every input against the options, values included; returns `{R, N}`.
template <tensor_backend B>
shape require_objective_inputs(const B& be,
                               const policy_objective_inputs<typename B::tensor>& in,
                               const policy_objective_options& options) {
  const shape tokens = require_objective_shapes(be, in, options);
  require_finite(be, in.log_prob, "log_prob");
  require_finite(be, in.old_log_prob, "old_log_prob");
  require_finite(be, in.advantages, "advantages");
  if (in.allocation) require_finite(be, *in.allocation, "allocation");
  if (in.step_weights) require_finite(be, *in.step_weights, "step_weights");
  if (in.kl) require_finite(be, *in.kl, "kl");
  return tokens;
}

/// @brief The ratio entries of one evaluation, shared by the loss and its analytic gradient.
template <class Tensor>
struct clipped_ratio_terms {
  Tensor log_ratio;       ///< [R] (scalar modes) or [R, N] (token) `log rho`
  Tensor ratio;           ///< like log_ratio: `rho`
  Tensor unclipped_loss;  ///< like log_ratio: `-Â rho`
  Tensor clipped_loss;    ///< like log_ratio: `-Â clip(rho, 1 - eps, 1 + eps)`
  /// [R, N] `q`, the weights that pool a row's tokens into its log-probability (scalar
  /// modes: `1 / N` or `W / N`); absent in token mode.
  std::optional<Tensor> row_weights;
};

/// @brief Forms the ratios and advantages of the selected mode. Inputs must be checked.
template <complete_backend B>
clipped_ratio_terms<typename B::tensor> clipped_ratios(
    const B& be, const policy_objective_inputs<typename B::tensor>& in,
    const policy_objective_options& options, const shape& tokens) {
  using tensor = typename B::tensor;
  const bool per_token = options.mode == objective_mode::token;
  const tensor row_advantage =
      in.step_weights ? be.mul(in.advantages, *in.step_weights) : in.advantages;  // [R]
  const tensor token_log_ratio = be.sub(in.log_prob, in.old_log_prob);           // [R, N]
  std::optional<tensor> row_weights;
  if (!per_token) {
    const double per_token_weight = 1.0 / static_cast<double>(tokens[1]);
    row_weights = options.mode == objective_mode::scalar
                      ? be.full(tokens, per_token_weight)          // [R, N]
                      : be.mul(*in.allocation, per_token_weight);  // [R, N]
  }
  const tensor log_ratio =
      per_token ? token_log_ratio
                : be.sum(be.mul(*row_weights, token_log_ratio), {1}, false);  // [R, N] or [R]
  const tensor advantage =
      per_token ? be.mul(be.reshape(row_advantage, {tokens[0], 1}), *in.allocation)  // [R, N]
                : row_advantage;                                                     // [R]
  const double eps = options.active_clip_range();
  const tensor neg_advantage = ops::neg(be, advantage);                          // like log_ratio
  const tensor ratio = be.exp(log_ratio);                                        // like log_ratio
  const tensor clipped_ratio = be.clamp(ratio, 1.0 - eps, 1.0 + eps);            // like log_ratio
  return {log_ratio, ratio, be.mul(neg_advantage, ratio),                        // like log_ratio
          be.mul(neg_advantage, clipped_ratio), std::move(row_weights)};         // like log_ratio
}

/// @brief The per-token spatial weights of the KL average: `W` or all ones.
template <tensor_backend B>
typename B::tensor kl_spatial_weights(const B& be,
                                      const policy_objective_inputs<typename B::tensor>& in,
                                      const policy_objective_options& options,
                                      const shape& tokens) {
  return options.kl_weights == kl_weighting::allocation ? *in.allocation
                                                        : be.full(tokens, 1.0);  // [R, N]
}

}  // namespace detail

/// @brief The clipped policy objective `L_pg + beta * L_kl` with
/// `L_pg = mean over ratio entries of max(-Â rho, -Â clip(rho, 1 - eps, 1 + eps))` and
/// `L_kl = mean_{r, n} omega(r, n) kl(r, n)` (`omega` = 1 or `W`), in backend ops only (the
/// composite path; `spatial_policy_objective` runs a backend's fused kernel when it has one).
/// Throws `shape_error` (a shape), `option_error` (an option, or an input it requires that is
/// missing), `value_error` (a non-finite input), each naming the argument.
/// @param be      the backend
/// @param in      the per-token log-probabilities, advantages, allocation, step weights, KL
/// @param options mode, clip ranges, beta, KL weighting
template <complete_backend B>
policy_objective_result<typename B::tensor> spatial_policy_objective_composite(
    const B& be, const policy_objective_inputs<typename B::tensor>& in,
    const policy_objective_options& options = {}) {
  const shape tokens = detail::require_objective_inputs(be, in, options);
  const auto terms = detail::clipped_ratios(be, in, options, tokens);
  const auto per_entry = be.maximum(terms.unclipped_loss, terms.clipped_loss);  // [R] or [R, N]
  const auto policy_loss = ops::mean_all(be, per_entry);                     // []
  const auto clip_acts = be.greater(terms.clipped_loss, terms.unclipped_loss);  // [R] or [R, N]
  const double eps = options.active_clip_range();
  const auto above = be.greater(terms.ratio, be.full({}, 1.0 + eps));  // [R] or [R, N]
  const auto below = be.greater(be.full({}, 1.0 - eps), terms.ratio);  // [R] or [R, N]

  policy_objective_result<typename B::tensor> result{policy_loss};
  result.policy_loss = ops::item(be, policy_loss);
  result.clip_fraction = ops::item(be, ops::mean_all(be, clip_acts));
  result.outside_clip_range_fraction = ops::item(be, ops::mean_all(be, be.add(above, below)));
  result.approx_kl =
      0.5 * ops::item(be, ops::mean_all(be, ops::square(be, terms.log_ratio)));
  if (in.kl) {
    const auto weights = detail::kl_spatial_weights(be, in, options, tokens);  // [R, N]
    const auto kl_loss = ops::mean_all(be, be.mul(weights, *in.kl));       // []
    result.kl_loss = ops::item(be, kl_loss);
    result.loss = be.add(policy_loss, be.mul(kl_loss, options.beta));  // []
  }
  return result;
}

/// @brief `spatial_policy_objective_composite`, from the backend's fused kernel when it has
/// one (`fused_policy_objective_backend`); inputs that are not finite take the composite
/// path, so every error is the composite's.
/// @param be      the backend
/// @param in      the per-token log-probabilities, advantages, allocation, step weights, KL
/// @param options mode, clip ranges, beta, KL weighting
template <complete_backend B>
policy_objective_result<typename B::tensor> spatial_policy_objective(
    const B& be, const policy_objective_inputs<typename B::tensor>& in,
    const policy_objective_options& options = {}) {
  if constexpr (fused_policy_objective_backend<B>) {
    detail::require_objective_shapes(be, in, options);
    if (auto fused = be.fused_policy_objective(in, options)) return std::move(*fused);
  }
  return spatial_policy_objective_composite(be, in, options);
}

}  // namespace star
