#pragma once
/// @file
/// @brief The pieces of an MMDiT-X joint transformer block, as torch::nn modules whose
/// parameter names are diffusers' (`attn.to_q.weight`, `ff.net.0.proj.bias`, ...): q/k RMSNorm,
/// the GELU-tanh feed-forward, the (joint or image-only) attention, the adaptive LayerNorms and
/// the block itself. Every LayerNorm has eps 1e-6 and no affine, and runs in the stream's dtype
/// like diffusers' `nn.LayerNorm` (at::layer_norm accumulates half inputs in float32).
///
/// Dimension letters: B batch, N image tokens, L text tokens, T = N + L, H heads, D head dim,
/// C = H * D the stream width.

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "sd35/mmdit/attention_observer.hpp"
#include "sd35/mmdit/config.hpp"

namespace star::sd35 {

/// @brief diffusers `RMSNorm(dim, eps=1e-6, elementwise_affine=True)`:
/// `x * rsqrt(mean(x^2) + eps) * weight` over the last dim (`rms_normalize`: the variance in
/// float32, as diffusers computes it).
class rms_norm : public torch::nn::Module {
 public:
  /// @param dim  the normalised (last) dimension
  explicit rms_norm(std::int64_t dim);
  /// @param x  [..., dim]; @return [..., dim] in the weight's dtype (x's, after `module->to`)
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight;  ///< [dim]
};

/// @brief diffusers `FeedForward(dim, activation_fn="gelu-approximate")`: `net.0.proj`
/// (C -> 4C), GELU with the tanh approximation, `net.2` (4C -> C).
class feed_forward : public torch::nn::Module {
 public:
  /// @param dim  `C`, the stream width (the hidden layer is 4C)
  explicit feed_forward(std::int64_t dim);
  /// @param x  [B, T, C]; @return [B, T, C]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Linear proj{nullptr};    ///< `net.0.proj`
  torch::nn::Linear output{nullptr};  ///< `net.2`
};

/// @brief diffusers `Attention` with `JointAttnProcessor2_0` (joint: image `to_q/k/v`, text
/// `add_q/k/v_proj`, image first in the sequence) or `AttnProcessor2_0` (the image-only
/// `attn2` of dual-attention blocks), with the optional per-head q/k RMSNorms.
class attention : public torch::nn::Module {
 public:
  /// @brief Which parameters exist.
  struct kind {
    bool joint = true;           ///< text projections `add_*_proj`, `norm_added_*`
    bool context_output = true;  ///< `to_add_out` (false in the context-pre-only block)
  };

  /// @param config  heads, head dim and q/k norm
  /// @param what    joint or image-only; whether the text output projection exists
  attention(const transformer_config& config, kind what);

  /// @brief Image-only self-attention (`attn2`).
  /// @param x  [B, N, C] modulated image tokens
  /// @return   [B, N, C] after `to_out.0`
  at::Tensor self_attention(const at::Tensor& x);

  /// @brief Joint attention over [image, text]; reports q, k, LSE to `report.observer` if set.
  /// @param x       [B, N, C] modulated image tokens
  /// @param c       [B, L, C] modulated text tokens
  /// @param block   this block's index, for the report
  /// @param report  the observer (may be null) and the layout of the joint sequence
  /// @return        {[B, N, C] image output after `to_out.0`, [B, L, C] text output after
  ///                `to_add_out`, undefined when `context_output` is false}
  std::pair<at::Tensor, at::Tensor> joint_attention(const at::Tensor& x, const at::Tensor& c,
                                                    int block, const attention_report& report);

  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};  ///< image projections
  torch::nn::Linear to_out{nullptr};                              ///< `to_out.0`
  std::shared_ptr<rms_norm> norm_q, norm_k;                       ///< null when qk_norm none
  torch::nn::Linear add_q_proj{nullptr}, add_k_proj{nullptr}, add_v_proj{nullptr};  ///< text
  torch::nn::Linear to_add_out{nullptr};                 ///< text output projection
  std::shared_ptr<rms_norm> norm_added_q, norm_added_k;  ///< text q/k norms

 private:
  /// [B, T, C] -> [B, H, T, D], then the optional norm.
  at::Tensor heads(const at::Tensor& x, const std::shared_ptr<rms_norm>& norm) const;
  /// [B, H, T, D] -> [B, T, C].
  at::Tensor merge_heads(const at::Tensor& x) const;

  std::int64_t heads_;
  std::int64_t head_dim_;
};

