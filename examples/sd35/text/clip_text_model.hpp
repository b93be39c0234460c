#pragma once
/// @file
/// @brief transformers `CLIPTextModelWithProjection` in LibTorch (SD3.5's CLIP-L and CLIP-G),
/// with transformers' `state_dict` names.

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

/// @brief The MLP activation of a CLIP text tower (`hidden_act`).
enum class clip_activation {
  quick_gelu,  ///< `x * sigmoid(1.702 x)` (CLIP-L)
  gelu,        ///< exact erf GELU (CLIP-G / OpenCLIP bigG)
};

/// @brief The keys of a transformers `CLIPTextConfig` that the forward pass uses.
struct clip_text_config {
  std::int64_t vocab_size = 49408;
  std::int64_t hidden_size = 768;
  std::int64_t intermediate_size = 3072;
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t max_position_embeddings = 77;
  std::int64_t projection_dim = 768;
  clip_activation hidden_act = clip_activation::quick_gelu;
  double layer_norm_eps = 1e-5;
  /// 2 selects transformers' legacy pooling at `argmax(input_ids)`; otherwise the first
  /// position holding this id.
  std::int64_t eos_token_id = 2;

  /// @brief Throws `star::option_error` naming the key of any value out of range.
  void validate() const;

  /// @brief SD3.5's `text_encoder` (CLIP ViT-L/14 text tower).
  static clip_text_config clip_l();
  /// @brief SD3.5's `text_encoder_2` (OpenCLIP bigG text tower).
  static clip_text_config clip_g();
  /// @brief Parses a `config.json` text (a CLIPTextConfig, or a CLIPConfig's `text_config`);
  /// errors name `origin` and the key. The structural keys are required; `vocab_size`,
  /// `max_position_embeddings`, `hidden_act`, `layer_norm_eps`, `eos_token_id` take
  /// transformers' defaults. The result is validated.
  static clip_text_config from_json(const std::string& json_text, const std::string& origin);
  /// @brief Reads `path` (a config.json, or a folder holding one, e.g. `text_encoder/`).
  static clip_text_config from_file(const std::filesystem::path& path);
};

/// @brief What one CLIP text forward returns (S = sequence length, C = hidden, P = projection).
struct clip_text_output {
  at::Tensor last_hidden_state;            ///< [B, S, C] after final_layer_norm
  /// [B, S, C] each: the `text_encoder_options::hidden_states` asked for, in that order (0 the
  /// embeddings, `i` the output of layer `i`); none by default.
  std::vector<at::Tensor> hidden_states;
  /// [B, S, C] transformers' `hidden_states[L - 1]`, the second-to-last layer's output (SD3's
  /// features; the embeddings when L = 1).
  at::Tensor penultimate_hidden_state;
  at::Tensor pooled_output;                ///< [B, C] last_hidden_state at the EOS position
  at::Tensor text_embeds;                  ///< [B, P] text_projection(pooled_output)
};

namespace text_detail {
struct clip_layer;
}

/// @brief CLIP text transformer with projection. Parameter names: `text_model.embeddings.
/// {token,position}_embedding.weight`, `text_model.encoder.layers.{i}.{self_attn.{q,k,v,out}
/// _proj, layer_norm1, layer_norm2, mlp.fc1, mlp.fc2}.{weight,bias}`,
/// `text_model.final_layer_norm.{weight,bias}`, `text_projection.weight`.
class clip_text_model_impl : public torch::nn::Module {
 public:
  /// @brief Builds the modules; `options` picks dtype and device (`at::kMeta` allocates
  /// nothing). Weights start random: load a checkpoint before use.
  explicit clip_text_model_impl(const clip_text_config& config,
                                const at::TensorOptions& options = {});

  /// @brief Causal CLIP text forward, no padding mask (as diffusers' SD3 pipeline calls it).
  /// @param input_ids  [B, S] integer ids in [0, vocab_size), 1 <= S <= max_position_embeddings
  /// @param options    the hidden states to return besides the penultimate one (index in
  ///                   [0, num_hidden_layers], else `star::option_error` naming `hidden_states`)
  clip_text_output forward(const at::Tensor& input_ids,
                           const text_encoder_options& options = {}) const;

  /// @brief The config the model was built from.
  const clip_text_config& config() const { return config_; }

 private:
  clip_text_config config_;
  std::shared_ptr<text_detail::embedding> token_embedding_;
  std::shared_ptr<text_detail::embedding> position_embedding_;
  std::vector<std::shared_ptr<text_detail::clip_layer>> layers_;
  std::shared_ptr<text_detail::layer_norm> final_layer_norm_;
  std::shared_ptr<text_detail::linear> text_projection_;
};
TORCH_MODULE_IMPL(clip_text_model, clip_text_model_impl);

}  // namespace star::sd35
