#include "sd35/text/t5_encoder.hpp"

#include <ATen/Dispatch.h>

#include <cmath>
#include <limits>

#include "sd35/common/attention.hpp"
#include "sd35/common/rms_norm.hpp"
#include "sd35/config/config_file.hpp"
#include "sd35/config/config_keys.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {
namespace text_detail {

/// @brief T5LayerNorm: `rms_normalize` (no mean, no bias), whose float32 variance and cast to a
/// half-precision weight's dtype are transformers' own.
class t5_layer_norm : public torch::nn::Module {
 public:
  t5_layer_norm(std::int64_t width, double eps, const at::TensorOptions& options)
      : eps_(eps), weight_(add_parameter(*this, "weight", {width}, options, initial_value::ones)) {}
  at::Tensor operator()(const at::Tensor& x) const {
    return rms_normalize(x, weight_, eps_);  // [..., C]
  }

 private:
  double eps_;
  at::Tensor weight_;
};

namespace {

/// @brief transformers' float16 guard: when `x` holds an infinity, everything is clamped to
/// +-(max - 1000), else to +-max (which changes nothing). The bound stays on `x`'s device, so
/// the guard never waits for the device.
at::Tensor clamp_float16_overflow(const at::Tensor& x) {
  if (x.scalar_type() != at::kHalf) return x;
  const double largest = static_cast<double>(std::numeric_limits<c10::Half>::max());
  const auto bound =
      at::where(at::isinf(x).any(), largest - 1000.0, largest).to(at::kHalf);  // []
  return at::clamp(x, -bound, bound);                                             // [B, L, C]
}

double lowest_value(at::ScalarType dtype) {
  double lowest = 0.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "lowest_value", [&] {
    lowest = static_cast<double>(std::numeric_limits<scalar_t>::lowest());
  });
  return lowest;
}

}  // namespace

/// @brief One T5 encoder block: `x += o(attn(RMS x) + bias)`, `x += wo(gelu_tanh(wi_0 h) *
/// wi_1 h)` with `h = RMS x`.
struct t5_block : torch::nn::Module {
  t5_block(const t5_encoder_config& config, const at::TensorOptions& options)
      : heads(config.num_heads), head_dim(config.d_kv) {
    const auto c = config.d_model;
    const auto inner = config.inner_dim();
    auto layer = add_container(*this, "layer");
    auto attention_layer = add_container(*layer, "0");
    attention = add_container(*attention_layer, "SelfAttention");
    q = add_leaf<linear>(*attention, "q", c, inner, false, options);
    k = add_leaf<linear>(*attention, "k", c, inner, false, options);
    v = add_leaf<linear>(*attention, "v", c, inner, false, options);
    o = add_leaf<linear>(*attention, "o", inner, c, false, options);
    attention_norm = add_leaf<t5_layer_norm>(*attention_layer, "layer_norm", c,
                                             config.layer_norm_epsilon, options);
    auto ff_layer = add_container(*layer, "1");
    auto ff = add_container(*ff_layer, "DenseReluDense");
    wi_0 = add_leaf<linear>(*ff, "wi_0", c, config.d_ff, false, options);
    wi_1 = add_leaf<linear>(*ff, "wi_1", c, config.d_ff, false, options);
    wo = add_leaf<linear>(*ff, "wo", config.d_ff, c, false, options);
    ff_norm = add_leaf<t5_layer_norm>(*ff_layer, "layer_norm", c, config.layer_norm_epsilon,
                                      options);
  }

  /// @brief `x` [B, L, C], `bias` [B or 1, H, L, L] (position bias plus padding mask).
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& bias) const {
    const auto batch = x.size(0);
    const auto length = x.size(1);
    const auto split = [&](const at::Tensor& t) {
      return t.view({batch, length, heads, head_dim}).transpose(1, 2);  // [B, H, L, D]
    };
    const auto h = (*attention_norm)(x);  // [B, L, C]
    // T5 does not scale the logits; `bias` holds the position bias and the padding mask.
    const auto mixed = dot_product_attention(split((*q)(h)), split((*k)(h)), split((*v)(h)),
                                             {.additive_mask = bias, .scale = 1.0})  // [B, H, L, D]
                           .transpose(1, 2)
                           .reshape({batch, length, heads * head_dim});  // [B, L, H*D]
    const auto attended = clamp_float16_overflow(x + (*o)(mixed));           // [B, L, C]
    const auto g = (*ff_norm)(attended);                                     // [B, L, C]
    const auto gated = at::gelu((*wi_0)(g), "tanh") * (*wi_1)(g);            // [B, L, F]
    return clamp_float16_overflow(attended + (*wo)(gated));                  // [B, L, C]
  }

  std::int64_t heads;
  std::int64_t head_dim;
  std::shared_ptr<torch::nn::Module> attention;
  std::shared_ptr<linear> q, k, v, o, wi_0, wi_1, wo;
  std::shared_ptr<t5_layer_norm> attention_norm, ff_norm;
};

}  // namespace text_detail

