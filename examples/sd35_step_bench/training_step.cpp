#include "training_step.hpp"

#include "star/torch/attention_lse.hpp"

namespace star::step_bench {
namespace {

/// The test fixture's MMDiT-X shape (tests/sd35/mmdit: 3 blocks, 2 heads of 16, dual attention
/// in blocks 0-1, RMS q/k norm) with a positional table for up to 1024 px.
sd35::transformer_config tiny_config() {
  sd35::transformer_config config;
  config.sample_size = 32;
  config.num_layers = 3;
  config.attention_head_dim = 16;
  config.num_attention_heads = 2;
  config.joint_attention_dim = 32;
  config.caption_projection_dim = 32;
  config.pooled_projection_dim = 24;
  config.pos_embed_max_size = 64;
  config.dual_attention_layers = {0, 1};
  config.qk_norm = sd35::qk_norm_kind::rms_norm;
  config.validate();
  return config;
}

}  // namespace

sd35::transformer_config config_for(const arguments& args) {
  const auto config = args.config == "tiny" ? tiny_config() : sd35::sd35_medium();
  const std::int64_t cell = vae_factor * config.patch_size;  // pixels per token side
  if (args.resolution % cell != 0)
    throw usage_error("--resolution: expected a multiple of " + std::to_string(cell) +
                      " pixels, got " + std::to_string(args.resolution));
  if (args.resolution / cell > config.pos_embed_max_size)
    throw usage_error("--resolution: at most " + std::to_string(cell * config.pos_embed_max_size) +
                      " pixels for --config " + args.config + ", got " +
                      std::to_string(args.resolution));
  return config;
}

bench_model make_model(const sd35::transformer_config& config, const arguments& args) {
  at::manual_seed(seed);
  auto transformer = std::make_shared<sd35::sd3_transformer>(config);
  transformer->to(args.device, args.dtype);
  sd35::lora_options options;  // r 32, alpha 64, Gaussian A, B = 0, the 8 attn targets
  options.seed = seed;
  auto lora = std::make_shared<sd35::lora_adapter>(*transformer, options);  // freezes W0
  return {transformer, lora};
}

step_inputs make_inputs(const arguments& args, const sd35::transformer_config& config) {
  const auto side = args.resolution / vae_factor;
  const auto to_model = [&](const at::Tensor& t) { return t.to(args.device, args.dtype); };
  step_inputs in;
  in.latent = to_model(at::randn({args.batch, config.in_channels, side, side}));  // [B, C, H, W]
  in.text = to_model(at::randn({args.batch, clip_tokens + t5_tokens,
                                config.joint_attention_dim}));                     // [B, L, Dj]
  in.pooled = to_model(at::randn({args.batch, config.pooled_projection_dim}));    // [B, Dp]
  in.timestep = at::full({args.batch}, 500.0, at::TensorOptions().device(args.device));  // [B]
  return in;
}

text_selection trainer_selection() {
  text_selection selection;
  selection.indices = {1, 2, 3, 4, clip_tokens, clip_tokens + 1, clip_tokens + 2, clip_tokens + 3};
  selection.weights.assign(selection.indices.size(), 1.0 / 8.0);
  return selection;
}

at::Tensor train_step(const bench_model& model, const step_inputs& in,
                      const sd35::forward_options& options) {
  model.lora->zero_grad(/*set_to_none=*/true);
  const auto adapted = model.lora->enabled();  // W0 + s B A in the Linears until the return
  const auto velocity = model.transformer->forward(in.latent, in.text, in.pooled, in.timestep,
                                                   options);  // [B, C, H, W]
  const auto loss = velocity.to(at::kFloat).square().mean();  // []
  loss.backward();
  return loss.detach();  // []
}

std::string lse_source(const arguments& args, const sd35::transformer_config& config,
                       std::int64_t tokens) {
  const auto probe = at::randn({1, config.num_attention_heads, tokens, config.attention_head_dim})
                         .to(args.device, args.dtype)
                         .requires_grad_(true);  // [1, H, T, D]
  return libtorch::source_name(libtorch::attention_with_lse(probe, probe, probe).source);
}

}  // namespace star::step_bench
