#pragma once
/// @file
/// @brief transformers `T5EncoderModel` (T5 v1.1: gated-GELU, RMS layer norms, relative
/// position bias) in LibTorch, SD3.5's `text_encoder_3`, with transformers' `state_dict` names.

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sd35/text/text_layers.hpp"

namespace star::sd35 {

/// @brief The keys of a transformers `T5Config` that the encoder uses.
struct t5_encoder_config {
  std::int64_t vocab_size = 32128;
  std::int64_t d_model = 4096;
  std::int64_t d_kv = 64;
  std::int64_t d_ff = 10240;
  std::int64_t num_layers = 24;
  std::int64_t num_heads = 64;
  std::int64_t relative_attention_num_buckets = 32;
  std::int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;

  /// @brief `num_heads * d_kv`, the width of q, k, v.
  std::int64_t inner_dim() const { return num_heads * d_kv; }
  /// @brief Throws `star::option_error` naming the key of any value out of range.
  void validate() const;

  /// @brief SD3.5's `text_encoder_3` (google t5-v1_1-xxl encoder).
  static t5_encoder_config t5_xxl();
  /// @brief Parses a `config.json` text; errors name `origin` and the key. `d_model`, `d_kv`,
  /// `d_ff`, `num_layers`, `num_heads` and `feed_forward_proj` (only "gated-gelu" is
  /// supported) are required; the rest take transformers' defaults. The result is validated.
  static t5_encoder_config from_json(const std::string& json_text, const std::string& origin);
  /// @brief Reads `path` (a config.json, or a folder holding one, e.g. `text_encoder_3/`).
  static t5_encoder_config from_file(const std::filesystem::path& path);
};

/// @brief What one T5 encoder forward returns (L = sequence length, C = d_model).
struct t5_encoder_output {
  at::Tensor last_hidden_state;           ///< [B, L, C] after final_layer_norm
  /// [B, L, C] each: the `text_encoder_options::hidden_states` asked for, in that order, indices
  /// into transformers' tuple (0 the embeddings, `i` < num_layers the output of block `i - 1`,
  /// num_layers last_hidden_state); none by default.
  std::vector<at::Tensor> hidden_states;
};

/// @brief Bidirectional T5 bucket of each `memory - query` offset: half the buckets per sign,
/// exact below `num_buckets / 4`, log-spaced up to `max_distance`, clipped beyond.
/// @param relative_position  [...] integer offsets
/// @return [...] int64 buckets in [0, num_buckets)
at::Tensor t5_relative_position_bucket(const at::Tensor& relative_position,
                                       std::int64_t num_buckets, std::int64_t max_distance);

namespace text_detail {
struct t5_block;
class t5_layer_norm;
}

/// @brief T5 v1.1 encoder. Parameter names: `shared.weight` (tied: `encoder.embed_tokens.weight`
/// is the same tensor), `encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight`,
/// `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight`,
/// `encoder.block.{i}.layer.0.layer_norm.weight`,
/// `encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight`,
/// `encoder.block.{i}.layer.1.layer_norm.weight`, `encoder.final_layer_norm.weight`.
class t5_encoder_impl : public torch::nn::Module {
 public:
  /// @brief Builds the modules; `options` picks dtype and device (`at::kMeta` allocates
  /// nothing). Weights start random: load a checkpoint before use. A `wo` kept in float32 by
  /// the caller (transformers' `_keep_in_fp32_modules`) is honoured.
  explicit t5_encoder_impl(const t5_encoder_config& config,
                           const at::TensorOptions& options = {});

  /// @brief Encoder forward (diffusers' SD3 pipeline passes no mask: padding is attended to).
  /// @param input_ids       [B, L] integer ids in [0, vocab_size)
  /// @param attention_mask  [B, L] 1 = attend, 0 = padding; undefined for none
  /// @param options         the hidden states to return besides last_hidden_state (index in
  ///                        [0, num_layers], else `star::option_error` naming `hidden_states`)
  t5_encoder_output forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                            const text_encoder_options& options = {}) const;

  /// @brief Block 0's relative position bias, shared by every block (no 1/sqrt(d) scaling).
  /// @return [1, H, query_length, key_length]
  at::Tensor position_bias(std::int64_t query_length, std::int64_t key_length) const;

  /// @brief The config the model was built from.
  const t5_encoder_config& config() const { return config_; }
  /// @brief The tied alias and the name it shares its tensor with: checkpoints may store
  /// either one (SD3.5's stores `shared.weight`).
  static std::pair<std::string, std::string> tied_embedding_names() {
    return {"encoder.embed_tokens.weight", "shared.weight"};
  }

 private:
  t5_encoder_config config_;
  std::shared_ptr<text_detail::embedding> shared_;
  std::shared_ptr<text_detail::embedding> relative_attention_bias_;
  std::vector<std::shared_ptr<text_detail::t5_block>> blocks_;
  std::shared_ptr<text_detail::t5_layer_norm> final_layer_norm_;
};
TORCH_MODULE_IMPL(t5_encoder, t5_encoder_impl);

}  // namespace star::sd35
