#pragma once
/// @file
/// @brief Cheap attention read-out on LibTorch (docs/math.md §3): the joint attention of a
/// block together with the natural-log row log-sum-exp, from a fused kernel where the LibTorch
/// version has one, and the selected image-text probabilities formed from that LSE only for
/// the selected text columns.
///
/// Which kernel gives the LSE (`attention_lse_source`):
/// - LibTorch >= 2.3 on the CPU: `at::_scaled_dot_product_flash_attention_for_cpu`, whose
///   `logsumexp` is `[B, H, T]` in natural log.
/// - On CUDA, first the kernel LibTorch's own SDPA would run for these inputs
///   (`sdpa_cuda_source`, LibTorch >= 2.5), so that keeping the LSE costs what the model's
///   attention costs anyway; then the others in this order:
///   - LibTorch >= 2.5: `at::_scaled_dot_product_cudnn_attention` with
///     `compute_log_sumexp = true` (tried only when SDPA picks it), whose `logsumexp` is
///     `[B, H, T, 1]` (`[B, H, T]` in some releases) in natural log;
///   - LibTorch >= 2.2 in float16 / bfloat16: `at::_scaled_dot_product_flash_attention`, whose
///     `logsumexp` is `[B, H, T]` in natural log;
///   - LibTorch >= 2.1: `at::_scaled_dot_product_efficient_attention` with
///     `compute_log_sumexp = true`, whose `log_sumexp` is `[B, H, T']` with `T'` padded up to
///     a multiple of 32, natural log; the padding is sliced off.
/// - Otherwise (LibTorch 1.x, a dtype or alignment the fused kernel rejects): an online
///   softmax over key chunks, the same max / shifted-sum merge as `star::image_row_lse`
///   extended to the output, in at least float32; memory `O(T * key_chunk)`.
/// Kernels that keep the LSE in base 2 (FlashAttention's `log2`-scaled scores) are not used
/// here; a caller bringing such an LSE converts it with `lse_from_log2`.
///
/// The LSE carries no gradient (the fused kernels do not differentiate it): the maps are
/// allocation weights, used as constants of the policy objective.

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/version.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <tuple>

#include "star/attention/lse_relevance_accumulator.hpp"
#include "star/attention/probabilities.hpp"
#include "star/attention/relevance.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "star/core/token_layout.hpp"
#include "star/torch/backend.hpp"
#include "star/torch/error_guard.hpp"
#include "star/torch/tensor_views.hpp"

/// @brief Whether the LibTorch headers are at least version `major.minor`.
#define STAR_TORCH_VERSION_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||               \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#if STAR_TORCH_VERSION_AT_LEAST(2, 5)
#include <ATen/SDPBackend.h>
#endif

