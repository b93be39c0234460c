#include "sd35/vae/decoder.hpp"

#include <ATen/ATen.h>

#include <string>
#include <string_view>

#include "sd35/common/attention.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {

namespace {

constexpr double group_norm_eps = 1e-6;

torch::nn::GroupNorm make_group_norm(std::int64_t groups, std::int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(group_norm_eps));
}

torch::nn::Conv2d make_conv(std::int64_t in_channels, std::int64_t out_channels,
                            std::int64_t kernel) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, kernel).padding(kernel / 2));
}

/// @brief Registers `modules` under `name` as a list (`name.0`, `name.1`, ...).
template <class Holder>
void register_list(torch::nn::Module& owner, const std::string& name,
                   const std::vector<Holder>& modules) {
  torch::nn::ModuleList list;
  for (const auto& module : modules) list->push_back(module);
  owner.register_module(name, list);
}

/// @brief Throws `star::shape_error` naming `arg` unless `t` is `[B, channels, h, w]`.
void require_latent(std::string_view arg, const at::Tensor& t, std::int64_t channels) {
  const shape got = t.sizes().vec();
  require_rank(arg, got, 4, "[B, C, h, w]");
  if (got[1] != channels)
    throw shape_error(std::string(arg) + ": expected [B, C = " + std::to_string(channels) +
                      " (latent_channels), h, w], got " + to_string(got));
}

}  // namespace

vae_resnet_block_impl::vae_resnet_block_impl(std::int64_t in_channels, std::int64_t out_channels,
                                             std::int64_t groups)
    : norm1(register_module("norm1", make_group_norm(groups, in_channels))),
      conv1(register_module("conv1", make_conv(in_channels, out_channels, 3))),
      norm2(register_module("norm2", make_group_norm(groups, out_channels))),
      conv2(register_module("conv2", make_conv(out_channels, out_channels, 3))) {
  if (in_channels != out_channels)
    conv_shortcut = register_module("conv_shortcut", make_conv(in_channels, out_channels, 1));
}

at::Tensor vae_resnet_block_impl::forward(const at::Tensor& x) {
  auto h = conv1(at::silu(norm1(x)));                                // [B, C_out, h, w]
  h = conv2(at::silu(norm2(h)));                                     // [B, C_out, h, w]
  return (conv_shortcut ? conv_shortcut(x) : x) + h;                 // [B, C_out, h, w]
}

vae_attention_impl::vae_attention_impl(std::int64_t channels, std::int64_t groups)
    : group_norm(register_module("group_norm", make_group_norm(groups, channels))),
      to_q(register_module("to_q", torch::nn::Linear(channels, channels))),
      to_k(register_module("to_k", torch::nn::Linear(channels, channels))),
      to_v(register_module("to_v", torch::nn::Linear(channels, channels))),
      out_proj(torch::nn::Linear(channels, channels)) {
  register_list(*this, "to_out", std::vector<torch::nn::Linear>{out_proj});
}

at::Tensor vae_attention_impl::forward(const at::Tensor& x) {
  const auto batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const auto tokens =
      group_norm(x).reshape({batch, channels, height * width}).transpose(1, 2);  // [B, S, C]
  const auto one_head = [](const at::Tensor& t) { return t.unsqueeze(1); };  // [B, 1, S, C]
  const auto attended = dot_product_attention(one_head(to_q(tokens)), one_head(to_k(tokens)),
                                              one_head(to_v(tokens)))
                            .squeeze(1);  // [B, S, C]
  const auto out = out_proj(attended).transpose(1, 2).reshape(x.sizes());  // [B, C, h, w]
  return x + out;                                                          // [B, C, h, w]
}

vae_mid_block_impl::vae_mid_block_impl(std::int64_t channels, std::int64_t groups,
                                       bool add_attention)
    : resnets{vae_resnet_block(channels, channels, groups),
              vae_resnet_block(channels, channels, groups)} {
  register_list(*this, "resnets", resnets);
  if (add_attention) {
    attention = vae_attention(channels, groups);
    register_list(*this, "attentions", std::vector<vae_attention>{attention});
  }
}

at::Tensor vae_mid_block_impl::forward(const at::Tensor& x) {
  auto h = resnets[0](x);           // [B, C, h, w]
  if (attention) h = attention(h);  // [B, C, h, w]
  return resnets[1](h);             // [B, C, h, w]
}

vae_upsample_impl::vae_upsample_impl(std::int64_t channels)
    : conv(register_module("conv", make_conv(channels, channels, 3))) {}

