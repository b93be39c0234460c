#pragma once
/// @file
/// @brief LibTorch entry points of the fused CUDA kernels (include/star/cuda/): the relevance
/// read-out and the allocation (no gradient), and the token-mode objective as an autograd
/// function whose backward is the fused gradient kernel. Each checks its arguments first
/// (star/torch/cuda_op_checks.hpp), then that they are on a CUDA device, which it makes the
/// current one while it works (the tensors may live on another GPU than the current one);
/// launches go to that device's current CUDA stream; workspace comes from the caching
/// allocator.
/// Compiled by the host compiler (C++20; LibTorch headers are not parsed by nvcc): the
/// kernels are linked from one nvcc-compiled file of the program that includes
/// star/cuda/instantiate.cuh. Provided only where LibTorch's CUDA headers and the CUDA
/// runtime headers are both reachable (a LibTorch with CUDA); elsewhere this header is empty.

#include <ATen/ATen.h>
#include <torch/autograd.h>

#if __has_include(<c10/cuda/impl/cuda_cmake_macros.h>) && __has_include(<cuda_runtime.h>)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "star/core/error.hpp"
#include "star/core/token_layout.hpp"
#include "star/cuda/api.cuh"
#include "star/torch/cuda_op_checks.hpp"
#include "star/torch/tensor_views.hpp"

