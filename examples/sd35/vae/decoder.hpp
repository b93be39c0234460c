#pragma once
/// @file
/// @brief The VAE decoder of diffusers' `AutoencoderKL` (SD3: 16 latent channels, no
/// post_quant_conv) as LibTorch modules whose parameter names are exactly diffusers'
/// `state_dict()` names (`decoder.conv_in.weight`, `decoder.mid_block.attentions.0.to_q.weight`,
/// `decoder.up_blocks.0.upsamplers.0.conv.weight`, ...), so a release's `vae/` loads by name.
///
/// Every GroupNorm has `norm_num_groups` groups, eps 1e-6 and an affine; the activation is SiLU.
/// The modules run in float32, bfloat16 and float16 (`module->to(dtype)`).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "sd35/safetensors/checkpoint.hpp"
#include "sd35/safetensors/load.hpp"
#include "sd35/vae/config.hpp"

namespace star::sd35 {

/// @brief diffusers' `ResnetBlock2D` without a time embedding:
/// `shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))))))`, the shortcut a 1x1
/// `conv_shortcut` when the channel count changes, else the identity.
class vae_resnet_block_impl : public torch::nn::Module {
 public:
  /// @param in_channels   `C` of the input
  /// @param out_channels  `C` of the output
  /// @param groups        GroupNorm groups (divides both channel counts)
  vae_resnet_block_impl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t groups);

  /// @param x  [B, C_in, h, w]
  /// @return   [B, C_out, h, w]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::GroupNorm norm1{nullptr};         ///< on C_in
  torch::nn::Conv2d conv1{nullptr};            ///< 3x3, C_in -> C_out
  torch::nn::GroupNorm norm2{nullptr};         ///< on C_out
  torch::nn::Conv2d conv2{nullptr};            ///< 3x3, C_out -> C_out
  torch::nn::Conv2d conv_shortcut{nullptr};    ///< 1x1, only when C_in != C_out
};
TORCH_MODULE_IMPL(vae_resnet_block, vae_resnet_block_impl);

/// @brief The mid block's single-head self-attention over the `h * w` positions (row-major),
/// with a GroupNorm in front and the residual added: `x + to_out(attention(group_norm(x)))`.
/// `to_q`, `to_k`, `to_v`, `to_out.0` are Linear layers `[C, C]` (diffusers' format).
class vae_attention_impl : public torch::nn::Module {
 public:
  /// @param channels  `C`, the one head's width (scale `1 / sqrt(C)`)
  /// @param groups    GroupNorm groups
  vae_attention_impl(std::int64_t channels, std::int64_t groups);

  /// @param x  [B, C, h, w]
  /// @return   [B, C, h, w]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::Linear out_proj{nullptr};  ///< registered as `to_out.0`
};
TORCH_MODULE_IMPL(vae_attention, vae_attention_impl);

/// @brief diffusers' `UNetMidBlock2D` without time embedding: `resnets.0`, `attentions.0`
/// (when enabled), `resnets.1`, all at one width.
class vae_mid_block_impl : public torch::nn::Module {
 public:
  /// @param channels        `C` of input and output
  /// @param groups          GroupNorm groups
  /// @param add_attention   whether `attentions.0` exists
  vae_mid_block_impl(std::int64_t channels, std::int64_t groups, bool add_attention);

  /// @param x  [B, C, h, w]
  /// @return   [B, C, h, w]
  at::Tensor forward(const at::Tensor& x);

  std::vector<vae_resnet_block> resnets;  ///< the two resnets (registered as `resnets.{0,1}`)
  vae_attention attention{nullptr};   ///< `attentions.0`, or empty
};
TORCH_MODULE_IMPL(vae_mid_block, vae_mid_block_impl);

/// @brief diffusers' `Upsample2D` as the VAE uses it: nearest-neighbour x2, then a 3x3 `conv`.
class vae_upsample_impl : public torch::nn::Module {
 public:
  /// @param channels  `C` of input and output
  explicit vae_upsample_impl(std::int64_t channels);

  /// @param x  [B, C, h, w]
  /// @return   [B, C, 2h, 2w]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE_IMPL(vae_upsample, vae_upsample_impl);

/// @brief diffusers' `UpDecoderBlock2D`: `resnets.{0..n-1}` (the first changes the width), then
/// `upsamplers.0` unless it is the last block.
class vae_up_block_impl : public torch::nn::Module {
 public:
  /// @param in_channels   `C_in`
  /// @param out_channels  `C_out`
  /// @param layers        resnets (`layers_per_block + 1`)
  /// @param groups        GroupNorm groups
  /// @param add_upsample  whether `upsamplers.0` exists
  vae_up_block_impl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t layers,
                    std::int64_t groups, bool add_upsample);

