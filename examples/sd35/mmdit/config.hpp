#pragma once
/// @file
/// @brief The configuration of the MMDiT-X denoiser (diffusers `SD3Transformer2DModel`):
/// every field of diffusers' `transformer/config.json`, parsed with errors naming the key.

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace star::sd35 {

/// @brief How the per-head queries and keys of every attention are normalised.
enum class qk_norm_kind {
  none,      ///< `"qk_norm": null` (SD3 Medium v1)
  rms_norm,  ///< `"qk_norm": "rms_norm"` (SD3.5): RMSNorm over the head dim, eps 1e-6, weight
};

/// @brief diffusers' `SD3Transformer2DModel` config. Defaults are diffusers' constructor
/// defaults (the SD3 Medium v1 shape); `sd35_medium()` is the SD3.5 Medium release.
struct transformer_config {
  std::int64_t sample_size = 128;              ///< latent side the positional table is scaled for
  std::int64_t patch_size = 2;                 ///< `P`: latent cells per token side
  std::int64_t in_channels = 16;               ///< `C` of the latent input
  std::int64_t num_layers = 18;                ///< joint transformer blocks
  std::int64_t attention_head_dim = 64;        ///< `D` per head
  std::int64_t num_attention_heads = 18;       ///< `H`
  std::int64_t joint_attention_dim = 4096;     ///< width of `encoder_hidden_states`
  std::int64_t caption_projection_dim = 1152;  ///< width of the text stream (= H * D)
  std::int64_t pooled_projection_dim = 2048;   ///< width of `pooled_projections`
  std::int64_t out_channels = 16;              ///< `C` of the output
  std::int64_t pos_embed_max_size = 96;        ///< side of the stored positional table, in tokens
  std::vector<std::int64_t> dual_attention_layers;  ///< blocks with the image-only `attn2`
  qk_norm_kind qk_norm = qk_norm_kind::none;        ///< q/k normalisation

  /// @brief `H * D`, the width of both streams.
  std::int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  /// @brief Whether block `index` is an MMDiT-X dual-attention block.
  bool is_dual_attention(std::int64_t index) const;

  /// @brief Throws `star::option_error` naming the field when a value is out of range:
  /// every size >= 1, `caption_projection_dim == H * D`, dual layers unique in
  /// `[0, num_layers)`.
  void validate() const;

  /// @brief Parses a diffusers `config.json` text. Keys starting with `_` (`_class_name`,
  /// `_diffusers_version`, ...) are ignored, missing keys keep diffusers' defaults; an unknown
  /// key, a wrong JSON type or an out-of-range value throws `star::option_error` naming the
  /// key. The result is validated.
  static transformer_config from_json(std::string_view json_text);
  /// @brief Reads and parses a `config.json` file (`from_json`); errors name the file.
  static transformer_config from_file(const std::filesystem::path& path);
};

/// @brief The SD3.5 Medium release config (2.5B parameters): 24 layers, 24 heads of 64,
/// dual attention in blocks 0..12, RMS q/k norm, a 384 x 384 positional table.
transformer_config sd35_medium();

}  // namespace star::sd35
