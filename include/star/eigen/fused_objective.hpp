#pragma once
/// @file
/// @brief The Eigen backend's fused objective kernels (`star::fused_policy_objective_backend`,
/// `star::fused_policy_gradient_backend`): ratios, clipped surrogate, metrics, KL term or
/// `d loss / d ell`, one row at a time while it sits in cache, rows split over OpenMP threads.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "star/eigen/parallel.hpp"
#include "star/eigen/tensor.hpp"
#include "star/objective/policy_objective.hpp"

namespace star::eigen::detail {

/// @brief Per-row sums of the objective's terms (the means divide them by the entry counts).
struct objective_row_sums {
  double policy = 0.0;           ///< sum of `max(-Â rho, -Â clip(rho))`
  std::int64_t clip_acts = 0;    ///< entries where the clip acts
  std::int64_t outside = 0;      ///< entries with `|rho - 1| > eps`
  double squared_log_ratio = 0;  ///< sum of `(log rho)^2`
  double kl = 0.0;               ///< sum of `omega kl`
};

/// @brief The rows of one objective evaluation (`R` rows, `N` tokens), each computed as
/// `spatial_policy_objective_composite` (its sums) or `spatial_policy_gradient_composite`
/// (its `d loss / d ell`) define it. Holds references to the inputs and options.
template <class Scalar>
class objective_rows {
 public:
  using values = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  using row = Eigen::Map<const values>;

  objective_rows(const policy_objective_inputs<tensor<Scalar>>& in,
                 const policy_objective_options& options)
      : in_(in),
        options_(options),
        rows_(in.log_prob.dims[0]),
        tokens_(in.log_prob.dims[1]),
        eps_(static_cast<Scalar>(options.active_clip_range())),
        per_token_(options.mode == objective_mode::token) {}

  std::int64_t rows() const { return rows_; }
  std::int64_t tokens() const { return tokens_; }

  /// @brief Row `r`: its sums (`gradient` null) or its `d loss / d ell` [N] into `gradient`.
  /// @param scratch [N] workspace
  /// @return        false, computing nothing, when an input of the row is not finite
  bool evaluate(std::int64_t r, Eigen::Map<values> scratch, objective_row_sums& sums,
                Scalar* gradient) const {
    const row log_prob = at(in_.log_prob, r), old_log_prob = at(in_.old_log_prob, r);
    Scalar advantage = in_.advantages.values[r];
    if (in_.step_weights) advantage *= in_.step_weights->values[r];
    // 0 x is NaN exactly when x is NaN or infinite, so each probe is 0 for finite inputs.
    Scalar probe = (log_prob * Scalar{0} + old_log_prob * Scalar{0}).sum() + advantage * Scalar{0};
    if (in_.allocation) probe += (at(*in_.allocation, r) * Scalar{0}).sum();
    if (in_.kl) probe += (at(*in_.kl, r) * Scalar{0}).sum();
    if (!(probe == Scalar{0})) return false;

    const Scalar lo = Scalar{1} - eps_, hi = Scalar{1} + eps_;
    const auto entries = static_cast<double>(per_token_ ? rows_ * tokens_ : rows_);
    const auto inverse_tokens = static_cast<Scalar>(1.0 / static_cast<double>(tokens_));
    if (per_token_) {
      const row allocation = at(*in_.allocation, r);
      scratch = log_prob - old_log_prob;  // [N] log rho
      if (!gradient) sums.squared_log_ratio = static_cast<double>(scratch.square().sum());
      scratch = scratch.exp();  // [N] rho
      const auto unclipped = -advantage * allocation * scratch;               // [N]
      const auto clipped = -advantage * allocation * scratch.max(lo).min(hi);  // [N]
      if (gradient) {
        Eigen::Map<values>(gradient, tokens_) =
            (clipped > unclipped).select(Scalar{0}, unclipped) *
            static_cast<Scalar>(1.0 / entries);
      } else {
        sums.policy = static_cast<double>(unclipped.max(clipped).sum());
        sums.clip_acts = (clipped > unclipped).count();
        sums.outside = (scratch > hi).count() + (scratch < lo).count();
      }
    } else {
      const auto token_log_ratio = log_prob - old_log_prob;  // [N]
      const Scalar log_ratio =
          (options_.mode == objective_mode::weighted_scalar
               ? static_cast<Scalar>((at(*in_.allocation, r) * token_log_ratio).sum())
               : static_cast<Scalar>(token_log_ratio.sum())) *
          inverse_tokens;
      const Scalar ratio = std::exp(log_ratio);
      const Scalar unclipped = -advantage * ratio;
      const Scalar clipped = -advantage * std::min(std::max(ratio, lo), hi);
      if (gradient) {
        // d loss / d ell(n) = q(n) slope / R with q = 1 / N or W / N.
        const Scalar slope = clipped > unclipped ? Scalar{0} : unclipped;
        const auto pooled = static_cast<Scalar>(slope / entries) * inverse_tokens;
        Eigen::Map<values> out(gradient, tokens_);
        if (options_.mode == objective_mode::weighted_scalar)
          out = at(*in_.allocation, r) * pooled;
        else
          out.setConstant(pooled);
      } else {
        sums.policy = static_cast<double>(std::max(unclipped, clipped));
        sums.clip_acts = clipped > unclipped ? 1 : 0;
        sums.outside = ratio > hi || ratio < lo ? 1 : 0;
        sums.squared_log_ratio = static_cast<double>(log_ratio) * static_cast<double>(log_ratio);
      }
    }
    if (!gradient && in_.kl)
      sums.kl = static_cast<double>(
          options_.kl_weights == kl_weighting::allocation
              ? static_cast<Scalar>((at(*in_.allocation, r) * at(*in_.kl, r)).sum())
              : static_cast<Scalar>(at(*in_.kl, r).sum()));
    return true;
  }