namespace star::libtorch {

namespace cuda_detail {

/// @brief Throws `star::error` naming `what` unless `status` is `cudaSuccess`.
inline void check(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess)
    throw error(what + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

/// @brief The kernel element type of an ATen element type.
template <class A>
using kernel_element = std::conditional_t<
    std::is_same_v<A, at::Half>, __half,
    std::conditional_t<std::is_same_v<A, at::BFloat16>, __nv_bfloat16, float>>;

/// @brief A view of `t` (dtype `A`, on `device`) with the kernel's element type.
template <class A, std::size_t Rank>
strided_view<const kernel_element<A>, Rank> kernel_view(const at::Tensor& t, std::string_view arg,
                                                        at::Device device) {
  const auto view = view_of<const A, Rank>(t, arg, device);
  return {reinterpret_cast<const kernel_element<A>*>(view.data), view.extents, view.strides};
}

/// @brief Calls `f.template operator()<A>()` for the ATen element type of `dtype`
/// (float32, float16, bfloat16); throws `value_error` naming `arg` otherwise.
template <class F>
auto dispatch(at::ScalarType dtype, std::string_view arg, F&& f) {
  switch (dtype) {
    case at::kFloat: return f.template operator()<float>();
    case at::kHalf: return f.template operator()<at::Half>();
    case at::kBFloat16: return f.template operator()<at::BFloat16>();
    default:
      throw value_error(std::string(arg) + ": expected float32, float16 or bfloat16, got " +
                        c10::toString(dtype));
  }
}

/// @brief Throws `value_error` naming `arg` unless `t` is a CUDA tensor.
/// @return the device of `t`
inline at::Device require_cuda(const at::Tensor& t, std::string_view arg) {
  if (!t.defined() || !t.is_cuda())
    throw value_error(std::string(arg) + ": expected a defined CUDA tensor");
  return t.device();
}

/// @brief The current CUDA stream of `device`, where every launch goes.
inline cudaStream_t current_stream(at::Device device) {
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
}

/// @brief Caller-owned workspace for a launcher: `bytes` from the caching allocator.
inline at::Tensor workspace(std::size_t bytes, at::Device device) {
  return at::empty({static_cast<std::int64_t>(bytes > 0 ? bytes : 1)},
                   at::TensorOptions().dtype(at::kByte).device(device));  // [bytes]
}

/// @brief The read-out launcher's inputs over LibTorch tensors of ATen type `A` (checked by the
/// caller; `weights` must outlive the launch call); `accumulate`: add to the relevance, else
/// overwrite it.
template <class A>
star::cuda::readout_inputs<kernel_element<A>> readout_inputs_of(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse_float,
    std::span<const std::int64_t> columns, std::span<const float> weights, double scale,
    double block_weight, bool accumulate, at::Device device) {
  return {kernel_view<A, 4>(q, "q", device),
          kernel_view<A, 4>(k, "k", device),
          view_of<const float, 3>(lse_float, "lse", device),
          columns,
          weights,
          static_cast<float>(scale),
          static_cast<float>(block_weight),
          accumulate};
}

}  // namespace cuda_detail

/// @brief What `accumulate_relevance_cuda` returns.
struct cuda_readout_result {
  at::Tensor relevance;      ///< [B, N] float32, the accumulated maps
  at::Tensor probabilities;  ///< [B, H, N, S] float32 when requested, else undefined
};

/// @brief Adds one block's relevance map `block_weight * sum_j w_j mean_h P[b,h,n,j]` to
/// `relevance` with the fused read-out kernel (no gradient).
/// @param q          [B, H, T, D] CUDA, float32 / float16 / bfloat16, any strides
/// @param k          [B, H, T, D] like `q`
/// @param lse        [B, H, T] log-sum-exp of every row of the joint sequence over all keys
///                   (e.g. `attention_with_lse(...).lse`; converted to float32); the kernel
///                   reads the image rows
/// @param layout     where the image and text tokens sit in `T`
/// @param columns    [S] text-block indices `j`
/// @param weights    [S] `w_j`, finite and >= 0
/// @param scale      logit scale `s` (`1 / sqrt(D)` for SD3)
/// @param block_weight factor of this block's map (e.g. `1 / |Λ|`)
/// @param relevance  [B, N] float32 CUDA accumulator, added to in place; undefined: a new
///                   tensor holding this block's map
/// @param with_probabilities also return the probabilities
inline cuda_readout_result accumulate_relevance_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse, const token_layout& layout,
    std::span<const std::int64_t> columns, std::span<const double> weights, double scale,
    double block_weight = 1.0, at::Tensor relevance = {}, bool with_probabilities = false) {
  const joint_qk_dims dims = check_accumulate_relevance_cuda(q, k, lse, layout, columns, weights,
                                                             scale, block_weight, relevance);
  const at::Device device = cuda_detail::require_cuda(q, "q");
  const c10::cuda::CUDAGuard on_device(device);
  const std::int64_t image = layout.image_tokens();
  const auto options = at::TensorOptions().dtype(at::kFloat).device(device);
  const bool accumulate = relevance.defined();
  if (!accumulate) relevance = at::empty({dims.batch, image}, options);  // [B, N], all written
  const at::Tensor lse_float = lse.to(at::kFloat);                       // [B, H, T]
  const at::Tensor probabilities =
      with_probabilities ? at::empty({dims.batch, dims.heads, image,
                                      static_cast<std::int64_t>(columns.size())},
                                     options)
                         : at::Tensor();  // [B, H, N, S]
  const std::size_t bytes = star::cuda::relevance_workspace_bytes(dims.batch, dims.heads, image);
  const at::Tensor scratch = cuda_detail::workspace(bytes, device);  // [bytes]
  const std::vector<float> float_weights(weights.begin(), weights.end());
  cuda_detail::dispatch(q.scalar_type(), "q", [&]<class A>() {
    const auto in = cuda_detail::readout_inputs_of<A>(q, k, lse_float, columns, float_weights,
                                                      scale, block_weight, accumulate, device);
    cuda_detail::check(
        star::cuda::accumulate_relevance(
            in, layout, view_of<float, 2>(relevance, "relevance", device),
            probabilities.defined() ? view_of<float, 4>(probabilities, "probabilities", device)
                                    : strided_view<float, 4>{},
            scratch.data_ptr(), bytes, cuda_detail::current_stream(device)),
        "accumulate_relevance_cuda");
  });
  return {relevance, probabilities};
}

/// @brief What `allocate_cuda` returns (all on the device, nothing read back).
struct cuda_allocation_result {
  at::Tensor weights;  ///< [B, N] float32 `W`, mean 1 per row
  at::Tensor lambda;   ///< [B] float32
  at::Tensor entropy;  ///< [B] float32 `H(m)`, nats
  /// [B] int32 entries held at `w_max`; -1: a row with a negative or non-finite relevance
  /// entry or a bad `lambda`, its other outputs NaN
  at::Tensor capped;
};

/// @brief Allocation weights of each row with the fused kernel, as `star::allocate` defines
/// them (no gradient).
/// @param relevance [B, N] CUDA float32 / float16 / bfloat16, N <= 4096
/// @param tau       sharpening temperature, > 0
/// @param lambda    [B] per-row `lambda` in [0, 1] (any float dtype; a row whose `lambda` is
///                  outside or NaN gets `capped = -1`); unset: the entropy schedule
/// @param w_max     the cap, >= 1; unset: off
inline cuda_allocation_result allocate_cuda(const at::Tensor& relevance, double tau = 1.0,
                                            const std::optional<at::Tensor>& lambda = std::nullopt,
                                            std::optional<double> w_max = std::nullopt) {
  check_allocate_cuda(relevance, tau, lambda, w_max);
  const at::Device device = cuda_detail::require_cuda(relevance, "relevance");
  const c10::cuda::CUDAGuard on_device(device);
  const std::int64_t rows = relevance.size(0);
  const auto options = at::TensorOptions().dtype(at::kFloat).device(device);
  cuda_allocation_result result{at::empty(relevance.sizes(), options),   // [B, N]
                                at::empty({rows}, options),              // [B]
                                at::empty({rows}, options),              // [B]
                                at::empty({rows}, options.dtype(at::kInt))};  // [B]
  const at::Tensor given = lambda ? lambda->to(options).contiguous() : at::Tensor();  // [B]
  cuda_detail::dispatch(relevance.scalar_type(), "relevance", [&]<class A>() {
    const star::cuda::allocation_params params{
        static_cast<float>(tau), given.defined() ? given.data_ptr<float>() : nullptr,
        static_cast<float>(w_max.value_or(0.0))};
    const star::cuda::allocation_outputs out{view_of<float, 2>(result.weights, "weights", device),
                                             result.lambda.data_ptr<float>(),
                                             result.entropy.data_ptr<float>(),
                                             result.capped.data_ptr<std::int32_t>()};
    cuda_detail::check(star::cuda::allocate_rows(
                           cuda_detail::kernel_view<A, 2>(relevance, "relevance", device), params,
                           out, cuda_detail::current_stream(device)),
                       "allocate_cuda");
  });
  return result;
}

/// @brief The token-mode objective as a `torch::autograd::Function`: forward is the fused
/// objective kernel, backward the fused gradient kernel (w.r.t. `log_prob` and `kl`).
/// Outputs: the loss `[]` and the metrics `[5]` (policy_loss, kl_loss, clip_fraction,
/// outside_clip_range_fraction, approx_kl), float32.
class token_objective_function : public torch::autograd::Function<token_objective_function> {
 public:
  /// @brief Inputs as `token_objective_cuda` documents them, checked there.
  static torch::autograd::variable_list forward(
      torch::autograd::AutogradContext* ctx, const at::Tensor& log_prob,
      const at::Tensor& old_log_prob, const at::Tensor& allocation, const at::Tensor& advantages,
      const at::Tensor& step_weights, const at::Tensor& kl, bool has_step_weights, bool has_kl,
      double clip_range, double beta, bool kl_weighted_by_allocation) {
    const c10::cuda::CUDAGuard on_device(log_prob.device());
    const auto prepared = prepare(log_prob, old_log_prob, allocation, advantages,
                                  has_step_weights ? step_weights : at::Tensor(),
                                  has_kl ? kl : at::Tensor());
    ctx->save_for_backward(prepared);
    // the gradients go back in the inputs' own dtypes (prepare may have widened them)
    ctx->saved_data["log_prob_dtype"] = static_cast<std::int64_t>(log_prob.scalar_type());
    ctx->saved_data["kl_dtype"] = static_cast<std::int64_t>(kl.scalar_type());
    ctx->saved_data["clip_range"] = clip_range;
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["kl_weighted_by_allocation"] = kl_weighted_by_allocation;
    const at::Device device = log_prob.device();
    const at::Tensor totals =
        at::empty({6}, at::TensorOptions().dtype(at::kFloat).device(device));  // [6]
    const std::size_t bytes = star::cuda::token_objective_workspace_bytes(log_prob.size(0));
    const at::Tensor scratch = cuda_detail::workspace(bytes, device);  // [bytes]
    const cudaStream_t stream = cuda_detail::current_stream(device);
    cuda_detail::check(cudaMemsetAsync(scratch.data_ptr(), 0, sizeof(unsigned), stream),
                       "zeroing the objective's count of finished rows");
    launch(prepared, {static_cast<float>(clip_range), static_cast<float>(beta),
                      kl_weighted_by_allocation},
           [&](const auto& in, const auto& params) {
             return star::cuda::token_objective_forward(
                 in, params,
                 reinterpret_cast<star::cuda::token_objective_totals*>(totals.data_ptr<float>()),
                 scratch.data_ptr(), bytes, stream);
           });
    // two tensors over the totals' memory that are not views of one base (LibTorch 2.x gives
    // no grad_fn to an output that is a view of the same base as a non-differentiable one):
    // no copy, no launch
    const at::Tensor loss =
        at::empty({0}, totals.options()).set_(totals.storage(), 0, {}, {});  // []
    const at::Tensor metrics =
        at::empty({0}, totals.options()).set_(totals.storage(), 1, {5}, {1});  // [5]
    ctx->mark_non_differentiable({metrics});
    return {loss, metrics};
  }

