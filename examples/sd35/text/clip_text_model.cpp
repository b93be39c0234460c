#include "sd35/text/clip_text_model.hpp"

#include <cmath>

#include "sd35/common/attention.hpp"
#include "sd35/config/config_file.hpp"
#include "sd35/config/config_keys.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {
namespace text_detail {

/// @brief One pre-LN CLIP encoder layer: `x += attn(LN1 x)` (causal), `x += MLP(LN2 x)`.
struct clip_layer : torch::nn::Module {
  clip_layer(const clip_text_config& config, const at::TensorOptions& options)
      : heads(config.num_attention_heads), activation(config.hidden_act) {
    const auto c = config.hidden_size;
    auto attention = add_container(*this, "self_attn");
    q_proj = add_leaf<linear>(*attention, "q_proj", c, c, true, options);
    k_proj = add_leaf<linear>(*attention, "k_proj", c, c, true, options);
    v_proj = add_leaf<linear>(*attention, "v_proj", c, c, true, options);
    out_proj = add_leaf<linear>(*attention, "out_proj", c, c, true, options);
    layer_norm1 = add_leaf<layer_norm>(*this, "layer_norm1", c, config.layer_norm_eps, options);
    auto mlp = add_container(*this, "mlp");
    fc1 = add_leaf<linear>(*mlp, "fc1", c, config.intermediate_size, true, options);
    fc2 = add_leaf<linear>(*mlp, "fc2", config.intermediate_size, c, true, options);
    layer_norm2 = add_leaf<layer_norm>(*this, "layer_norm2", c, config.layer_norm_eps, options);
  }

  /// @brief `x` [B, S, C]; causal self-attention.
  at::Tensor operator()(const at::Tensor& x) const {
    const auto batch = x.size(0);
    const auto length = x.size(1);
    const auto width = x.size(2);
    const auto split = [&](const at::Tensor& t) {
      return t.view({batch, length, heads, width / heads}).transpose(1, 2);  // [B, H, S, D]
    };
    const auto h = (*layer_norm1)(x);  // [B, S, C]
    const auto mixed = dot_product_attention(split((*q_proj)(h)), split((*k_proj)(h)),
                                             split((*v_proj)(h)), {.causal = true})  // [B, H, S, D]
                           .transpose(1, 2)
                           .reshape({batch, length, width});  // [B, S, C]
    const auto attended = x + (*out_proj)(mixed);                               // [B, S, C]
    const auto inner = (*fc1)((*layer_norm2)(attended));                        // [B, S, 4C]
    const auto activated = activation == clip_activation::quick_gelu
                               ? inner * at::sigmoid(1.702 * inner)              // [B, S, 4C]
                               : at::gelu(inner);                               // [B, S, 4C]
    return attended + (*fc2)(activated);                                        // [B, S, C]
  }

  std::int64_t heads;
  clip_activation activation;
  std::shared_ptr<linear> q_proj, k_proj, v_proj, out_proj, fc1, fc2;
  std::shared_ptr<layer_norm> layer_norm1, layer_norm2;
};

}  // namespace text_detail

namespace {

clip_activation parse_activation(const config_detail::config_keys& keys) {
  const auto name = keys.string("hidden_act", "quick_gelu");
  if (name == "quick_gelu") return clip_activation::quick_gelu;
  if (name == "gelu") return clip_activation::gelu;
  keys.fail("hidden_act", "must be \"quick_gelu\" or \"gelu\", got \"" + name + "\"");
}

}  // namespace

void clip_text_config::validate() const {
  config_detail::require_positive(vocab_size, "clip_text_config: vocab_size");
  config_detail::require_positive(hidden_size, "clip_text_config: hidden_size");
  config_detail::require_positive(intermediate_size, "clip_text_config: intermediate_size");
  config_detail::require_positive(num_hidden_layers, "clip_text_config: num_hidden_layers");
  config_detail::require_positive(num_attention_heads, "clip_text_config: num_attention_heads");
  config_detail::require_positive(max_position_embeddings,
                                  "clip_text_config: max_position_embeddings");
  config_detail::require_positive(projection_dim, "clip_text_config: projection_dim");
  if (hidden_size % num_attention_heads != 0)
    throw star::option_error("clip_text_config: hidden_size (" + std::to_string(hidden_size) +
                             ") must be divisible by num_attention_heads (" +
                             std::to_string(num_attention_heads) + ")");
  if (!(layer_norm_eps > 0.0) || !std::isfinite(layer_norm_eps))
    throw star::option_error("clip_text_config: layer_norm_eps must be finite and > 0, got " +
                             std::to_string(layer_norm_eps));
  if (eos_token_id < 0 || eos_token_id >= vocab_size)
    throw star::option_error("clip_text_config: eos_token_id must lie in [0, vocab_size = " +
                             std::to_string(vocab_size) + "), got " +
                             std::to_string(eos_token_id));
}

clip_text_config clip_text_config::clip_l() { return {}; }

