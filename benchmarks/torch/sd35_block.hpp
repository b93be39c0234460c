#pragma once
// The yardstick of STAR's overhead: one SD3.5-Medium joint transformer block forward
// (diffusers' JointTransformerBlock: hidden 1536, 24 heads of dimension 64, 1024 image + 333 text
// tokens) with random weights: adaLN modulation of both streams, their q/k/v projections, RMS
// q/k norm, joint attention over the concatenated sequence, the output projections and the
// 4x GELU feed-forward of both streams, with gated residuals.

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "star/core/token_layout.hpp"
#include "star/torch/attention_lse.hpp"

namespace star::bench::sd35m {

constexpr std::int64_t heads = 24, head_dim = 64, hidden = heads * head_dim;
constexpr std::int64_t steps = 10;   ///< denoising steps per rollout (rows = batch x steps)
constexpr std::int64_t blocks = 24;  ///< joint blocks of SD3.5-Medium
constexpr double scale = 0.125;      ///< 1 / sqrt(head_dim)

/// N = 32 x 32 = 1024 image tokens first, then 77 CLIP + 256 T5 = 333 text tokens.
inline const token_layout& layout() {
  static const token_layout value = token_layout::sd3(32, 32);
  return value;
}

/// The projected queries, keys and values of the joint sequence.
struct projected {
  at::Tensor q, k, v;  // [B, H, T, D] each: image tokens, then text tokens
};

/// One stream (image or text) of a joint block: its input and weights.
class block_stream {
 public:
  block_stream(std::int64_t batch, std::int64_t tokens, const at::TensorOptions& options)
      : x_(at::randn({batch, tokens, hidden}, options)),                // [B, L_s, C]
        w_modulation_(at::randn({6 * hidden, hidden}, options) * 0.02),  // [6C, C]
        w_qkv_(at::randn({3 * hidden, hidden}, options) * 0.02),         // [3C, C]
        w_out_(at::randn({hidden, hidden}, options) * 0.02),             // [C, C]
        w_up_(at::randn({4 * hidden, hidden}, options) * 0.02),          // [4C, C]
        w_down_(at::randn({hidden, 4 * hidden}, options) * 0.02) {}      // [C, 4C]

  /// The six adaLN vectors (shift, scale, gate of attention, then of the MLP) from `temb`.
  std::vector<at::Tensor> modulation(const at::Tensor& temb) const {
    return at::linear(at::silu(temb), w_modulation_).unsqueeze(1).chunk(6, -1);  // 6 x [B, 1, C]
  }

  /// Queries, keys and values of this stream after the modulated norm and RMS q/k norm.
  projected project(const std::vector<at::Tensor>& mod) const {
    const std::int64_t batch = x_.size(0), tokens = x_.size(1);
    const auto normed = modulate(x_, mod[0], mod[1]);  // [B, L_s, C]
    const auto qkv = at::linear(normed, w_qkv_)
                         .view({batch, tokens, 3, heads, head_dim})
                         .permute({2, 0, 3, 1, 4});  // [3, B, H, L_s, D]
    return {rms_norm(qkv[0]), rms_norm(qkv[1]), qkv[2]};  // each [B, H, L_s, D]
  }

  /// The stream's output from its attention rows `attended`.
  at::Tensor finish(const at::Tensor& attended, const std::vector<at::Tensor>& mod) const {
    const auto merged = attended.transpose(1, 2).reshape(x_.sizes());  // [B, L_s, C]
    const auto x = x_ + mod[2] * at::linear(merged, w_out_);           // [B, L_s, C]
    const auto hidden_states = at::gelu(at::linear(modulate(x, mod[3], mod[4]), w_up_),
                                        "tanh");                        // [B, L_s, 4C]
    return x + mod[5] * at::linear(hidden_states, w_down_);            // [B, L_s, C]
  }

  std::int64_t tokens() const { return x_.size(1); }

 private:
  static at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift,
                             const at::Tensor& scale_by) {
    return at::layer_norm(x, {hidden}) * (1 + scale_by) + shift;  // [B, L_s, C]
  }
  static at::Tensor rms_norm(const at::Tensor& t) {
    return t * at::rsqrt(t.pow(2).mean(-1, true) + 1e-6);  // [B, H, L_s, D]
  }

  at::Tensor x_, w_modulation_, w_qkv_, w_out_, w_up_, w_down_;
};

/// One joint transformer block at batch B: the image and the text stream and the timestep
/// embedding that modulates both.
class joint_block {
 public:
  joint_block(std::int64_t batch, const at::TensorOptions& options)
      : image_(batch, layout().image_tokens(), options),
        text_(batch, layout().text_tokens(), options),
        temb_(at::randn({batch, hidden}, options)) {}  // [B, C]

  /// The joint sequence's queries, keys and values, as the read-out receives them.
  projected project() const {
    return joint(image_.project(image_.modulation(temb_)),
                 text_.project(text_.modulation(temb_)));  // each [B, H, T, D]
  }

  /// The block's two outputs from the attention `attend(q, k, v)` -> [B, H, T, D].
  template <class Attend>
  std::pair<at::Tensor, at::Tensor> forward(const Attend& attend) const {
    const auto image_mod = image_.modulation(temb_);  // 6 x [B, 1, C]
    const auto text_mod = text_.modulation(temb_);    // 6 x [B, 1, C]
    const auto [q, k, v] = joint(image_.project(image_mod), text_.project(text_mod));  // [B,H,T,D]
    const auto attended = attend(q, k, v);                                 // [B, H, T, D]
    const auto image_rows = attended.narrow(2, 0, image_.tokens());        // [B, H, N, D]
    const auto text_rows = attended.narrow(2, image_.tokens(), text_.tokens());  // [B, H, L, D]
    return {image_.finish(image_rows, image_mod), text_.finish(text_rows, text_mod)};
  }

 private:
  static projected joint(const projected& image, const projected& text) {
    return {at::cat({image.q, text.q}, 2), at::cat({image.k, text.k}, 2),
            at::cat({image.v, text.v}, 2)};  // [B, H, T, D] each
  }

  block_stream image_, text_;
  at::Tensor temb_;
};

/// What the model runs: LibTorch's fused SDPA (2.x), the explicit softmax on 1.x.
inline at::Tensor plain_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v);  // [B, H, T, D]
#else
  return at::matmul(at::softmax(at::matmul(q, k.transpose(2, 3)) * scale, -1), v);  // [B, H, T, D]
#endif
}

/// What a STAR trainer runs instead to keep the row LSE for the read-out.
inline at::Tensor attention_keeping_lse(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v) {
  return libtorch::attention_with_lse(q, k, v, scale).output;  // [B, H, T, D]
}

}  // namespace star::bench::sd35m