  /// @param x  [B, C_in, h, w]
  /// @return   [B, C_out, 2h, 2w] with an upsampler, else [B, C_out, h, w]
  at::Tensor forward(const at::Tensor& x);

  std::vector<vae_resnet_block> resnets;  ///< registered as `resnets.{j}`
  vae_upsample upsampler{nullptr};        ///< `upsamplers.0`, or empty
};
TORCH_MODULE_IMPL(vae_up_block, vae_up_block_impl);

/// @brief diffusers' `Decoder`: `conv_in` -> `mid_block` -> `up_blocks` (widths
/// `block_out_channels` reversed) -> `conv_norm_out` -> SiLU -> `conv_out`.
class vae_decoder_stack_impl : public torch::nn::Module {
 public:
  /// @brief Builds the modules of `config` (its `block_out_channels`, `layers_per_block`,
  /// `norm_num_groups`, `latent_channels`, `out_channels`, `mid_block_add_attention`) with
  /// LibTorch's default initialisation.
  explicit vae_decoder_stack_impl(const vae_config& config);

  /// @param z  [B, C, h, w] decoder input (`C = latent_channels`)
  /// @return   [B, out_channels, h * 2^(levels - 1), w * 2^(levels - 1)]
  at::Tensor forward(const at::Tensor& z);

  torch::nn::Conv2d conv_in{nullptr};           ///< 3x3, latent_channels -> widest
  vae_mid_block mid_block{nullptr};             ///< at the widest channel count
  std::vector<vae_up_block> up_blocks;          ///< registered as `up_blocks.{i}`
  torch::nn::GroupNorm conv_norm_out{nullptr};  ///< on block_out_channels[0]
  torch::nn::Conv2d conv_out{nullptr};          ///< 3x3, block_out_channels[0] -> out_channels
};
TORCH_MODULE_IMPL(vae_decoder_stack, vae_decoder_stack_impl);

/// @brief The decoding half of `AutoencoderKL`: parameters `decoder.*` (and `post_quant_conv.*`
/// when the config has one), and the SD3 pipeline's latent un-scaling.
class vae_decoder_impl : public torch::nn::Module {
 public:
  /// @brief Builds the modules with LibTorch's default initialisation; validates `config`.
  explicit vae_decoder_impl(const vae_config& config);

  /// @brief `decoder(post_quant_conv(z))`: the raw decoder, `z` in the parameters' dtype.
  /// @param z  [B, C, h, w] (`C = latent_channels`); else `star::shape_error` naming `z`
  /// @return   [B, out_channels, H, W] roughly in [-1, 1]
  at::Tensor forward(const at::Tensor& z);

  /// @brief The SD3 pipeline's decode of a denoised latent: `z = latent / scaling_factor +
  /// shift_factor`, then `forward(z)`. `latent` is first converted to the parameters' dtype and
  /// device.
  /// @param latent  [B, C, h, w] as the denoising loop ends; else `star::shape_error` naming it
  /// @return        [B, out_channels, H, W] roughly in [-1, 1]
  at::Tensor decode(const at::Tensor& latent);

  /// @brief The config it was built from.
  const vae_config& config() const { return config_; }

  vae_decoder_stack decoder{nullptr};          ///< `decoder`
  torch::nn::Conv2d post_quant_conv{nullptr};   ///< 1x1, only with use_post_quant_conv

 private:
  vae_config config_;
};
TORCH_MODULE_IMPL(vae_decoder, vae_decoder_impl);

/// @brief diffusers' `VaeImageProcessor.postprocess(..., "pt")`: `(x / 2 + 0.5).clamp(0, 1)`.
/// @param decoded  [B, 3, H, W] decoder output
/// @return         [B, 3, H, W] in [0, 1], same dtype
at::Tensor to_image_0_1(const at::Tensor& decoded);

/// @brief Loads a VAE checkpoint (a release's `vae/` folder or file, usually the full
/// `AutoencoderKL` with `encoder.*`) into `vae`: `decoder.*` strictly (prefix "decoder."), then
/// `post_quant_conv.*` when the config has one. Tensors outside those prefixes (the encoder,
/// `quant_conv`) are ignored.
/// @param dtype  convert the parameters to this floating dtype; unset: keep each one's own
/// @return       one report per part loaded (decoder first)
/// @throws checkpoint_error naming the file and tensor on anything missing or mis-shaped
std::vector<load_report> load_vae_decoder(vae_decoder& vae, const checkpoint& ckpt,
                                          std::optional<at::ScalarType> dtype = std::nullopt);

}  // namespace star::sd35
