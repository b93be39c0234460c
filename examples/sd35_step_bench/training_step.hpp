#pragma once
/// @file
/// @brief The benchmarked work: the MMDiT with random weights and its LoRA adapter, random
/// inputs of an SD3 prompt's shape, and one training step (forward, mean-square loss, backward
/// into lora_A / lora_B).

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "arguments.hpp"
#include "sd35/lora/adapter.hpp"
#include "sd35/mmdit/transformer.hpp"
#include "star/attention/text_selection.hpp"

namespace star::step_bench {

inline constexpr std::int64_t clip_tokens = 77;  ///< the CLIP-L/G segment of an SD3 prompt
inline constexpr std::int64_t t5_tokens = 256;   ///< the T5 segment
inline constexpr std::int64_t vae_factor = 8;    ///< pixels per latent cell
inline constexpr std::uint64_t seed = 0;         ///< weights, LoRA and inputs

/// @brief The config named by `--config` (tiny: the test fixture's 3-block MMDiT-X).
/// @throws usage_error when `--resolution` is not a multiple of the pixels per token side or
/// exceeds the positional table
sd35::transformer_config config_for(const arguments& args);

/// @brief The transformer in `--dtype` on `--device` and its adapter.
struct bench_model {
  std::shared_ptr<sd35::sd3_transformer> transformer;
  std::shared_ptr<sd35::lora_adapter> lora;  ///< Flow-GRPO defaults, float32 A and B
};

/// @brief Seeded random weights; the adapter freezes the base weights.
bench_model make_model(const sd35::transformer_config& config, const arguments& args);

/// @brief One step's random inputs, in `--dtype` on `--device` (the timestep in float32).
struct step_inputs {
  at::Tensor latent;    ///< [B, C, H, W]
  at::Tensor text;      ///< [B, L, Dj] CLIP then T5 tokens
  at::Tensor pooled;    ///< [B, Dp]
  at::Tensor timestep;  ///< [B] 1000 * sigma
};

/// @brief Random inputs for `--batch` images of `--resolution` pixels.
step_inputs make_inputs(const arguments& args, const sd35::transformer_config& config);

/// @brief The observer's text columns: 4 CLIP positions after the start token and the first
/// 4 T5 positions, equally weighted.
text_selection trainer_selection();

/// @brief One training step: adapter grads cleared, the adapted forward, `mean(v^2)`, backward
/// into lora_A / lora_B.
/// @param options  the text segments and, for the "on" variant, the observer
/// @return [] the loss, detached
at::Tensor train_step(const bench_model& model, const step_inputs& in,
                      const sd35::forward_options& options);

/// @brief Which kernel gives the observer's LSE for `--device` and `--dtype`, as
/// `libtorch::source_name` names it: a probe call at the step's joint length `tokens`, with
/// gradients, as in the training step (SDPA's choice can depend on both).
std::string lse_source(const arguments& args, const sd35::transformer_config& config,
                       std::int64_t tokens);

}  // namespace star::step_bench