clip_text_config clip_text_config::clip_g() {
  clip_text_config config;
  config.hidden_size = 1280;
  config.intermediate_size = 5120;
  config.num_hidden_layers = 32;
  config.num_attention_heads = 20;
  config.projection_dim = 1280;
  config.hidden_act = clip_activation::gelu;
  return config;
}

clip_text_config clip_text_config::from_json(const std::string& json_text,
                                             const std::string& origin) {
  auto keys = config_detail::config_keys::parse(json_text, origin);
  if (!keys.has("hidden_size") && keys.has("text_config")) keys = keys.nested("text_config");
  const clip_text_config defaults;
  clip_text_config config;
  config.vocab_size = keys.integer("vocab_size", defaults.vocab_size);
  config.hidden_size = keys.integer("hidden_size");
  config.intermediate_size = keys.integer("intermediate_size");
  config.num_hidden_layers = keys.integer("num_hidden_layers");
  config.num_attention_heads = keys.integer("num_attention_heads");
  config.projection_dim = keys.integer("projection_dim");
  config.max_position_embeddings =
      keys.integer("max_position_embeddings", defaults.max_position_embeddings);
  config.hidden_act = parse_activation(keys);
  config.layer_norm_eps = keys.number("layer_norm_eps", defaults.layer_norm_eps);
  config.eos_token_id = keys.integer("eos_token_id", defaults.eos_token_id);
  keys.validate(config);
  return config;
}

clip_text_config clip_text_config::from_file(const std::filesystem::path& path) {
  return config_detail::parse_file(path, "config.json", "clip text config",
                                   [](const std::string& text) {
                                     return from_json(text, "clip text config");
                                   });
}

clip_text_model_impl::clip_text_model_impl(const clip_text_config& config,
                                           const at::TensorOptions& options)
    : config_(config) {
  config_.validate();
  using namespace text_detail;
  const auto c = config_.hidden_size;
  auto text_model = add_container(*this, "text_model");
  auto embeddings = add_container(*text_model, "embeddings");
  token_embedding_ = add_leaf<embedding>(*embeddings, "token_embedding", config_.vocab_size, c,
                                         options);
  position_embedding_ = add_leaf<embedding>(*embeddings, "position_embedding",
                                            config_.max_position_embeddings, c, options);
  auto encoder = add_container(*text_model, "encoder");
  auto layers = add_container(*encoder, "layers");
  for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i)
    layers_.push_back(add_leaf<clip_layer>(*layers, std::to_string(i), config_, options));
  final_layer_norm_ = add_leaf<layer_norm>(*text_model, "final_layer_norm", c,
                                           config_.layer_norm_eps, options);
  text_projection_ = add_leaf<linear>(*this, "text_projection", c, config_.projection_dim,
                                      false, options);
}

clip_text_output clip_text_model_impl::forward(const at::Tensor& input_ids,
                                               const text_encoder_options& options) const {
  text_detail::require_defined(input_ids, "input_ids", "[B, S] token ids");
  star::require_rank("input_ids", input_ids.sizes().vec(), 2, "[B, S] token ids");
  const auto batch = input_ids.size(0);
  const auto length = input_ids.size(1);
  if (batch < 1 || length < 1 || length > config_.max_position_embeddings)
    throw star::shape_error("input_ids: expected [B, S] with B >= 1 and 1 <= S <= " +
                            std::to_string(config_.max_position_embeddings) + ", got " +
                            star::to_string(input_ids.sizes().vec()));
  text_detail::require_token_ids(input_ids, config_.vocab_size, "input_ids");
  const auto layers = config_.num_hidden_layers;
  text_detail::hidden_state_picker picker(options.hidden_states, layers);
  const auto ids = input_ids.to(token_embedding_->weight().device(), at::kLong);  // [B, S]

  clip_text_output out;
  const auto keep = [&](std::int64_t index, const at::Tensor& hidden) {
    picker.offer(index, hidden);
    if (index == layers - 1) out.penultimate_hidden_state = hidden;  // [B, S, C]
  };
  const auto positions = at::arange(length, ids.options());               // [S]
  auto x = (*token_embedding_)(ids) + (*position_embedding_)(positions);  // [B, S, C]
  keep(0, x);
  for (std::int64_t i = 0; i < layers; ++i) {
    x = (*layers_[i])(x);  // [B, S, C]
    keep(i + 1, x);
  }
  out.hidden_states = picker.take();
  out.last_hidden_state = (*final_layer_norm_)(x);                           // [B, S, C]
  const auto eos_positions = config_.eos_token_id == 2
                                 ? ids.argmax(-1)                                       // [B]
                                 : ids.eq(config_.eos_token_id).to(at::kInt).argmax(-1);  // [B]
  const auto rows = at::arange(batch, ids.options());                        // [B]
  out.pooled_output = out.last_hidden_state.index({rows, eos_positions});    // [B, C]
  out.text_embeds = (*text_projection_)(out.pooled_output);                  // [B, P]
  return out;
}

}  // namespace star::sd35
