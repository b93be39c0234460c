#include "sd35/mmdit/transformer.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "star/core/error.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {

namespace {

void require_defined(const at::Tensor& t, const char* arg) {
  if (!t.defined()) throw value_error(std::string(arg) + ": the tensor is undefined");
}

/// diffusers' 1-D sin-cos embedding of positions `pos` [M] (float64): [M, dim] as
/// `[sin(pos w_k) ..., cos(pos w_k) ...]`, `w_k = 10000^(-k / (dim / 2))`.
at::Tensor sincos_1d(const at::Tensor& pos, std::int64_t dim) {
  const auto exponents = at::arange(dim / 2, pos.options()) / (dim / 2.0);  // [dim/2]
  const auto angles = at::outer(pos, at::pow(10000.0, -exponents));         // [M, dim/2]
  return at::cat({at::sin(angles), at::cos(angles)}, 1);                    // [M, dim]
}

}  // namespace

at::Tensor timestep_sinusoid(const at::Tensor& timestep, std::int64_t dim) {
  const std::int64_t half = dim / 2;
  const auto exponents =
      at::arange(half, timestep.options().dtype(at::kFloat)) *
      static_cast<float>(-std::log(10000.0) / static_cast<double>(half));  // [dim/2]
  const auto angles =
      timestep.to(at::kFloat).unsqueeze(1) * at::exp(exponents).unsqueeze(0);  // [B, dim/2]
  return at::cat({at::cos(angles), at::sin(angles)}, 1);                       // [B, dim]
}

at::Tensor sincos_position_table(std::int64_t embed_dim, std::int64_t grid_size,
                                 std::int64_t base_size) {
  const auto coordinates = (at::arange(grid_size, at::kFloat) /
                            (static_cast<float>(grid_size) / static_cast<float>(base_size)))
                               .to(at::kDouble);                           // [M]
  const auto half = sincos_1d(coordinates, embed_dim / 2).to(at::kFloat);  // [M, E/2]
  const std::int64_t width = embed_dim / 2;
  const auto by_column = half.unsqueeze(0).expand({grid_size, grid_size, width});  // [M, M, E/2]
  const auto by_row = half.unsqueeze(1).expand({grid_size, grid_size, width});     // [M, M, E/2]
  return at::cat({by_column, by_row}, 2).reshape({grid_size * grid_size, embed_dim});  // [M*M, E]
}

patch_embed::patch_embed(const transformer_config& config)
    : proj(register_module(
          "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(config.in_channels, config.inner_dim(),
                                                             config.patch_size)
                                        .stride(config.patch_size)))),
      pos_embed(register_buffer("pos_embed",
                                sincos_position_table(config.inner_dim(), config.pos_embed_max_size,
                                                      config.sample_size / config.patch_size)
                                    .unsqueeze(0))),
      max_size_(config.pos_embed_max_size) {}

at::Tensor patch_embed::forward(const at::Tensor& latent) {
  const auto tokens = proj->forward(latent);  // [B, E, h, w]
  const std::int64_t grid_h = tokens.size(2), grid_w = tokens.size(3);
  const std::int64_t top = (max_size_ - grid_h) / 2, left = (max_size_ - grid_w) / 2;
  const auto table = pos_embed.view({1, max_size_, max_size_, pos_embed.size(2)})
                         .slice(1, top, top + grid_h)
                         .slice(2, left, left + grid_w)
                         .reshape({1, grid_h * grid_w, pos_embed.size(2)});   // [1, N, E]
  return tokens.flatten(2).transpose(1, 2) + table.to(tokens.scalar_type());  // [B, N, E]
}

mlp_embedding::mlp_embedding(std::int64_t in_features, std::int64_t out_features)
    : linear_1(register_module("linear_1", torch::nn::Linear(in_features, out_features))),
      linear_2(register_module("linear_2", torch::nn::Linear(out_features, out_features))) {}

at::Tensor mlp_embedding::forward(const at::Tensor& x) {
  return linear_2->forward(at::silu(linear_1->forward(x)));  // [B, out]
}

time_text_embedding::time_text_embedding(const transformer_config& config)
    : timestep_embedder(register_module("timestep_embedder",
                                        std::make_shared<mlp_embedding>(256, config.inner_dim()))),
      text_embedder(register_module(
          "text_embedder",
          std::make_shared<mlp_embedding>(config.pooled_projection_dim, config.inner_dim()))) {}

at::Tensor time_text_embedding::forward(const at::Tensor& timestep, const at::Tensor& pooled) {
  const auto sinusoid = timestep_sinusoid(timestep).to(pooled.scalar_type());    // [B, 256]
  return timestep_embedder->forward(sinusoid) + text_embedder->forward(pooled);  // [B, E]
}

sd3_transformer::sd3_transformer(transformer_config config) : config_(std::move(config)) {
  config_.validate();
  const std::int64_t dim = config_.inner_dim();
  pos_embed = register_module("pos_embed", std::make_shared<patch_embed>(config_));
  time_text_embed =
      register_module("time_text_embed", std::make_shared<time_text_embedding>(config_));
  context_embedder =
      register_module("context_embedder", torch::nn::Linear(config_.joint_attention_dim, dim));
  const auto blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config_.num_layers; ++i) {
    transformer_blocks.push_back(std::make_shared<joint_transformer_block>(config_, i));
    blocks->push_back(transformer_blocks.back());
  }
  norm_out = register_module("norm_out", std::make_shared<ada_layer_norm_continuous>(dim));
  proj_out = register_module(
      "proj_out",
      torch::nn::Linear(dim, config_.patch_size * config_.patch_size * config_.out_channels));
}