  /// @brief Runs `evaluate` on every row over OpenMP threads; false if any row was not finite.
  bool evaluate_all(std::vector<objective_row_sums>& sums, Scalar* gradient) const {
    std::vector<unsigned char> finite(static_cast<std::size_t>(rows_), 1);
    constexpr std::int64_t cost = 12;  // scalar operations per token (exp, clip, sums)
    parallel_ranges(rows_, rows_ * tokens_ * cost, [&](std::int64_t begin, std::int64_t end) {
      values scratch(tokens_);  // [N]
      objective_row_sums unused;
      for (std::int64_t r = begin; r < end; ++r)
        finite[static_cast<std::size_t>(r)] = evaluate(
            r, Eigen::Map<values>(scratch.data(), tokens_),
            sums.empty() ? unused : sums[static_cast<std::size_t>(r)],
            gradient ? gradient + r * tokens_ : nullptr);
    });
    return std::find(finite.begin(), finite.end(), 0) == finite.end();
  }

 private:
  row at(const tensor<Scalar>& t, std::int64_t r) const {
    return row(t.values.data() + r * tokens_, tokens_);
  }

  const policy_objective_inputs<tensor<Scalar>>& in_;
  const policy_objective_options& options_;
  std::int64_t rows_, tokens_;
  Scalar eps_;
  bool per_token_;
};

/// @brief `fused_policy_objective` of `star::eigen::backend<Scalar>`: the loss [] and the
/// metrics, or nullopt when an input is not finite. Inputs are checked except their values.
template <class Scalar>
std::optional<policy_objective_result<tensor<Scalar>>> fused_policy_objective(
    const policy_objective_inputs<tensor<Scalar>>& in, const policy_objective_options& options) {
  const objective_rows<Scalar> rows(in, options);
  std::vector<objective_row_sums> sums(static_cast<std::size_t>(rows.rows()));
  if (!rows.evaluate_all(sums, nullptr)) return std::nullopt;
  objective_row_sums total;  // summed in row order, whatever the thread count
  for (const objective_row_sums& row : sums) {
    total.policy += row.policy;
    total.clip_acts += row.clip_acts;
    total.outside += row.outside;
    total.squared_log_ratio += row.squared_log_ratio;
    total.kl += row.kl;
  }
  const auto entries = static_cast<double>(
      options.mode == objective_mode::token ? rows.rows() * rows.tokens() : rows.rows());
  policy_objective_result<tensor<Scalar>> result;
  result.policy_loss = total.policy / entries;
  result.clip_fraction = static_cast<double>(total.clip_acts) / entries;
  result.outside_clip_range_fraction = static_cast<double>(total.outside) / entries;
  result.approx_kl = 0.5 * total.squared_log_ratio / entries;
  double loss = result.policy_loss;
  if (in.kl) {
    result.kl_loss = total.kl / static_cast<double>(rows.rows() * rows.tokens());
    loss += options.beta * result.kl_loss;
  }
  result.loss = {{}, Eigen::Array<Scalar, Eigen::Dynamic, 1>::Constant(
                         1, static_cast<Scalar>(loss))};  // []
  return result;
}

/// @brief `fused_policy_log_prob_gradient` of `star::eigen::backend<Scalar>`: `d loss / d ell`
/// [R, N], or nullopt when an input is not finite. Inputs are checked except their values.
template <class Scalar>
std::optional<tensor<Scalar>> fused_policy_log_prob_gradient(
    const policy_objective_inputs<tensor<Scalar>>& in, const policy_objective_options& options) {
  const objective_rows<Scalar> rows(in, options);
  using values = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  tensor<Scalar> gradient{in.log_prob.dims, values(in.log_prob.values.size())};  // [R, N]
  std::vector<objective_row_sums> no_sums;
  if (!rows.evaluate_all(no_sums, gradient.values.data())) return std::nullopt;
  return gradient;
}

}  // namespace star::eigen::detail
