#pragma once
/// @file
/// @brief The host-side checks of the LibTorch CUDA wrappers (star/torch/cuda_ops.hpp), one
/// per wrapper, taking its arguments: shapes (against each other and the token layout),
/// dtypes, one device for every tensor, column indices, weights, scalars and options, and the
/// limits of the launchers (star/core/kernel_limits.hpp), so that input the checks accept is never
/// rejected by a launcher (`cudaErrorInvalidValue`). The wrappers call them first, before
/// anything is allocated or launched. Errors name the argument and print the shapes. The
/// checks need no CUDA (they accept tensors on any one device) and read no tensor values (no
/// device synchronisation): NaN or Inf inside a tensor is not caught here.

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "star/allocation/allocation_options.hpp"
#include "star/attention/joint_qk.hpp"
#include "star/attention/text_selection.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "star/core/token_layout.hpp"
#include "star/core/value_checks.hpp"
#include "star/core/kernel_limits.hpp"
#include "star/torch/backend.hpp"
#include "star/torch/tensor_views.hpp"

namespace star::libtorch {

namespace cuda_check_detail {

/// @brief The largest finite float32, the type in which the kernels read every scalar.
inline constexpr double max_float32 = std::numeric_limits<float>::max();

using star::detail::printed;

/// @brief Throws `value_error` naming `arg` unless `t` is defined.
inline void require_defined(const at::Tensor& t, std::string_view arg) {
  if (!t.defined()) throw value_error(std::string(arg) + ": the tensor is undefined");
}

/// @brief Throws `value_error` naming `arg` unless `t` holds float32, float16 or bfloat16,
/// the element types the kernels read.
inline void require_kernel_dtype(const at::Tensor& t, std::string_view arg) {
  const auto dtype = t.scalar_type();
  if (dtype != at::kFloat && dtype != at::kHalf && dtype != at::kBFloat16)
    throw value_error(std::string(arg) + ": expected float32, float16 or bfloat16, got " +
                      c10::toString(dtype));
}

/// @brief Throws `shape_error` naming `arg` unless extent `axis` of `dims` (the letter
/// `letter` of `layout`) is in `[1, limit]`.
inline void require_extent(std::string_view arg, const shape& dims, std::size_t axis,
                           std::string_view letter, std::int64_t limit,
                           std::string_view layout) {
  if (dims[axis] < 1 || dims[axis] > limit)
    throw shape_error(std::string(arg) + ": " + std::string(letter) + " = " +
                      std::to_string(dims[axis]) + " is outside [1, " + std::to_string(limit) +
                      "] (the fused kernel's limit), got shape " + std::string(layout) + " = " +
                      to_string(dims));
}

/// @brief Checks a tensor that goes with `reference` (named `reference_arg`): defined, of
/// shape `expected` (`layout` in the docs' letters), floating point, on the device of
/// `reference`; throws `value_error` / `shape_error` naming `arg`.
inline void require_companion(const at::Tensor& t, std::string_view arg, const shape& expected,
                              std::string_view layout, const at::Tensor& reference,
                              std::string_view reference_arg) {
  require_defined(t, arg);
  require_shape(arg, shape_of(t), expected, layout);
  if (!at::isFloatingType(t.scalar_type()))
    throw value_error(std::string(arg) + ": expected a floating-point tensor, got " +
                      c10::toString(t.scalar_type()));
  if (t.device() != reference.device())
    throw value_error(std::string(arg) + ": expected a tensor on the device of " +
                      std::string(reference_arg) + " (" + reference.device().str() +
                      "), got one on " + t.device().str());
}

/// @brief Throws `option_error` naming `field` unless `value` is finite and within the range
/// of float32.
inline void require_float32(double value, std::string_view field) {
  if (!(std::abs(value) <= max_float32))
    throw option_error(std::string(field) + ": expected a finite float32 value, got " +
                       printed(value));
}

/// @brief Throws `option_error` naming `field` unless `value` is finite and > 0, also once
/// rounded to float32.
inline void require_positive_float32(double value, std::string_view field) {
  if (!(value > 0.0 && value <= max_float32 && static_cast<float>(value) > 0.0f))
    throw option_error(std::string(field) + ": expected a finite value > 0 (in float32 too), got " +
                       printed(value));
}

/// @brief Whether two elements of `t` may share memory: ATen's answer where it has one; for
/// the strided views ATen finds too hard, unless each stride (ascending, extents > 1) reaches
/// past every offset the smaller strides span.
inline bool elements_may_overlap(const at::Tensor& t) {
  const auto overlap = at::has_internal_overlap(t);
  if (overlap != at::MemOverlap::TooHard) return overlap == at::MemOverlap::Yes;
  std::vector<std::pair<std::int64_t, std::int64_t>> steps;  // (|stride|, extent), extent > 1
  for (std::int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) > 1) steps.emplace_back(std::abs(t.stride(d)), t.size(d));
  std::sort(steps.begin(), steps.end());
  std::int64_t span = 0;  // the largest offset the smaller strides reach
  for (const auto& [stride, extent] : steps) {
    if (stride <= span) return true;
    span += stride * (extent - 1);
  }
  return false;
}

}  // namespace cuda_check_detail