  /// @brief `d loss / d log_prob` and `d loss / d kl` from the fused gradient kernel.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& log_prob = saved[0];
    const c10::cuda::CUDAGuard on_device(log_prob.device());
    const bool has_kl = saved[5].defined();
    const auto options = at::TensorOptions().dtype(at::kFloat).device(log_prob.device());
    const at::Tensor upstream = grad_outputs[0].defined()
                                    ? grad_outputs[0].to(options).contiguous()
                                    : at::ones({}, options);          // []
    const at::Tensor d_log_prob = at::empty(log_prob.sizes(), options);  // [R, N]
    const at::Tensor d_kl = has_kl ? at::empty(log_prob.sizes(), options) : at::Tensor();  // [R, N]
    const at::Device device = log_prob.device();
    launch(saved,
           {static_cast<float>(ctx->saved_data["clip_range"].toDouble()),
            static_cast<float>(ctx->saved_data["beta"].toDouble()),
            ctx->saved_data["kl_weighted_by_allocation"].toBool()},
           [&](const auto& in, const auto& params) {
             const star::cuda::token_objective_gradient gradient{
                 upstream.data_ptr<float>(), view_of<float, 2>(d_log_prob, "d_log_prob", device),
                 has_kl ? view_of<float, 2>(d_kl, "d_kl", device) : strided_view<float, 2>{}};
             return star::cuda::token_objective_backward(in, params, gradient,
                                                         cuda_detail::current_stream(device));
           });
    const auto dtype = [&](const char* key) {
      return static_cast<at::ScalarType>(ctx->saved_data[key].toInt());
    };
    return {d_log_prob.to(dtype("log_prob_dtype")),  // [R, N]
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            has_kl ? d_kl.to(dtype("kl_dtype")) : at::Tensor(),  // [R, N]
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }

