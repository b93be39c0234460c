#include "sd35/common/attention.hpp"

#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <limits>
#include <string>

#include "star/core/error.hpp"
#include "star/core/shape.hpp"

namespace star::sd35 {
namespace {

constexpr double blocked = -std::numeric_limits<double>::infinity();

// Throws value_error naming `name` unless `t` is on q's device.
void require_device_of_q(const char* name, const at::Tensor& t, const at::Tensor& q) {
  if (t.device() != q.device())
    throw value_error(std::string(name) + ": expected q's device " + q.device().str() +
                      ", got " + t.device().str() + " (shape " + to_string(t.sizes().vec()) +
                      ")");
}

// Throws value_error naming `name` unless `t` has q's dtype.
void require_dtype_of_q(const char* name, const at::Tensor& t, const at::Tensor& q) {
  if (t.scalar_type() != q.scalar_type())
    throw value_error(std::string(name) + ": expected q's dtype " +
                      c10::toString(q.scalar_type()) + ", got " +
                      c10::toString(t.scalar_type()) + " (shape " + to_string(t.sizes().vec()) +
                      ")");
}

// Throws shape_error unless q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv] and the mask
// [B or 1, H or 1, Tq, Tk] agree; value_error unless k, v, the mask are on q's device and k, v
// in q's dtype.
void check_arguments(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
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
  require_device_of_q("k", k, q);
  require_device_of_q("v", v, q);
  require_dtype_of_q("k", k, q);
  require_dtype_of_q("v", v, q);
  if (!mask.defined()) return;
  const shape mask_shape = mask.sizes().vec();
  require_rank("additive_mask", mask_shape, 4, "[B or 1, H or 1, Tq, Tk]");
  const auto one_or = [](std::int64_t got, std::int64_t size) { return got == 1 || got == size; };
  if (!one_or(mask_shape[0], q_shape[0]) || !one_or(mask_shape[1], q_shape[1]) ||
      mask_shape[2] != q_shape[2] || mask_shape[3] != k_shape[2])
    throw shape_error("additive_mask: expected [B or 1, H or 1, Tq, Tk] for q " +
                      to_string(q_shape) + " and k " + to_string(k_shape) + ", got " +
                      to_string(mask_shape));
  require_device_of_q("additive_mask", mask, q);
}

// [Tq, Tk] true above the diagonal: the keys a causal query must not see.
at::Tensor future_keys(std::int64_t queries, std::int64_t keys, const at::Device& device) {
  return at::ones({queries, keys}, at::TensorOptions(at::kBool).device(device))
      .triu(1);  // [Tq, Tk]
}

double logit_scale(const at::Tensor& q, const dot_product_options& options) {
  return options.scale ? *options.scale : 1.0 / std::sqrt(double(q.size(3)));
}

}  // namespace

namespace detail {

at::Tensor explicit_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const dot_product_options& options) {
  check_arguments(q, k, v, options.additive_mask);
  const auto accumulate = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto logits = at::matmul(q.to(accumulate), k.to(accumulate).transpose(-2, -1)) *
                logit_scale(q, options);  // [B, H, Tq, Tk]
  if (options.additive_mask.defined())
    logits = logits + options.additive_mask.to(q.scalar_type())
                          .to(accumulate);  // [B, H, Tq, Tk], the mask as SDPA sees it
  if (options.causal)
    logits = logits.masked_fill(future_keys(q.size(2), k.size(2), q.device()),
                                blocked);  // [B, H, Tq, Tk]
  // A row with every key blocked: softmax over zeros (no NaN, in values or gradients), then 0.
  const auto all_blocked = logits.amax(-1, /*keepdim=*/true).eq(blocked);  // [B, H, Tq, 1]
  const auto probabilities = at::softmax(logits.masked_fill(all_blocked, 0.0), -1)
                                 .masked_fill(all_blocked, 0.0)
                                 .to(v.scalar_type());  // [B, H, Tq, Tk]
  return at::matmul(probabilities, v);                  // [B, H, Tq, Dv]
}

}  // namespace detail

at::Tensor dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const dot_product_options& options) {
#if STAR_SD35_USES_FUSED_SDPA
  check_arguments(q, k, v, options.additive_mask);
  // SDPA refuses an explicit mask together with is_causal: the causal part joins the mask.
  c10::optional<at::Tensor> mask;
  if (options.additive_mask.defined()) {
    mask = options.additive_mask.to(q.scalar_type());  // [B or 1, H or 1, Tq, Tk]
    if (options.causal)
      mask = mask->masked_fill(future_keys(q.size(2), k.size(2), q.device()),
                               blocked);  // [B or 1, H or 1, Tq, Tk]
  }
  return at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0,
                                          options.causal && !mask.has_value(),
                                          logit_scale(q, options));  // [B, H, Tq, Dv]
#else
  return detail::explicit_attention(q, k, v, options);  // [B, H, Tq, Dv]
#endif
}

}  // namespace star::sd35