/// @brief Options of `token_objective_cuda` (those of `policy_objective_options` that token
/// mode reads).
struct cuda_token_objective_options {
  double token_clip_range = 2e-3;  ///< `eps_tok`, in (0, 1)
  double beta = 0.0;               ///< KL weight, >= 0
  bool kl_weighted_by_allocation = false;  ///< `mean W kl` instead of `mean kl`

  /// @brief Throws `option_error` naming the field outside its range, checked in float32 as
  /// the kernels read it too.
  void validate() const {
    // cast after the range test: converting a double beyond float32's range is undefined
    if (!(token_clip_range > 0.0 && token_clip_range < 1.0 &&
          static_cast<float>(token_clip_range) > 0.0f &&
          static_cast<float>(token_clip_range) < 1.0f))
      throw option_error(
          "cuda_token_objective_options.token_clip_range: expected a value in (0, 1) (in "
          "float32 too), got " + cuda_check_detail::printed(token_clip_range));
    if (!(beta >= 0.0 && beta <= cuda_check_detail::max_float32))
      throw option_error("cuda_token_objective_options.beta: expected a finite float32 value "
                         ">= 0, got " + cuda_check_detail::printed(beta));
  }
};

/// @brief The checks of `accumulate_relevance_cuda`: `layout` valid; q, k [B, H, T, D] of
/// one dtype (float32, float16, bfloat16) with `T = layout.total_tokens()`,
/// `B, H <= star::cuda::max_grid_yz` and `D <= star::cuda::max_readout_head_dim`; lse
/// [B, H, T] floating point; relevance [B, N] float32 when defined, its elements apart
/// (`elements_may_overlap` false); all on the device of q; columns non-empty in `[0, L)`;
/// one weight per column, finite, >= 0 and within float32; scale > 0 and block_weight
/// finite, in float32 too. Throws `shape_error`, `value_error` or `option_error` naming the
/// argument.
/// @return the extents of q
inline joint_qk_dims check_accumulate_relevance_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse, const token_layout& layout,
    std::span<const std::int64_t> columns, std::span<const double> weights, double scale,
    double block_weight, const at::Tensor& relevance) {
  using namespace cuda_check_detail;
  require_defined(q, "q");
  require_defined(k, "k");
  const joint_qk_dims dims = check_joint_qk(backend(), q, k, layout);
  const shape q_shape = shape_of(q);
  require_extent("q", q_shape, 0, "B", star::cuda::max_grid_yz, "[B, H, T, D]");
  require_extent("q", q_shape, 1, "H", star::cuda::max_grid_yz, "[B, H, T, D]");
  require_extent("q", q_shape, 3, "D", star::cuda::max_readout_head_dim, "[B, H, T, D]");
  require_kernel_dtype(q, "q");
  if (k.scalar_type() != q.scalar_type())
    throw value_error(std::string("k: expected the dtype of q (") + c10::toString(q.scalar_type()) +
                      "), got " + c10::toString(k.scalar_type()));
  require_companion(k, "k", q_shape, "[B, H, T, D] (the shape of q)", q, "q");
  require_companion(lse, "lse", {dims.batch, dims.heads, dims.tokens}, "[B, H, T]", q, "q");
  if (relevance.defined()) {
    require_companion(relevance, "relevance", {dims.batch, layout.image_tokens()}, "[B, N]", q,
                      "q");
    if (relevance.scalar_type() != at::kFloat)
      throw value_error(std::string("relevance: expected a float32 accumulator, got ") +
                        c10::toString(relevance.scalar_type()));
    // the kernel adds into every element from its own thread: elements sharing memory race
    if (elements_may_overlap(relevance))
      throw value_error("relevance: its elements may overlap in memory (e.g. an expanded "
                        "tensor); expected a writable [B, N] accumulator with one element per "
                        "entry, its strides apart (ascending, each past the span of the last)");
  }
  require_text_columns("columns", columns, layout);
  if (weights.size() != columns.size())
    throw shape_error("weights: expected shape [S] = [" + std::to_string(columns.size()) +
                      "] (one per column), got [" + std::to_string(weights.size()) + "]");
  star::detail::require_finite_nonnegative("weights", weights);
  for (std::size_t j = 0; j < weights.size(); ++j)
    if (weights[j] > max_float32)
      throw value_error("weights: entry " + std::to_string(j) + " is " + printed(weights[j]) +
                        ", beyond the float32 range the kernel reads");
  require_positive_float32(scale, "scale");
  require_float32(block_weight, "block_weight");
  return dims;
}

