#pragma once
/// @file
/// @brief The configuration of diffusers' `AutoencoderKL` (the VAE), read from a release's
/// `vae/config.json`, with errors naming the key.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace star::sd35 {

/// @brief diffusers' `AutoencoderKL` config. Defaults are diffusers' constructor defaults (so a
/// config.json that omits a key means what it means to diffusers); `sd35_medium_vae()` is the
/// SD3 / SD3.5 VAE. Only the decoder is built from it.
struct vae_config {
  std::int64_t in_channels = 3;                        ///< image channels the encoder reads
  std::int64_t out_channels = 3;                       ///< image channels the decoder writes
  std::vector<std::int64_t> block_out_channels{64};    ///< channels per level, finest first
  std::int64_t layers_per_block = 1;  ///< encoder resnets per level (decoder: one more)
  std::int64_t latent_channels = 4;   ///< `C` of the latent
  std::int64_t norm_num_groups = 32;  ///< groups of every GroupNorm (eps 1e-6)
  double scaling_factor = 0.18215;    ///< the denoiser's latent is `(z - shift) * scaling`
  double shift_factor = 0.0;          ///< see `scaling_factor` (JSON null: 0)
  bool use_quant_conv = true;         ///< encoder side only: the decoder ignores it
  bool use_post_quant_conv = true;    ///< a 1x1 conv `post_quant_conv` before the decoder
  bool mid_block_add_attention = true;  ///< self-attention in the decoder's mid block

  /// @brief The most levels `block_out_channels` may have: `scale_factor()` stays a shift.
  static constexpr std::size_t max_levels = 16;
  /// @brief Image pixels per latent cell along each side: `2^(levels - 1)`, one upsampler per
  /// level of `block_out_channels` but the last (8 for SD3).
  std::int64_t scale_factor() const {
    return std::int64_t{1} << (block_out_channels.size() - 1);
  }
  /// @brief Throws `star::option_error` naming the field when a value is out of range: every
  /// count >= 1, `block_out_channels` non-empty with every entry a positive multiple of
  /// `norm_num_groups`, `scaling_factor` finite and > 0, `shift_factor` finite.
  void validate() const;

  /// @brief Parses a diffusers `config.json` text. Keys starting with `_` and the encoder-only
  /// or unused keys (`down_block_types`, `sample_size`, `force_upcast`) are ignored, missing
  /// keys keep diffusers' defaults. Throws `star::option_error` naming the key on an unknown
  /// key, a wrong JSON type, `act_fn` other than "silu", an `up_block_types` entry other than
  /// "UpDecoderBlock2D" (or a count other than `block_out_channels`'), a non-null
  /// `latents_mean` / `latents_std` (SD3's decode has no per-channel statistics), or an
  /// out-of-range value. The result is validated.
  static vae_config from_json(std::string_view json_text);

  /// @brief Reads and parses `path`: the config.json itself or a folder holding one (a
  /// release's `vae/`). Errors name the file.
  static vae_config from_file(const std::filesystem::path& path);
};

/// @brief The SD3 / SD3.5 Medium VAE: 16 latent channels, block_out_channels
/// [128, 256, 512, 512], 2 layers per block, 32 groups, scaling 1.5305, shift 0.0609, no
/// quant / post-quant convs.
vae_config sd35_medium_vae();

}  // namespace star::sd35
