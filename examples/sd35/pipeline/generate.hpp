#pragma once
/// @file
/// @brief Text-to-image sampling with a loaded SD3 model: classifier-free guidance with the
/// empty negative prompt, diffusers' Euler ODE (`noise_level = 0`) or Flow-GRPO's SDE with
/// per-step log-probabilities, the VAE decode, and an optional attention observer on the
/// conditional half.

#include <ATen/ATen.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sd35/mmdit/attention_observer.hpp"
#include "sd35/pipeline/image_geometry.hpp"
#include "sd35/pipeline/model_folder.hpp"
#include "sd35/pipeline/prompt_encoder.hpp"

namespace star::sd35 {

/// @brief Options of `generate`. Defaults are the SD3.5 Medium model card's sampling.
struct generate_options {
  /// image rows, a multiple of `vae_scale_factor * patch_size` up to `image_geometry::max_side`
  std::int64_t height = 512;
  std::int64_t width = 512;  ///< image columns, same rule
  int steps = 28;             ///< `K` sampling steps (40 for evaluation), >= 1
  double guidance = 4.5;      ///< CFG scale `g` (> 1: batch [negative, positive]), finite >= 0
  std::uint64_t seed = 0;     ///< seeds the initial latent and the SDE noise (CPU generator)
  /// `a`: 0 runs the deterministic Euler ODE; > 0 Flow-GRPO's SDE step (0.7 in Flow-GRPO).
  double noise_level = 0.0;
  std::string negative_prompt;  ///< the CFG negative, "" as diffusers
  /// Receives every block's joint attention of the conditional half ([B, ...]); not owned.
  attention_observer* observer = nullptr;

  /// @brief Throws `star::option_error` naming the field out of range (sizes against `model`).
  void validate(const sd35_model& model) const;
  /// @brief `validate` with the sizes checked against `geometry` (`image_geometry::side_error`:
  /// the message names the largest side in pixels).
  void validate(const image_geometry& geometry) const;
};

/// @brief What `generate` returns.
struct generate_result {
  at::Tensor images;  ///< [B, 3, H, W] float32 in [0, 1], on the model's device
  /// `K + 1` of [B, C, h, w] float32: the initial noise, then the latent after each step.
  std::vector<at::Tensor> latents;
  /// [B, K] float32, SDE only (else undefined): each step's Gaussian log-density of the
  /// sampled latent, the mean over `C h w` (Flow-GRPO's `log_prob`).
  at::Tensor log_probs;
  encoded_prompts conditioning;  ///< the positive prompts' encoding and tokenizations
};

/// @brief Generates one image per prompt. Deterministic for a seed on a given device.
/// @param model    a loaded model
/// @param prompts  [B] UTF-8 prompts, B >= 1
/// @param options  size, steps, guidance, seed, SDE noise level, observer
/// @throws star::option_error naming the option; star::value_error naming `prompts` when empty
generate_result generate(const sd35_model& model, std::span<const std::string> prompts,
                         const generate_options& options = {});

}  // namespace star::sd35