at::Tensor vae_upsample_impl::forward(const at::Tensor& x) {
  // Like diffusers, bfloat16 goes through float32 (older nearest-upsample kernels lack it);
  // copying values is exact either way.
  const auto wide = x.scalar_type() == at::kBFloat16 ? x.to(at::kFloat) : x;  // [B, C, h, w]
  const auto doubled = at::upsample_nearest2d(wide, {2 * x.size(2), 2 * x.size(3)})
                           .to(x.scalar_type());  // [B, C, 2h, 2w]
  return conv(doubled);  // [B, C, 2h, 2w]
}

vae_up_block_impl::vae_up_block_impl(std::int64_t in_channels, std::int64_t out_channels,
                                     std::int64_t layers, std::int64_t groups,
                                     bool add_upsample) {
  for (std::int64_t j = 0; j < layers; ++j)
    resnets.push_back(vae_resnet_block(j == 0 ? in_channels : out_channels, out_channels, groups));
  register_list(*this, "resnets", resnets);
  if (add_upsample) {
    upsampler = vae_upsample(out_channels);
    register_list(*this, "upsamplers", std::vector<vae_upsample>{upsampler});
  }
}

at::Tensor vae_up_block_impl::forward(const at::Tensor& x) {
  auto h = x;                                    // [B, C_in, h, w]
  for (auto& resnet : resnets) h = resnet(h);    // [B, C_out, h, w]
  return upsampler ? upsampler(h) : h;           // [B, C_out, 2h, 2w] or [B, C_out, h, w]
}

vae_decoder_stack_impl::vae_decoder_stack_impl(const vae_config& config) {
  const auto& widths = config.block_out_channels;
  const auto groups = config.norm_num_groups;
  conv_in = register_module("conv_in", make_conv(config.latent_channels, widths.back(), 3));
  mid_block = register_module(
      "mid_block", vae_mid_block(widths.back(), groups, config.mid_block_add_attention));
  std::int64_t in_channels = widths.back();
  for (std::size_t i = 0; i < widths.size(); ++i) {
    const std::int64_t out_channels = widths[widths.size() - 1 - i];
    up_blocks.push_back(vae_up_block(in_channels, out_channels, config.layers_per_block + 1,
                                     groups, i + 1 < widths.size()));
    in_channels = out_channels;
  }
  register_list(*this, "up_blocks", up_blocks);
  conv_norm_out = register_module("conv_norm_out", make_group_norm(groups, widths.front()));
  conv_out = register_module("conv_out", make_conv(widths.front(), config.out_channels, 3));
}

at::Tensor vae_decoder_stack_impl::forward(const at::Tensor& z) {
  auto h = mid_block(conv_in(z));              // [B, C_widest, h, w]
  for (auto& block : up_blocks) h = block(h);  // [B, C_0, H, W]
  return conv_out(at::silu(conv_norm_out(h)));  // [B, out_channels, H, W]
}

vae_decoder_impl::vae_decoder_impl(const vae_config& config) : config_(config) {
  config_.validate();
  decoder = register_module("decoder", vae_decoder_stack(config_));
  if (config_.use_post_quant_conv)
    post_quant_conv = register_module(
        "post_quant_conv", make_conv(config_.latent_channels, config_.latent_channels, 1));
}

at::Tensor vae_decoder_impl::forward(const at::Tensor& z) {
  require_latent("z", z, config_.latent_channels);
  return decoder(post_quant_conv ? post_quant_conv(z) : z);  // [B, out_channels, H, W]
}

at::Tensor vae_decoder_impl::decode(const at::Tensor& latent) {
  require_latent("latent", latent, config_.latent_channels);
  const auto& reference = decoder->conv_in->weight;
  const auto z = latent.to(reference.device(), reference.scalar_type()) / config_.scaling_factor +
                 config_.shift_factor;  // [B, C, h, w]
  return forward(z);                    // [B, out_channels, H, W]
}

at::Tensor to_image_0_1(const at::Tensor& decoded) {
  return (decoded / 2.0 + 0.5).clamp(0.0, 1.0);  // [B, 3, H, W]
}

std::vector<load_report> load_vae_decoder(vae_decoder& vae, const checkpoint& ckpt,
                                          std::optional<at::ScalarType> dtype) {
  std::vector<load_report> reports;
  reports.push_back(load_into(*vae->decoder, ckpt, {.prefix = "decoder.", .dtype = dtype}));
  if (vae->post_quant_conv)
    reports.push_back(
        load_into(*vae->post_quant_conv, ckpt, {.prefix = "post_quant_conv.", .dtype = dtype}));
  return reports;
}

}  // namespace star::sd35
