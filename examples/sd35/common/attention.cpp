#include "sd35/common/attention.hpp"

#include <torch/version.h>

#include <cmath>
#include <limits>
#include <string>

#include "star/core/error.hpp"
#include "star/core/shape.hpp"

// at::scaled_dot_product_attention takes an explicit `scale` from LibTorch 2.1.
#define STAR_SD35_HAS_SDPA_SCALE \
  (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))

namespace star::sd35 {
namespace {

// Throws shape_error unless q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv] and the mask
// (rank 4) agree.
void check_shapes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& mask) {
  const shape q_shape = q.sizes().vec(), k_shape = k.sizes().vec(), v_shape = v.sizes().vec();
  require_rank("q", q_shape, 4, "[B, H, Tq, D]");
  require_rank("k", k_shape, 4, "[B, H, Tk, D]");
  require_rank("v", v_shape, 4, "[B, H, Tk, Dv]");
  if (k_shape[0] != q_shape[0] || k_shape[1] != q_shape[1] || k_shape[3] != q_shape[3] ||
      v_shape[0] != q_shape[0] || v_shape[1] != q_shape[1] || v_shape[2] != k_shape[2])
    throw shape_error("k, v: expected k [B, H, Tk, D] and v [B, H, Tk, Dv] with B, H, D of q " +
                      to_string(q_shape) + ", got k " + to_string(k_shape) + " and v " +
                      to_string(v_shape));
  if (mask.defined())
    require_rank("additive_mask", mask.sizes().vec(), 4, "[B or 1, H or 1, Tq, Tk]");
}

// [Tq, Tk] true above the diagonal: the keys a causal query must not see.
at::Tensor future_keys(std::int64_t queries, std::int64_t keys, const at::Device& device) {
  return at::ones({queries, keys}, at::TensorOptions(at::kBool).device(device)).triu(1);  // [Tq, Tk]
}

}  // namespace

at::Tensor dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const dot_product_options& options) {
  check_shapes(q, k, v, options.additive_mask);
  const double scale = options.scale ? *options.scale : 1.0 / std::sqrt(double(q.size(3)));
  const double blocked = -std::numeric_limits<double>::infinity();
#if STAR_SD35_HAS_SDPA_SCALE
  // SDPA refuses an explicit mask together with is_causal: the causal part joins the mask.
  std::optional<at::Tensor> mask;
  if (options.additive_mask.defined()) {
    mask = options.additive_mask.to(q.scalar_type());  // [B or 1, H or 1, Tq, Tk]
    if (options.causal)
      mask = mask->masked_fill(future_keys(q.size(2), k.size(2), q.device()),
                               blocked);  // [B or 1, H or 1, Tq, Tk]
  }
  return at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0,
                                          options.causal && !mask, scale);  // [B, H, Tq, Dv]
#else
  const auto accumulate = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto logits = at::matmul(q.to(accumulate), k.to(accumulate).transpose(-2, -1)) *
                scale;  // [B, H, Tq, Tk]
  if (options.additive_mask.defined())
    logits = logits + options.additive_mask.to(accumulate);  // [B, H, Tq, Tk]
  if (options.causal)
    logits = logits.masked_fill(future_keys(q.size(2), k.size(2), q.device()),
                                blocked);  // [B, H, Tq, Tk]
  const auto probabilities = at::softmax(logits, -1).to(v.scalar_type());  // [B, H, Tq, Tk]
  return at::matmul(probabilities, v);                                     // [B, H, Tq, Dv]
#endif
}

}  // namespace star::sd35
