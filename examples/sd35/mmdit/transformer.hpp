#pragma once
/// @file
/// @brief The MMDiT-X denoiser of Stable Diffusion 3.5 (diffusers `SD3Transformer2DModel`) as
/// a torch::nn module whose `named_parameters()` / `named_buffers()` are diffusers' state-dict
/// names, so the release `transformer/` weights load by name. Runs in float32, bfloat16 and
/// float16 (`module->to(dtype)`); LayerNorm, the RMSNorm variance, softmax and the LSE
/// accumulate in float32.
///
/// Dimension letters: B batch, C latent channels, H x W latent, P patch, h x w = H/P x W/P token
/// grid, N = h w image tokens, L text tokens, T = N + L, Dj / Dp text / pooled widths,
/// E = heads * head_dim the stream width.

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "sd35/mmdit/attention_observer.hpp"
#include "sd35/mmdit/blocks.hpp"
#include "sd35/mmdit/config.hpp"
#include "star/core/token_layout.hpp"

namespace star::sd35 {

/// @brief diffusers `PatchEmbed` with `pos_embed_max_size`: a P x P stride-P convolution to
/// tokens (row-major over the patch grid) plus the centre crop of the stored 2-D sin-cos table
/// (`top = (M - h) / 2`, `left = (M - w) / 2`).
class patch_embed : public torch::nn::Module {
 public:
  /// @brief Builds the convolution and fills the `pos_embed` buffer with diffusers' table
  /// (`get_2d_sincos_pos_embed`, base size `sample_size / patch_size`); checkpoints overwrite it.
  explicit patch_embed(const transformer_config& config);
  /// @param latent  [B, C, H, W], H and W multiples of P, h and w at most M
  /// @return        [B, N, E]
  at::Tensor forward(const at::Tensor& latent);

  torch::nn::Conv2d proj{nullptr};  ///< C -> E, kernel and stride P
  at::Tensor pos_embed;             ///< [1, M * M, E] buffer `pos_embed.pos_embed`

 private:
  std::int64_t max_size_;
};

/// @brief diffusers `TimestepEmbedding` / `PixArtAlphaTextProjection`:
/// `linear_2(SiLU(linear_1(x)))`.
class mlp_embedding : public torch::nn::Module {
 public:
  /// @param in_features   `in`, the input width
  /// @param out_features  `out`, the width of both Linears' outputs
  mlp_embedding(std::int64_t in_features, std::int64_t out_features);
  /// @param x  [B, in]; @return [B, out]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};

/// @brief diffusers `CombinedTimestepTextProjEmbeddings`: the 256-wide timestep sinusoid
/// (`[cos | sin]`, `flip_sin_to_cos`, no frequency shift) through `timestep_embedder` plus the
/// pooled text vector through `text_embedder`.
class time_text_embedding : public torch::nn::Module {
 public:
  /// @param config  gives E (`inner_dim()`) and Dp (`pooled_projection_dim`)
  explicit time_text_embedding(const transformer_config& config);
  /// @param timestep  [B] `1000 * sigma`
  /// @param pooled    [B, Dp]
  /// @return          [B, E] temb, in `pooled`'s dtype
  at::Tensor forward(const at::Tensor& timestep, const at::Tensor& pooled);

  std::shared_ptr<mlp_embedding> timestep_embedder;  ///< 256 -> E -> E
  std::shared_ptr<mlp_embedding> text_embedder;      ///< Dp -> E -> E
};

/// @brief `[cos(t f_k) ..., sin(t f_k) ...]`, `f_k = exp(-ln(10000) k / (dim / 2))`, in float32.
/// @param timestep  [B]
/// @param dim       the embedding width (even)
/// @return          [B, dim] float32
at::Tensor timestep_sinusoid(const at::Tensor& timestep, std::int64_t dim = 256);

/// @brief diffusers' fixed 2-D sin-cos positional table of `PatchEmbed`: for an `M x M` grid
/// at `base_size`, row-major; each row is `[sincos(col), sincos(row)]` of width E / 2 each.
/// @return [M * M, E] float32
at::Tensor sincos_position_table(std::int64_t embed_dim, std::int64_t grid_size,
                                 std::int64_t base_size);

/// @brief Options of one forward pass.
struct forward_options {
  /// @brief Blocks made the identity on both streams (skip-layer guidance), each in
  /// `[0, num_layers)`.
  std::vector<std::int64_t> skip_layers;
  /// @brief Receives each computed block's joint q, k, LSE and layout; null: nothing reported
  /// and the cheapest attention kernel runs. Not owned.
  attention_observer* observer = nullptr;
  /// @brief The text block's segments for the reported layout (e.g. clip 77, t5 256); their
  /// lengths must sum to L. Empty: one segment `"text"` of length L.
  std::vector<text_segment> text_segments;
};

/// @brief diffusers `SD3Transformer2DModel` (MMDiT / MMDiT-X).
class sd3_transformer : public torch::nn::Module {
 public:
  /// @brief Builds every module with LibTorch's default initialisation (the positional table
  /// is diffusers' fixed one). Throws `star::option_error` on an invalid config.
  explicit sd3_transformer(transformer_config config);

  /// @brief The flow-matching velocity for latents `hidden_states` at `timestep`.
  /// Throws `star::shape_error` naming the argument on a wrong shape, `star::option_error` on
  /// bad options. Inputs are moved to the module's device and dtype (the timestep keeps its
  /// dtype, its sinusoid is float32); the output is in the module's dtype.
  /// @param hidden_states          [B, C, H, W] latents, H and W multiples of P
  /// @param encoder_hidden_states  [B, L, Dj] text sequence
  /// @param pooled_projections     [B, Dp] pooled text vector
  /// @param timestep               [B] `1000 * sigma`
  /// @param options                skip layers, attention observer, text segments
  /// @return                       [B, C_out, H, W]
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& encoder_hidden_states,
                     const at::Tensor& pooled_projections, const at::Tensor& timestep,
                     const forward_options& options = {});

  /// @brief [B, N, P * P * C_out] tokens to [B, C_out, h P, w P] (diffusers' unpatchify:
  /// column `(P p + q) C_out + c` of token `(row, col)` is pixel `(P row + p, P col + q)`).
  at::Tensor unpatchify(const at::Tensor& tokens, std::int64_t grid_h, std::int64_t grid_w) const;

  /// @brief The joint-attention layout of a forward: `h x w` image tokens, then `segments`
  /// (one segment `"text"` of `text_tokens` when empty). Throws `star::option_error` when the
  /// segment lengths do not sum to `text_tokens`.
  static token_layout joint_layout(std::int64_t grid_h, std::int64_t grid_w,
                                   std::int64_t text_tokens,
                                   const std::vector<text_segment>& segments);

  /// @brief The config the module was built from.
  const transformer_config& config() const { return config_; }

  std::shared_ptr<patch_embed> pos_embed;                ///< latent -> image tokens
  std::shared_ptr<time_text_embedding> time_text_embed;  ///< timestep + pooled -> temb
  torch::nn::Linear context_embedder{nullptr};           ///< Dj -> E
  std::vector<std::shared_ptr<joint_transformer_block>> transformer_blocks;  ///< num_layers
  std::shared_ptr<ada_layer_norm_continuous> norm_out;  ///< final adaptive norm
  torch::nn::Linear proj_out{nullptr};                  ///< E -> P * P * C_out

 private:
  void check_inputs(const at::Tensor& hidden_states, const at::Tensor& encoder_hidden_states,
                    const at::Tensor& pooled_projections, const at::Tensor& timestep,
                    const forward_options& options) const;

  transformer_config config_;
};

}  // namespace star::sd35