 private:
  /// @brief The (checked) inputs converted for the kernels: `[R, N]` tensors in the dtype of
  /// `log_prob` where they all have it, else all in float32 (rounding a float32 `ell_old` to
  /// bfloat16 would move `log rho` by more than the clip range); `[R]` tensors contiguous
  /// float32; `step_weights` and `kl` possibly undefined.
  static std::vector<at::Tensor> prepare(const at::Tensor& log_prob, const at::Tensor& old_log_prob,
                                         const at::Tensor& allocation, const at::Tensor& advantages,
                                         const at::Tensor& step_weights, const at::Tensor& kl) {
    const auto shared = log_prob.scalar_type();
    const bool one_dtype = old_log_prob.scalar_type() == shared &&
                           allocation.scalar_type() == shared &&
                           (!kl.defined() || kl.scalar_type() == shared);
    const auto dtype = one_dtype ? shared : at::kFloat;
    const auto row_options = at::TensorOptions().dtype(at::kFloat).device(log_prob.device());
    const auto as_rows = [&](const at::Tensor& t) {
      return t.detach().to(row_options).contiguous();  // [R]
    };
    return {log_prob.detach().to(dtype), old_log_prob.detach().to(dtype),  // [R, N], [R, N]
            allocation.detach().to(dtype),                                  // [R, N]
            as_rows(advantages),                                            // [R]
            step_weights.defined() ? as_rows(step_weights) : at::Tensor(),  // [R]
            kl.defined() ? kl.detach().to(dtype) : at::Tensor()};          // [R, N]
  }