at::Tensor t5_relative_position_bucket(const at::Tensor& relative_position,
                                       std::int64_t num_buckets, std::int64_t max_distance) {
  const std::int64_t per_sign = num_buckets / 2;
  const std::int64_t max_exact = per_sign / 2;
  if (per_sign < 2 || max_distance <= max_exact)
    throw star::option_error("t5_relative_position_bucket: need num_buckets >= 4 and "
                             "max_distance > num_buckets / 4, got num_buckets " +
                             std::to_string(num_buckets) + ", max_distance " +
                             std::to_string(max_distance));
  const auto offsets = relative_position.to(at::kLong);                   // [...]
  const auto sign_bucket = offsets.gt(0).to(at::kLong) * per_sign;        // [...]
  const auto distance = offsets.abs();                                    // [...]
  // transformers' float32 arithmetic, kept operation for operation so the buckets agree.
  const auto log_ratio = at::log(distance.clamp_min(max_exact).to(at::kFloat) / max_exact) /
                         std::log(static_cast<double>(max_distance) / max_exact);  // [...]
  const auto large = (max_exact + (log_ratio * (per_sign - max_exact)).to(at::kLong))
                         .clamp_max(per_sign - 1);                         // [...]
  return sign_bucket + at::where(distance.lt(max_exact), distance, large);  // [...]
}

void t5_encoder_config::validate() const {
  config_detail::require_positive(vocab_size, "t5_encoder_config: vocab_size");
  config_detail::require_positive(d_model, "t5_encoder_config: d_model");
  config_detail::require_positive(d_kv, "t5_encoder_config: d_kv");
  config_detail::require_positive(d_ff, "t5_encoder_config: d_ff");
  config_detail::require_positive(num_layers, "t5_encoder_config: num_layers");
  config_detail::require_positive(num_heads, "t5_encoder_config: num_heads");
  if (relative_attention_num_buckets < 4 || relative_attention_num_buckets % 2 != 0)
    throw star::option_error("t5_encoder_config: relative_attention_num_buckets must be even "
                             "and >= 4, got " +
                             std::to_string(relative_attention_num_buckets));
  if (relative_attention_max_distance <= relative_attention_num_buckets / 4)
    throw star::option_error("t5_encoder_config: relative_attention_max_distance must exceed "
                             "relative_attention_num_buckets / 4 = " +
                             std::to_string(relative_attention_num_buckets / 4) + ", got " +
                             std::to_string(relative_attention_max_distance));
  if (!(layer_norm_epsilon > 0.0) || !std::isfinite(layer_norm_epsilon))
    throw star::option_error("t5_encoder_config: layer_norm_epsilon must be finite and > 0, "
                             "got " + std::to_string(layer_norm_epsilon));
}

t5_encoder_config t5_encoder_config::t5_xxl() { return {}; }

t5_encoder_config t5_encoder_config::from_json(const std::string& json_text,
                                               const std::string& origin) {
  const auto keys = config_detail::config_keys::parse(json_text, origin);
  const t5_encoder_config defaults;
  const auto feed_forward = keys.string("feed_forward_proj");
  if (feed_forward != "gated-gelu")
    keys.fail("feed_forward_proj",
              "must be \"gated-gelu\" (T5 v1.1), got \"" + feed_forward + "\"");
  t5_encoder_config config;
  config.vocab_size = keys.integer("vocab_size", defaults.vocab_size);
  config.d_model = keys.integer("d_model");
  config.d_kv = keys.integer("d_kv");
  config.d_ff = keys.integer("d_ff");
  config.num_layers = keys.integer("num_layers");
  config.num_heads = keys.integer("num_heads");
  config.relative_attention_num_buckets =
      keys.integer("relative_attention_num_buckets", defaults.relative_attention_num_buckets);
  config.relative_attention_max_distance =
      keys.integer("relative_attention_max_distance", defaults.relative_attention_max_distance);
  config.layer_norm_epsilon = keys.number("layer_norm_epsilon", defaults.layer_norm_epsilon);
  keys.validate(config);
  return config;
}