/// @brief The modulation of one stream (image or text) in a block: the attention input(s) and
/// the gates, shifts and scales the rest of the block uses.
struct stream_modulation {
  at::Tensor attention_input;  ///< [B, N, C] LN(x) (1 + scale_msa) + shift_msa
  at::Tensor gate_msa, shift_mlp, scale_mlp, gate_mlp;  ///< [B, C] each
  at::Tensor attention2_input;  ///< [B, N, C] LN(x) (1 + scale_msa2) + shift_msa2 (dual only)
  at::Tensor gate_msa2;         ///< [B, C] (dual only)
};

/// @brief diffusers `AdaLayerNormZero` (6 chunks) or, for dual-attention blocks,
/// `SD35AdaLayerNormZeroX` (9 chunks): `linear(SiLU(temb))` chunked as shift_msa, scale_msa,
/// gate_msa, shift_mlp, scale_mlp, gate_mlp[, shift_msa2, scale_msa2, gate_msa2].
class ada_layer_norm_zero : public torch::nn::Module {
 public:
  /// @param dim   C
  /// @param dual  9 chunks instead of 6
  ada_layer_norm_zero(std::int64_t dim, bool dual);
  /// @param x     [B, T, C] the stream
  /// @param temb  [B, C] the conditioning embedding
  stream_modulation forward(const at::Tensor& x, const at::Tensor& temb);

  torch::nn::Linear linear{nullptr};  ///< C -> 6C or 9C

 private:
  bool dual_;
};

/// @brief diffusers `AdaLayerNormContinuous(C, C, elementwise_affine=False, eps=1e-6)`:
/// `linear(SiLU(temb))` chunked as (scale, shift); `LN(x) (1 + scale) + shift`.
class ada_layer_norm_continuous : public torch::nn::Module {
 public:
  /// @param dim  `C`, the width of the stream and of temb
  explicit ada_layer_norm_continuous(std::int64_t dim);
  /// @param x     [B, T, C]
  /// @param temb  [B, C]
  /// @return      [B, T, C]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb);

  torch::nn::Linear linear{nullptr};  ///< C -> 2C
};

/// @brief LayerNorm over the last dim, eps 1e-6, no affine, in x's dtype (float32 accumulation
/// inside at::layer_norm); then `(1 + scale) + shift` with [B, C] modulation broadcast over
/// tokens.
/// @param x      [B, T, C]
/// @param scale  [B, C]
/// @param shift  [B, C]
at::Tensor modulated_layer_norm(const at::Tensor& x, const at::Tensor& scale,
                                const at::Tensor& shift);

/// @brief diffusers `JointTransformerBlock` (`use_dual_attention` for the configured layers,
/// `context_pre_only` for the last one): adaptive norms, joint attention, the optional
/// image-only attention, feed-forwards and gated residuals on both streams.
class joint_transformer_block : public torch::nn::Module {
 public:
  /// @param config  the model config
  /// @param index   the block index `i` (dual attention and context-pre-only follow from it)
  joint_transformer_block(const transformer_config& config, std::int64_t index);

  /// @param hidden_states          [B, N, C] image stream
  /// @param encoder_hidden_states  [B, L, C] text stream
  /// @param temb                   [B, C] conditioning embedding
  /// @param report                 the attention observer (may be null) and the layout
  /// @return {[B, N, C] image stream, [B, L, C] text stream (undefined for the last block)}
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& hidden_states,
                                            const at::Tensor& encoder_hidden_states,
                                            const at::Tensor& temb,
                                            const attention_report& report = {});

  /// @brief Whether this block has `attn2` and the 9-chunk `norm1`.
  bool dual_attention() const { return attn2 != nullptr; }
  /// @brief Whether this is the last block (no text output).
  bool context_pre_only() const { return norm1_context_continuous != nullptr; }

  std::shared_ptr<ada_layer_norm_zero> norm1;                           ///< image modulation
  std::shared_ptr<ada_layer_norm_zero> norm1_context;                   ///< text (not last)
  std::shared_ptr<ada_layer_norm_continuous> norm1_context_continuous;  ///< text (last block)
  std::shared_ptr<attention> attn;                                      ///< joint attention
  std::shared_ptr<attention> attn2;          ///< image-only (dual blocks)
  std::shared_ptr<feed_forward> ff;          ///< image feed-forward
  std::shared_ptr<feed_forward> ff_context;  ///< text feed-forward (not last)

 private:
  int index_;
};

}  // namespace star::sd35