  /// @brief Builds the kernel inputs from `prepare`d tensors and calls `launch(in, params)`.
  template <class Launch>
  static void launch(const std::vector<at::Tensor>& t,
                     const star::cuda::token_objective_params& params,
                     Launch&& launch_kernels) {
    const at::Device device = t[0].device();
    cuda_detail::dispatch(t[0].scalar_type(), "log_prob", [&]<class A>() {
      using K = cuda_detail::kernel_element<A>;
      const star::cuda::token_objective_inputs<K> in{
          cuda_detail::kernel_view<A, 2>(t[0], "log_prob", device),
          cuda_detail::kernel_view<A, 2>(t[1], "old_log_prob", device),
          cuda_detail::kernel_view<A, 2>(t[2], "allocation", device),
          t[3].data_ptr<float>(),
          t[4].defined() ? t[4].data_ptr<float>() : nullptr,
          t[5].defined() ? cuda_detail::kernel_view<A, 2>(t[5], "kl", device)
                         : strided_view<const K, 2>{}};
      cuda_detail::check(launch_kernels(in, params), "token_objective_cuda");
    });
  }
};

/// @brief The token-mode objective and its metrics, differentiable w.r.t. `log_prob` and
/// `kl` through the fused kernels: `(loss [], metrics [5])`, see `token_objective_function`.
/// Computed in the dtype of `log_prob` where the `[R, N]` inputs share it, else in float32.
/// @param log_prob     [R, N] CUDA `ell`, float32 / float16 / bfloat16
/// @param old_log_prob [R, N] `ell_old`
/// @param allocation   [R, N] `W`
/// @param advantages   [R] `A`
/// @param step_weights [R] `gamma`; undefined: 1
/// @param kl           [R, N] per-token KL; undefined: none (then `beta` must be 0)
/// @param options      clip range, KL weight and weighting
inline torch::autograd::variable_list token_objective_cuda(
    const at::Tensor& log_prob, const at::Tensor& old_log_prob, const at::Tensor& allocation,
    const at::Tensor& advantages, const at::Tensor& step_weights = {}, const at::Tensor& kl = {},
    const cuda_token_objective_options& options = {}) {
  check_token_objective_cuda(log_prob, old_log_prob, allocation, advantages, step_weights, kl,
                             options);
  cuda_detail::require_cuda(log_prob, "log_prob");
  // LibTorch 2.x records the device of every tensor argument of a custom Function, which an
  // undefined tensor has not: an input left out travels as an empty placeholder and a flag.
  const at::Tensor absent = at::empty({0}, log_prob.options());  // [0]
  return token_objective_function::apply(
      log_prob, old_log_prob, allocation, advantages,
      step_weights.defined() ? step_weights : absent,
      kl.defined() ? kl : absent, step_weights.defined(), kl.defined(), options.token_clip_range,
      options.beta, options.kl_weighted_by_allocation);
}

}  // namespace star::libtorch

#endif  // LibTorch with CUDA
