#pragma once
// The yardstick of STAR's overhead: one SD3.5-Medium joint attention block forward (hidden
// 1536, 24 heads of dimension 64, 1024 image + 333 text tokens): qkv projection, joint
// attention, output projection. One projection over the joint sequence has the FLOPs of
// SD3.5's separate image and text projections.

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cstdint>

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
  at::Tensor q, k, v;  // [B, H, T, D] each, strided views of one projection
};

/// The input and weights of one joint attention block at batch B.
class joint_block {
 public:
  joint_block(std::int64_t batch, const at::TensorOptions& options)
      : x_(at::randn({batch, layout().total_tokens(), hidden}, options)),  // [B, T, C]
        w_qkv_(at::randn({3 * hidden, hidden}, options) * 0.02),           // [3C, C]
        w_out_(at::randn({hidden, hidden}, options) * 0.02) {}             // [C, C]

  projected project() const {
    const std::int64_t batch = x_.size(0), tokens = x_.size(1);
    const auto qkv = at::linear(x_, w_qkv_)
                         .view({batch, tokens, 3, heads, head_dim})
                         .permute({2, 0, 3, 1, 4});  // [3, B, H, T, D]
    return {qkv[0], qkv[1], qkv[2]};
  }

  /// The block output from the attention `attend(q, k, v)` -> [B, H, T, D].
  template <class Attend>
  at::Tensor forward(const Attend& attend) const {
    const auto [q, k, v] = project();
    const auto attended = attend(q, k, v);                                    // [B, H, T, D]
    return at::linear(attended.transpose(1, 2).reshape(x_.sizes()), w_out_);  // [B, T, C]
  }

 private:
  at::Tensor x_, w_qkv_, w_out_;
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
