#pragma once
/// @file
/// @brief The optional fused tier of `spatial_policy_objective` and `spatial_policy_gradient`
/// (docs/math.md §5): what a backend provides to evaluate the objective, or its gradient
/// with respect to `ell`, in one pass per row.

#include <concepts>
#include <optional>

namespace star {

struct policy_objective_options;
template <class Tensor>
struct policy_objective_inputs;
template <class Tensor>
struct policy_objective_result;

/// @brief A backend with a fused objective kernel: `be.fused_policy_objective(in, options)`
/// returns what `spatial_policy_objective` returns (loss and metrics, the KL term included),
/// or `std::nullopt` when some input is not finite (then the checked composite path runs and
/// throws). Shapes and options are checked before the call.
template <class B>
concept fused_policy_objective_backend =
    requires(const B& be, const policy_objective_inputs<typename B::tensor>& in,
             const policy_objective_options& options) {
      {
        be.fused_policy_objective(in, options)
      } -> std::same_as<std::optional<policy_objective_result<typename B::tensor>>>;
    };

/// @brief A backend with a fused kernel for `d loss / d ell` [R, N] of the objective:
/// `be.fused_policy_log_prob_gradient(in, options)`, or `std::nullopt` when some input is
/// not finite. Shapes and options are checked before the call; `d loss / d kl` needs no
/// kernel (it is `beta / (R N)` times the KL weights).
template <class B>
concept fused_policy_gradient_backend =
    requires(const B& be, const policy_objective_inputs<typename B::tensor>& in,
             const policy_objective_options& options) {
      {
        be.fused_policy_log_prob_gradient(in, options)
      } -> std::same_as<std::optional<typename B::tensor>>;
    };

}  // namespace star