token_layout sd3_transformer::joint_layout(std::int64_t grid_h, std::int64_t grid_w,
                                           std::int64_t text_tokens,
                                           const std::vector<text_segment>& segments) {
  token_layout layout{grid_h, grid_w, segments, true};
  if (segments.empty()) layout.text_segments = {{"text", text_tokens}};
  layout.validate();
  if (layout.text_tokens() != text_tokens)
    throw option_error("text_segments: the segment lengths sum to " +
                       std::to_string(layout.text_tokens()) + ", expected L = " +
                       std::to_string(text_tokens) + " (encoder_hidden_states' sequence length)");
  return layout;
}

void sd3_transformer::check_inputs(const at::Tensor& hidden_states,
                                   const at::Tensor& encoder_hidden_states,
                                   const at::Tensor& pooled_projections, const at::Tensor& timestep,
                                   const forward_options& options) const {
  require_defined(hidden_states, "hidden_states");
  require_defined(encoder_hidden_states, "encoder_hidden_states");
  require_defined(pooled_projections, "pooled_projections");
  require_defined(timestep, "timestep");
  const shape latent = hidden_states.sizes().vec();
  require_rank("hidden_states", latent, 4, "[B, C, H, W]");
  const std::int64_t batch = latent[0], patch = config_.patch_size;
  const std::int64_t max_side = config_.pos_embed_max_size * patch;
  if (latent[1] != config_.in_channels || latent[2] % patch != 0 || latent[3] % patch != 0 ||
      latent[2] > max_side || latent[3] > max_side)
    throw shape_error("hidden_states: expected [B, C = " + std::to_string(config_.in_channels) +
                      ", H, W] with H and W multiples of patch_size " + std::to_string(patch) +
                      " and at most pos_embed_max_size * patch_size = " + std::to_string(max_side) +
                      ", got " + to_string(latent));
  const shape text = encoder_hidden_states.sizes().vec();
  require_rank("encoder_hidden_states", text, 3, "[B, L, Dj]");
  require_shape("encoder_hidden_states", text, {batch, text[1], config_.joint_attention_dim},
                "[B, L, Dj]");
  require_shape("pooled_projections", pooled_projections.sizes().vec(),
                {batch, config_.pooled_projection_dim}, "[B, Dp]");
  require_shape("timestep", timestep.sizes().vec(), {batch}, "[B]");
  for (const std::int64_t layer : options.skip_layers)
    if (layer < 0 || layer >= config_.num_layers)
      throw option_error("skip_layers: entry " + std::to_string(layer) +
                         " is outside [0, num_layers = " + std::to_string(config_.num_layers) +
                         ")");
}

at::Tensor sd3_transformer::forward(const at::Tensor& hidden_states,
                                    const at::Tensor& encoder_hidden_states,
                                    const at::Tensor& pooled_projections,
                                    const at::Tensor& timestep, const forward_options& options) {
  check_inputs(hidden_states, encoder_hidden_states, pooled_projections, timestep, options);
  const auto target = pos_embed->proj->weight.options();  // the module's device and dtype
  const std::int64_t grid_h = hidden_states.size(2) / config_.patch_size;
  const std::int64_t grid_w = hidden_states.size(3) / config_.patch_size;
  const attention_report report{
      options.observer,
      joint_layout(grid_h, grid_w, encoder_hidden_states.size(1), options.text_segments)};
  auto x = pos_embed->forward(hidden_states.to(target));  // [B, N, E]
  const auto temb = time_text_embed->forward(timestep.to(target.device()),
                                             pooled_projections.to(target));  // [B, E]
  auto c = context_embedder->forward(encoder_hidden_states.to(target));       // [B, L, E]
  for (std::size_t i = 0; i < transformer_blocks.size(); ++i) {
    if (std::find(options.skip_layers.begin(), options.skip_layers.end(),
                  static_cast<std::int64_t>(i)) != options.skip_layers.end())
      continue;
    auto [image, text] =
        transformer_blocks[i]->forward(x, c, temb, report);  // [B, N, E], [B, L, E]
    x = std::move(image);
    if (text.defined()) c = std::move(text);  // the last block returns no text stream
  }
  const auto tokens = proj_out->forward(norm_out->forward(x, temb));  // [B, N, P*P*C_out]
  return unpatchify(tokens, grid_h, grid_w);                          // [B, C_out, H, W]
}

at::Tensor sd3_transformer::unpatchify(const at::Tensor& tokens, std::int64_t grid_h,
                                       std::int64_t grid_w) const {
  const std::int64_t patch = config_.patch_size, channels = config_.out_channels;
  require_defined(tokens, "tokens");
  const shape got = tokens.sizes().vec();
  require_rank("tokens", got, 3, "[B, N, P*P*C_out]");
  require_shape("tokens", got, {got[0], grid_h * grid_w, patch * patch * channels},
                "[B, N = h * w, P*P*C_out]");
  return tokens.reshape({tokens.size(0), grid_h, grid_w, patch, patch, channels})
      .permute({0, 5, 1, 3, 2, 4})
      .reshape({tokens.size(0), channels, grid_h * patch, grid_w * patch});  // [B, C_out, H, W]
}

}  // namespace star::sd35