/// @brief The checks of `allocate_cuda`: relevance [B, N] float32, float16 or bfloat16 with
/// `1 <= N <= star::cuda::max_allocation_tokens`; tau finite and > 0, in float32 too; lambda
/// [B] floating point on the device of relevance when given; w_max finite, >= 1 and within
/// float32 when given. Throws `shape_error`, `value_error` or `option_error` naming the
/// argument.
inline void check_allocate_cuda(const at::Tensor& relevance, double tau,
                                const std::optional<at::Tensor>& lambda,
                                std::optional<double> w_max) {
  using namespace cuda_check_detail;
  require_defined(relevance, "relevance");
  const shape dims = shape_of(relevance);
  require_rank("relevance", dims, 2, "[B, N]");
  require_extent("relevance", dims, 0, "B", star::cuda::max_grid_x, "[B, N]");
  require_extent("relevance", dims, 1, "N", star::cuda::max_allocation_tokens, "[B, N]");
  require_kernel_dtype(relevance, "relevance");
  require_positive_float32(tau, "tau");
  if (lambda) require_companion(*lambda, "lambda", {dims[0]}, "[B]", relevance, "relevance");
  if (w_max) {
    allocation_options::require_valid_cap(*w_max, "w_max");
    require_float32(*w_max, "w_max");
  }
}

/// @brief The checks of `token_objective_cuda`: options valid; log_prob [R, N] float32,
/// float16 or bfloat16; old_log_prob, allocation (and kl when defined) [R, N], advantages
/// (and step_weights when defined) [R], floating point, all on the device of log_prob; kl
/// defined when `beta > 0`. Throws `shape_error`, `value_error` or `option_error` naming the
/// argument.
inline void check_token_objective_cuda(const at::Tensor& log_prob, const at::Tensor& old_log_prob,
                                       const at::Tensor& allocation, const at::Tensor& advantages,
                                       const at::Tensor& step_weights, const at::Tensor& kl,
                                       const cuda_token_objective_options& options) {
  using namespace cuda_check_detail;
  options.validate();
  require_defined(log_prob, "log_prob");
  const shape dims = shape_of(log_prob);
  require_rank("log_prob", dims, 2, "[R, N]");
  require_extent("log_prob", dims, 0, "R", star::cuda::max_grid_x, "[R, N]");
  if (dims[1] < 1)
    throw shape_error("log_prob: expected at least one token, got shape [R, N] = " +
                      to_string(dims));
  require_kernel_dtype(log_prob, "log_prob");
  const shape rows{dims[0]};
  require_companion(old_log_prob, "old_log_prob", dims, "[R, N] like log_prob", log_prob,
                    "log_prob");
  require_companion(allocation, "allocation", dims, "[R, N] like log_prob", log_prob, "log_prob");
  require_companion(advantages, "advantages", rows, "[R]", log_prob, "log_prob");
  if (step_weights.defined())
    require_companion(step_weights, "step_weights", rows, "[R]", log_prob, "log_prob");
  if (kl.defined())
    require_companion(kl, "kl", dims, "[R, N] like log_prob", log_prob, "log_prob");
  else if (options.beta > 0.0)
    throw option_error("kl: beta = " + printed(options.beta) +
                       " > 0 needs the per-token KL [R, N]");
}

}  // namespace star::libtorch
