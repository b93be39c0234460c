#pragma once
/// @file
/// @brief LoRA on the `torch::nn::Linear` layers of an unmodified module (the MMDiT): for each
/// adapted Linear, trainable `lora_A` [r, in] and `lora_B` [out, r]; the effective weight
/// `W0 + (alpha / r) B A` is written into the Linear's `weight` MEMBER (the tensor
/// `LinearImpl::forward` reads), while its registered parameter stays the frozen `W0`, so the
/// module's `named_parameters()` / checkpoints keep the base weights.
///
/// Usage per training step: `{ auto on = lora->enabled(); loss(model->forward(...)).backward(); }`
/// (one fresh `W0 + s B A` graph per step: call `apply()` or open a scope before every forward
/// whose backward you run, and again after each optimiser step). `disabled()` gives the base
/// model (Flow-GRPO's reference policy for the KL term).
///
/// Memory note: the effective weight is materialised ([out, in] per adapted layer, plus its
/// gradient in backward), unlike peft's `x A^T B^T` path; `B A` is computed in the LoRA dtype
/// and cast to the base weight's dtype before the sum.
///
/// Dimension letters: r rank, in / out the Linear's features.

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sd35/lora/options.hpp"

namespace star::sd35 {

/// @brief The LoRA adapter of one module. Its own `named_parameters()` are peft's names without
/// the prefix: `transformer_blocks.0.attn.to_q.lora_A.weight` / `.lora_B.weight`.
class lora_adapter : public torch::nn::Module {
 public:
  /// @brief Adapts every `torch::nn::Linear` submodule of `model` whose name matches a target
  /// suffix (`matches_lora_target`), creating A (per `options.init`, seeded) and B = 0 on the
  /// base weight's device in `options.dtype`. Freezes EVERY parameter of `model`
  /// (requires_grad false), as peft does, once everything else succeeded. The Linears are held,
  /// so the adapter may outlive `model`. The Linear members are left at the base weights (call
  /// `apply()`).
  /// @throws star::option_error on invalid options or when no Linear matches any target (the
  ///   model is then unchanged)
  lora_adapter(torch::nn::Module& model, lora_options options);
  /// @brief Puts every adapted Linear's `weight` member back to its base parameter.
  ~lora_adapter() override;

  lora_adapter(const lora_adapter&) = delete;
  lora_adapter& operator=(const lora_adapter&) = delete;

  /// @brief RAII: sets the adapted weights (`enabled`) or the base weights (`disabled`) and, on
  /// destruction, puts back exactly the `weight` members that were there before.
  class scope {
   public:
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope();

   private:
    friend class lora_adapter;
    scope(lora_adapter& adapter, bool enable);
    lora_adapter& adapter_;
    std::vector<at::Tensor> previous_;  // each target's weight member before the scope
    bool previous_active_;
  };

  /// @brief The parameters an adapter of `model` with `options` has, in its order: per adapted
  /// Linear `<module>.lora_A.weight` [r, in] and `<module>.lora_B.weight` [out, r]. Changes
  /// nothing: what a loader checks a file against before building the adapter.
  /// @throws star::option_error as the constructor does
  static std::vector<std::pair<std::string, std::vector<std::int64_t>>> parameter_shapes(
      const torch::nn::Module& model, const lora_options& options);

  /// @brief Sets every adapted Linear's `weight` member to `W0 + scale B A` (non-leaf: autograd
  /// reaches A and B; under NoGradGuard it is a plain tensor).
  /// @throws star::value_error after `merge()`, or when A/B and W0 are on different devices
  ///   (no member is then changed)
  void apply();
  /// @brief Sets every adapted Linear's `weight` member back to its registered base parameter.
  void restore();
  /// @brief `apply()` now, the previous members back at the end of the scope.
  [[nodiscard]] scope enabled();
  /// @brief `restore()` now (the base model), the previous members back at the end of the scope.
  /// @throws star::value_error after `merge()` (the base weights are gone)
  [[nodiscard]] scope disabled();
  /// @brief Whether the members currently hold the adapted weights.
  bool active() const { return active_; }

  /// @brief Bakes the adapter into the base: `W0 += scale B A` in place (no grad), members back
  /// to W0. One-way: `apply`/`enabled`/`disabled` throw afterwards; A and B are kept (saving
  /// still works).
  void merge();
  /// @brief Whether `merge()` ran.
  bool merged() const { return merged_; }

  /// @brief Every `lora_A` and `lora_B` (target order, A then B): what the optimiser gets.
  std::vector<at::Tensor> trainable_parameters() const;
  /// @brief The adapted module names of the model, in the model's module order.
  std::vector<std::string> adapted_modules() const;
  /// @brief The options the adapter was built with.
  const lora_options& options() const { return options_; }
  /// @brief `alpha / rank`.
  double scale() const { return options_.scale(); }

 private:
  struct target {
    std::string name;                               // the Linear's name in the model
    std::shared_ptr<torch::nn::LinearImpl> linear;  // the adapted layer
    at::Tensor lora_a;                              // [r, in]
    at::Tensor lora_b;                              // [out, r]
  };

  void require_unmerged(const char* what) const;
  std::vector<at::Tensor> weight_members() const;
  void set_weight_members(const std::vector<at::Tensor>& members, bool active) noexcept;

  lora_options options_;
  std::vector<target> targets_;
  bool active_ = false;
  bool merged_ = false;
};

}  // namespace star::sd35
