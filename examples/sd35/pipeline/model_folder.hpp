#pragma once
/// @file
/// @brief A whole SD3 / SD3.5 model loaded from a diffusers-layout folder: the denoiser, the
/// VAE decoder, the three text encoders (T5 optional), the three tokenizers and the scheduler
/// config, in one dtype on one device.

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "sd35/mmdit/transformer.hpp"
#include "sd35/scheduler/flow_match_euler.hpp"
#include "sd35/text/clip_text_model.hpp"
#include "sd35/text/t5_encoder.hpp"
#include "sd35/tokenizers/prompt_tokens.hpp"
#include "sd35/vae/decoder.hpp"

namespace star::sd35 {

/// @brief How `sd35_model::load` places the model.
struct model_load_options {
  at::ScalarType dtype = at::kFloat;  ///< floating dtype of every module (kFloat, kBFloat16, kHalf)
  at::Device device = at::kCPU;       ///< where every module lives
  bool use_t5 = true;                 ///< false: ignore `text_encoder_3/` (T5 features are zeros)
  std::int64_t t5_length = 256;       ///< `Lt`, T5 positions (256 diffusers, 128 Flow-GRPO)

  /// @brief Throws `star::option_error` naming the field: a non-floating dtype, `t5_length < 1`.
  void validate() const;
};

/// @brief SD3 / SD3.5 as diffusers lays it out on disk, every module in eval mode.
struct sd35_model {
  std::shared_ptr<sd3_transformer> transformer;  ///< `transformer/`
  vae_decoder vae{nullptr};                      ///< `vae/` (decoder half)
  clip_text_model clip_l{nullptr};               ///< `text_encoder/` (CLIP-L)
  clip_text_model clip_g{nullptr};               ///< `text_encoder_2/` (CLIP-G)
  t5_encoder t5{nullptr};  ///< `text_encoder_3/`; empty when absent or not used
  /// `tokenizer/`, `tokenizer_2/` and, with T5, `tokenizer_3/` (always set after load)
  std::optional<sd3_tokenizers> tokenizers;
  flow_match_euler_config scheduler;  ///< `scheduler/scheduler_config.json`
  model_load_options options;         ///< how it was loaded

  /// @brief Whether T5 runs (else its `Lt` positions are zeros, as diffusers without
  /// `text_encoder_3`).
  bool has_t5() const { return static_cast<bool>(t5); }
  /// @brief Image pixels per latent cell: `2^(levels - 1)` of the VAE (8 for SD3).
  std::int64_t vae_scale_factor() const;

  /// @brief Loads every component of `folder` through the checkpoint loader (strict: every
  /// parameter present, nothing unexpected, shapes and dtype classes right).
  /// @param folder   the model root holding transformer/, vae/, text_encoder/,
  ///   text_encoder_2/, [text_encoder_3/], tokenizer/, tokenizer_2/, [tokenizer_3/], scheduler/
  /// @param options  dtype, device, T5 use and length
  /// @throws checkpoint_error naming the component and the missing folder or file, or (with
  ///   the load report) the missing / mis-shaped / wrongly typed tensor; option_error naming
  ///   the component and config key; value_error from a tokenizer folder
  static sd35_model load(const std::filesystem::path& folder,
                         const model_load_options& options = {});
};

}  // namespace star::sd35