namespace star::libtorch {

/// @brief Where the LSE of `attention_with_lse` came from.
enum class attention_lse_source {
  fused_cpu_flash,       ///< `_scaled_dot_product_flash_attention_for_cpu` (LibTorch >= 2.3)
  fused_cuda_cudnn,      ///< `_scaled_dot_product_cudnn_attention` (LibTorch >= 2.5)
  fused_cuda_flash,      ///< `_scaled_dot_product_flash_attention` (LibTorch >= 2.2)
  fused_cuda_efficient,  ///< `_scaled_dot_product_efficient_attention` (LibTorch >= 2.1)
  chunked,               ///< star's online softmax over key chunks
};

/// @brief The enumerator's name, e.g. `"fused_cuda_flash"`.
inline const char* source_name(attention_lse_source source) {
  switch (source) {
    case attention_lse_source::fused_cpu_flash:
      return "fused_cpu_flash";
    case attention_lse_source::fused_cuda_cudnn:
      return "fused_cuda_cudnn";
    case attention_lse_source::fused_cuda_flash:
      return "fused_cuda_flash";
    case attention_lse_source::fused_cuda_efficient:
      return "fused_cuda_efficient";
    case attention_lse_source::chunked:
      break;
  }
  return "chunked";
}

/// @brief The attention output and the row log-sum-exp of every query.
struct attention_with_lse_result {
  at::Tensor output;  ///< [B, H, T, Dv] `softmax(s q k^T) v`, in q's dtype
  at::Tensor lse;     ///< [B, H, T] `log sum_m exp(s q_t . k_m)`, natural log, float32 or wider
  attention_lse_source source = attention_lse_source::chunked;  ///< which kernel ran
};

/// @brief Converts a base-2 log-sum-exp (`log2 sum exp2(...)`, as kept by kernels that scale
/// scores by `log2(e)`) to the natural log star uses: `lse * ln 2`.
/// @param lse_log2  [any] base-2 log-sum-exp
inline at::Tensor lse_from_log2(const at::Tensor& lse_log2) {
  return guarded("lse_from_log2", [&] { return lse_log2 * std::log(2.0); });  // lse's shape
}

/// @brief The fused CUDA kernel LibTorch's own `scaled_dot_product_attention` would run for
/// q, k, v (not causal, no mask or dropout), which `attention_with_lse` tries first;
/// `std::nullopt` on the CPU, before LibTorch 2.5, or when SDPA would run none of the kernels
/// that return an LSE (its math path, say).
/// @param q      [B, H, T, D] queries
/// @param k      [B, H, T, D] keys
/// @param v      [B, H, T, Dv] values
/// @param scale  the logit scale
inline std::optional<attention_lse_source> sdpa_cuda_source(
    [[maybe_unused]] const at::Tensor& q, [[maybe_unused]] const at::Tensor& k,
    [[maybe_unused]] const at::Tensor& v, [[maybe_unused]] double scale) {
#if STAR_TORCH_VERSION_AT_LEAST(2, 5)
  if (!q.device().is_cuda()) return std::nullopt;
  try {
    const auto choice = static_cast<at::SDPBackend>(at::_fused_sdp_choice(
        q, k, v, /*attn_mask=*/c10::nullopt, /*dropout_p=*/0.0, /*is_causal=*/false, scale));
    switch (choice) {
      case at::SDPBackend::cudnn_attention:
        return attention_lse_source::fused_cuda_cudnn;
      case at::SDPBackend::flash_attention:
        return attention_lse_source::fused_cuda_flash;
      case at::SDPBackend::efficient_attention:
        return attention_lse_source::fused_cuda_efficient;
      default:
        break;
    }
  } catch (const c10::Error&) {
    // no fused kernel takes these inputs
  }
#endif
  return std::nullopt;
}

namespace attention_lse_detail {

/// @brief Checks q, k [B, H, T, D] with `T, D >= 1`, v [B, H, T, Dv], all floating point on
/// one device, and the scale; returns D.
inline std::int64_t check_qkv(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              std::optional<double> scale) {
  for (const auto& [arg, t] : {std::pair{"q", &q}, std::pair{"k", &k}, std::pair{"v", &v}}) {
    if (!t->defined()) throw value_error(std::string(arg) + ": the tensor is undefined");
    if (!at::isFloatingType(t->scalar_type()))
      throw value_error(std::string(arg) + ": expected a floating dtype, got " +
                        c10::toString(t->scalar_type()));
  }
  const shape q_shape = shape_of(q);
  require_rank("q", q_shape, 4, "[B, H, T, D]");
  if (q_shape[2] < 1 || q_shape[3] < 1)
    throw shape_error("q: expected [B, H, T, D] with T >= 1 and D >= 1, got shape " +
                      to_string(q_shape));
  require_shape("k", shape_of(k), q_shape, "[B, H, T, D] (the shape of q)");
  const shape v_shape = shape_of(v);
  require_rank("v", v_shape, 4, "[B, H, T, Dv]");
  if (v_shape[0] != q_shape[0] || v_shape[1] != q_shape[1] || v_shape[2] != q_shape[2])
    throw shape_error("v: expected shape [B, H, T, Dv] with B, H, T of q " + to_string(q_shape) +
                      ", got " + to_string(v_shape));
  if (k.device() != q.device() || v.device() != q.device())
    throw value_error("k, v: expected tensors on q's device " + q.device().str() + ", got " +
                      k.device().str() + " and " + v.device().str());
  if (scale && !(std::isfinite(*scale) && *scale > 0.0))
    throw option_error("scale: expected a finite value > 0, got " + std::to_string(*scale));
  return q_shape[3];
}

/// @brief The online softmax over key chunks: output and natural-log LSE, accumulated in
/// float32 (float64 for float64 inputs).
inline attention_with_lse_result chunked_attention(const at::Tensor& q, const at::Tensor& k,
                                                   const at::Tensor& v, double scale,
                                                   std::int64_t key_chunk) {
  const auto accumulate = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto queries = q.to(accumulate);  // [B, H, T, D]
  const auto keys = k.to(accumulate);     // [B, H, T, D]
  const auto values = v.to(accumulate);   // [B, H, T, Dv]
  const std::int64_t tokens = q.size(2);
  at::Tensor running_max, running_sum, running_output;  // [B, H, T, 1], same, [B, H, T, Dv]
  for (std::int64_t begin = 0; begin < tokens; begin += key_chunk) {
    const std::int64_t end = std::min(begin + key_chunk, tokens);
    const auto scores = at::matmul(queries, keys.slice(2, begin, end).transpose(2, 3)) *
                        scale;                              // [B, H, T, chunk]
    const auto max = std::get<0>(scores.max(-1, true));     // [B, H, T, 1]
    const auto weights = at::exp(scores - max);             // [B, H, T, chunk]
    const auto sum = weights.sum(-1, true);                 // [B, H, T, 1]
    const auto output = at::matmul(weights, values.slice(2, begin, end));  // [B, H, T, Dv]
    if (begin == 0) {
      running_max = max, running_sum = sum, running_output = output;
      continue;
    }
    const auto merged_max = at::maximum(running_max, max);  // [B, H, T, 1]
    const auto keep = at::exp(running_max - merged_max);    // [B, H, T, 1]
    const auto add = at::exp(max - merged_max);             // [B, H, T, 1]
    running_sum = running_sum * keep + sum * add;           // [B, H, T, 1]
    running_output = running_output * keep + output * add;  // [B, H, T, Dv]
    running_max = merged_max;
  }
  return {(running_output / running_sum).to(q.scalar_type()),   // [B, H, T, Dv]
          (at::log(running_sum) + running_max).squeeze(-1),      // [B, H, T]
          attention_lse_source::chunked};
}

/// @brief The CUDA kernel `source`'s output and LSE, where this LibTorch has it for q's dtype;
/// `std::nullopt` otherwise (or when the kernel rejects the inputs).
inline std::optional<attention_with_lse_result> cuda_kernel_attention(
    [[maybe_unused]] attention_lse_source source, [[maybe_unused]] const at::Tensor& q,
    [[maybe_unused]] const at::Tensor& k, [[maybe_unused]] const at::Tensor& v,
    [[maybe_unused]] double scale) {
  [[maybe_unused]] const bool half =
      q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16;
  [[maybe_unused]] const std::int64_t tokens = q.size(2);
  try {
#if STAR_TORCH_VERSION_AT_LEAST(2, 5)
    if (source == attention_lse_source::fused_cuda_cudnn) {
      const auto cudnn = at::_scaled_dot_product_cudnn_attention(
          q, k, v, /*attn_bias=*/c10::nullopt, /*compute_log_sumexp=*/true, /*dropout_p=*/0.0,
          /*is_causal=*/false, /*return_debug_mask=*/false,
          /*scale=*/scale);  // output [B, H, T, Dv], logsumexp [B, H, T(, 1)], ...
      return attention_with_lse_result{std::get<0>(cudnn),             // [B, H, T, Dv]
                                       std::get<1>(cudnn).flatten(2),  // [B, H, T]
                                       source};
    }
#endif
#if STAR_TORCH_VERSION_AT_LEAST(2, 2)
    if (source == attention_lse_source::fused_cuda_flash && half) {
      const auto flash = at::_scaled_dot_product_flash_attention(
          q, k, v, /*dropout_p=*/0.0, /*is_causal=*/false, /*return_debug_mask=*/false,
          /*scale=*/scale);  // output [B, H, T, Dv], logsumexp [B, H, T], ...
      return attention_with_lse_result{std::get<0>(flash),                      // [B, H, T, Dv]
                                       std::get<1>(flash).slice(2, 0, tokens),  // [B, H, T]
                                       source};
    }
#endif
#if STAR_TORCH_VERSION_AT_LEAST(2, 1)
    if (source == attention_lse_source::fused_cuda_efficient &&
        (half || q.scalar_type() == at::kFloat)) {
      auto [output, lse, seed, offset] = at::_scaled_dot_product_efficient_attention(
          q, k, v, /*attn_bias=*/c10::nullopt, /*compute_log_sumexp=*/true, /*dropout_p=*/0.0,
          /*is_causal=*/false, /*scale=*/scale);  // [B, H, T, Dv], [B, H, T'] (T' >= T)
      return attention_with_lse_result{output, lse.slice(2, 0, tokens),  // [B, H, T]
                                       source};
    }
#endif
  } catch (const c10::Error&) {
    // inputs the kernel rejects (e.g. a head dimension it lacks): the caller tries the next
  }
  return std::nullopt;
}

/// @brief The fused kernel's output and LSE where this LibTorch has one for q's device and
/// dtype, in the order of the file notes; `std::nullopt` otherwise.
inline std::optional<attention_with_lse_result> fused_attention(const at::Tensor& q,
                                                                const at::Tensor& k,
                                                                const at::Tensor& v,
                                                                double scale) {
#if STAR_TORCH_VERSION_AT_LEAST(2, 3)
  if (q.device().is_cpu() && (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble ||
                              q.scalar_type() == at::kBFloat16)) {
    try {
      auto [output, lse] = at::_scaled_dot_product_flash_attention_for_cpu(
          q, k, v, /*dropout_p=*/0.0, /*is_causal=*/false, /*attn_mask=*/c10::nullopt,
          /*scale=*/scale);  // [B, H, T, Dv], [B, H, T]
      return attention_with_lse_result{output, lse, attention_lse_source::fused_cpu_flash};
    } catch (const c10::Error&) {
      return std::nullopt;
    }
  }
#endif
  if (!q.device().is_cuda()) return std::nullopt;
  const auto preferred = sdpa_cuda_source(q, k, v, scale);
  if (preferred)
    if (auto result = cuda_kernel_attention(*preferred, q, k, v, scale)) return result;
  for (const auto source :
       {attention_lse_source::fused_cuda_flash, attention_lse_source::fused_cuda_efficient})
    if (source != preferred)
      if (auto result = cuda_kernel_attention(source, q, k, v, scale)) return result;
  return std::nullopt;
}

/// @brief What the image-to-text read-out uses of a block, in the backend's compute dtype.
struct selected_rows {
  at::Tensor q_image;     ///< [B, H, N, D] the image queries
  at::Tensor k_selected;  ///< [B, H, S, D] the keys of the selected text columns
  at::Tensor lse;         ///< [B, H, N] the LSE of the image rows
};

/// @brief Checks q, k [B, H, T, D], lse [B, H, T] and the columns, gathers the image rows of q
/// and lse and the selected rows of k in their own dtype, and converts only those to
/// `be.dtype()` (converting all of q and k first would convert the T - S unused key rows too).
inline selected_rows gather_selected_rows(const backend& be, const at::Tensor& q,
                                          const at::Tensor& k, const token_layout& layout,
                                          std::span<const std::int64_t> columns,
                                          const at::Tensor& lse) {
  for (const auto& [arg, t] : {std::pair{"q", &q}, std::pair{"k", &k}, std::pair{"lse", &lse}})
    be.require_input(*t, arg);
  // q_image [B, H, N, D], k_selected [B, H, S, D]
  const auto rows = attention_detail::gather_image_text_rows(be, q, k, layout, columns);
  const shape q_shape = shape_of(q);
  require_shape("lse", shape_of(lse), {q_shape[0], q_shape[1], q_shape[2]},
                "[B, H, T] (B, H, T of q)");
  const std::int64_t image_begin = layout.image_begin();
  // q, k and lse passed require_input above: convert without checking them again
  return guarded("gather_selected_rows", [&]() -> selected_rows {
    return {rows.q_image.to(be.dtype()),     // [B, H, N, D]
            rows.k_selected.to(be.dtype()),  // [B, H, S, D]
            lse.slice(2, image_begin, image_begin + layout.image_tokens())
                .to(be.dtype())};  // [B, H, N]
  });
}

}  // namespace attention_lse_detail

/// @brief Joint attention `softmax(s q k^T) v` and the natural-log LSE of every row, from a
/// fused kernel where available (see the file notes), else chunked. Not causal, no dropout.
/// The output carries q's, k's and v's gradient; the LSE carries none.
/// Throws `shape_error` / `value_error` / `option_error` naming the argument.
/// @param q          [B, H, T, D] queries (any floating dtype), T and D >= 1
/// @param k          [B, H, T, D] keys, on q's device
/// @param v          [B, H, T, Dv] values, on q's device
/// @param scale      logit scale `s`; unset: `1 / sqrt(D)`
/// @param key_chunk  keys per chunk of the fallback, >= 1
inline attention_with_lse_result attention_with_lse(const at::Tensor& q, const at::Tensor& k,
                                                    const at::Tensor& v,
                                                    std::optional<double> scale = std::nullopt,
                                                    std::int64_t key_chunk = 256) {
  const std::int64_t head_dim = attention_lse_detail::check_qkv(q, k, v, scale);
  if (key_chunk < 1)
    throw option_error("key_chunk: expected >= 1, got " + std::to_string(key_chunk));
  const double s = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
  auto result = attention_lse_detail::fused_attention(q, k, v, s);
  if (!result)
    result = guarded("attention_with_lse", [&] {
      return attention_lse_detail::chunked_attention(q, k, v, s, key_chunk);
    });
  result->lse = result->lse.detach();  // [B, H, T], a constant of the objective on every path
  return *std::move(result);
}

/// @brief The image-to-text probabilities of the selected text columns from q, k and the LSE
/// of `attention_with_lse` (its image rows): `star::image_to_text_probabilities` on the
/// backend `be` of the image rows of q and the selected rows of k, which alone are converted
/// to the compute dtype (`be.to_compute_dtype`).
/// @param be       the backend (device and compute dtype)
/// @param q        [B, H, T, D] post-QK-norm queries, on `be.device()`, any floating dtype
/// @param k        [B, H, T, D] post-QK-norm keys
/// @param layout   where the image and text tokens sit in `T`
/// @param columns  [S] text-block indices `j`
/// @param lse      [B, H, T] natural-log LSE of every row (`attention_with_lse(...).lse`)
/// @param options  the logit scale (the one the LSE was computed with); image_to_text only
/// @return         [B, H, N, S] in `be.dtype()`, no gradient
inline at::Tensor selected_attention_probabilities(const backend& be, const at::Tensor& q,
                                                   const at::Tensor& k, const token_layout& layout,
                                                   std::span<const std::int64_t> columns,
                                                   const at::Tensor& lse,
                                                   const attention_options& options = {}) {
  at::NoGradGuard no_grad;
  // q_image [B, H, N, D], k_selected [B, H, S, D], lse [B, H, N]
  const auto rows = attention_lse_detail::gather_selected_rows(be, q, k, layout, columns, lse);
  return image_to_text_probabilities(be, rows.q_image, rows.k_selected, rows.lse,
                                     options);  // [B, H, N, S]
}

/// @brief The relevance map of one block from q, k and the LSE of `attention_with_lse`:
/// `star::relevance_map` of `selected_attention_probabilities` (selected columns only).
/// @param be         the backend (device and compute dtype)
/// @param q          [B, H, T, D] post-QK-norm queries, on `be.device()`, any floating dtype
/// @param k          [B, H, T, D] post-QK-norm keys
/// @param layout     where the image and text tokens sit in `T`
/// @param selection  the text columns and their weights
/// @param lse        [B, H, T] natural-log LSE of every row
/// @param options    the logit scale (the one the LSE was computed with); image_to_text only
/// @return           [B, N] in `be.dtype()`, no gradient
inline at::Tensor selected_block_relevance(const backend& be, const at::Tensor& q,
                                           const at::Tensor& k, const token_layout& layout,
                                           const text_selection& selection, const at::Tensor& lse,
                                           const attention_options& options = {}) {
  const auto probabilities = selected_attention_probabilities(be, q, k, layout, selection.indices,
                                                              lse, options);  // [B, H, N, S]
  return relevance_map(be, probabilities, selection.weights);                 // [B, N]
}

/// @brief Adds the relevance map of block `block` from q, k and the LSE of
/// `attention_with_lse` to `accumulator` when its filter admits the block, converting only the
/// image rows of q and the selected rows of k to the compute dtype. Reads nothing back to the
/// host (a NaN or Inf surfaces at `accumulator.result()`), so on CUDA it does not wait for
/// the device.
/// @param accumulator  the maps of this forward; holds the backend and the selection
/// @param block        the transformer block index, >= 0
/// @param q            [B, H, T, D] post-QK-norm queries, on the backend's device, any
///                     floating dtype
/// @param k            [B, H, T, D] post-QK-norm keys
/// @param layout       where the image and text tokens sit in `T`
/// @param lse          [B, H, T] natural-log LSE of every row
/// @return             whether the map was added
inline bool add_selected_block(lse_relevance_accumulator<backend>& accumulator, std::int64_t block,
                               const at::Tensor& q, const at::Tensor& k,
                               const token_layout& layout, const at::Tensor& lse) {
  if (!accumulator.admits(block)) return false;
  at::NoGradGuard no_grad;
  const auto rows = attention_lse_detail::gather_selected_rows(  // [B, H, N | S, D], [B, H, N]
      accumulator.backend(), q, k, layout, accumulator.selection().indices, lse);
  return accumulator.add_selected_rows(block, rows.q_image, rows.k_selected, rows.lse);
}

}  // namespace star::libtorch
