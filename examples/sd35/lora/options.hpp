#pragma once
/// @file
/// @brief What a LoRA adapter adapts and how it starts: rank, alpha, initialisation, the
/// target module-name suffixes (Flow-GRPO's by default), parameter dtype and seed; and peft's
/// rule for matching a target suffix against a module name.

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace star::sd35 {

/// @brief How `lora_A` starts (`lora_B` always starts at zero unless `zeros` says both).
enum class lora_init {
  gaussian,         ///< A ~ N(0, (1/r)^2): peft `init_lora_weights="gaussian"` (Flow-GRPO)
  kaiming_uniform,  ///< A ~ U(-1/sqrt(in), 1/sqrt(in)): peft's default `init_lora_weights=True`
  zeros,            ///< A = 0 too: a placeholder to be overwritten (no gradient reaches it)
};

/// @brief Flow-GRPO's SD3.5 targets: the joint attention's eight projections
/// (`attn.add_k_proj`, `attn.add_q_proj`, `attn.add_v_proj`, `attn.to_add_out`, `attn.to_k`,
/// `attn.to_out.0`, `attn.to_q`, `attn.to_v`); the image-only `attn2` is not matched.
std::vector<std::string> flow_grpo_lora_targets();

/// @brief peft's suffix rule: `module_name == suffix` or `module_name` ends with `"." + suffix`.
bool matches_lora_target(std::string_view module_name, std::string_view suffix);

/// @brief The options of a LoRA adapter; defaults are Flow-GRPO's (r 32, alpha 64, Gaussian).
struct lora_options {
  std::int64_t rank = 32;                ///< `r`, >= 1
  double alpha = 64.0;                   ///< `lora_alpha`, finite and > 0; scale = alpha / r
  lora_init init = lora_init::gaussian;  ///< how `lora_A` starts
  std::vector<std::string> target_modules = flow_grpo_lora_targets();  ///< name suffixes
  at::ScalarType dtype = at::kFloat;  ///< dtype of `lora_A` / `lora_B` (floating)
  std::uint64_t seed = 0;             ///< seed of the initialisation (CPU generator)

  /// @brief `alpha / rank`, the factor of `B A` in `W0 + scale B A`.
  double scale() const { return alpha / static_cast<double>(rank); }

  /// @brief Throws `star::option_error` naming the field: rank < 1, alpha not finite and
  /// positive, no targets, an empty target or one starting or ending with '.', duplicate
  /// targets, a non-floating dtype.
  void validate() const;
};

}  // namespace star::sd35