t5_encoder_config t5_encoder_config::from_file(const std::filesystem::path& path) {
  return config_detail::parse_file(path, "config.json", "t5 encoder config",
                                   [](const std::string& text) {
                                     return from_json(text, "t5 encoder config");
                                   });
}

t5_encoder_impl::t5_encoder_impl(const t5_encoder_config& config,
                                 const at::TensorOptions& options)
    : config_(config) {
  config_.validate();
  using namespace text_detail;
  shared_ = add_leaf<embedding>(*this, "shared", config_.vocab_size, config_.d_model, options);
  auto encoder = add_container(*this, "encoder");
  encoder->register_module("embed_tokens", shared_);  // tied, as in transformers
  auto blocks = add_container(*encoder, "block");
  for (std::int64_t i = 0; i < config_.num_layers; ++i)
    blocks_.push_back(add_leaf<t5_block>(*blocks, std::to_string(i), config_, options));
  relative_attention_bias_ =
      add_leaf<embedding>(*blocks_.front()->attention, "relative_attention_bias",
                          config_.relative_attention_num_buckets, config_.num_heads, options);
  final_layer_norm_ = add_leaf<t5_layer_norm>(*encoder, "final_layer_norm", config_.d_model,
                                              config_.layer_norm_epsilon, options);
}

at::Tensor t5_encoder_impl::position_bias(std::int64_t query_length,
                                          std::int64_t key_length) const {
  const auto options = at::TensorOptions(at::kLong).device(shared_->weight().device());
  const auto queries = at::arange(query_length, options).unsqueeze(1);  // [Q, 1]
  const auto keys = at::arange(key_length, options).unsqueeze(0);       // [1, K]
  const auto buckets = t5_relative_position_bucket(
      keys - queries, config_.relative_attention_num_buckets,
      config_.relative_attention_max_distance);                         // [Q, K]
  return (*relative_attention_bias_)(buckets).permute({2, 0, 1}).unsqueeze(0);  // [1, H, Q, K]
}

t5_encoder_output t5_encoder_impl::forward(const at::Tensor& input_ids,
                                           const at::Tensor& attention_mask,
                                           const text_encoder_options& options) const {
  text_detail::require_defined(input_ids, "input_ids", "[B, L] token ids");
  star::require_rank("input_ids", input_ids.sizes().vec(), 2, "[B, L] token ids");
  if (input_ids.size(0) < 1 || input_ids.size(1) < 1)
    throw star::shape_error("input_ids: expected [B, L] with B, L >= 1, got " +
                            star::to_string(input_ids.sizes().vec()));
  text_detail::require_token_ids(input_ids, config_.vocab_size, "input_ids");
  text_detail::hidden_state_picker picker(options.hidden_states, config_.num_layers);
  const auto device = shared_->weight().device();
  const auto ids = input_ids.to(device, at::kLong);  // [B, L]
  const auto length = ids.size(1);

  auto x = (*shared_)(ids);                                  // [B, L, C]
  auto bias = position_bias(length, length);                 // [1, H, L, L]
  if (attention_mask.defined()) {
    if (!attention_mask.sizes().equals(input_ids.sizes()))
      throw star::shape_error("attention_mask: expected the shape of input_ids " +
                              star::to_string(input_ids.sizes().vec()) + ", got " +
                              star::to_string(attention_mask.sizes().vec()));
    const auto mask = attention_mask.to(device);             // [B, L]
    if (!mask.eq(0).logical_or(mask.eq(1)).all().item<bool>())
      throw star::value_error("attention_mask: values must be 0 or 1");
    const auto blocked = mask.eq(0).to(bias.scalar_type()) *
                         text_detail::lowest_value(bias.scalar_type());  // [B, L]
    bias = bias + blocked.unsqueeze(1).unsqueeze(1);         // [B, H, L, L]
  }

  for (std::int64_t i = 0; i < config_.num_layers; ++i) {
    picker.offer(i, x);
    x = (*blocks_[i])(x, bias);  // [B, L, C]
  }
  t5_encoder_output out;
  out.last_hidden_state = (*final_layer_norm_)(x);  // [B, L, C]
  picker.offer(config_.num_layers, out.last_hidden_state);
  out.hidden_states = picker.take();
  return out;
}

}  // namespace star::sd35
