#pragma once
// The per-update work of STAR over R = batch x steps rows of N image tokens: the allocation
// (docs/math.md §4, default options) and the token-mode objective forward + backward (§5),
// in four variants:
// - composite: star::allocate and star::spatial_policy_objective over star::libtorch::backend,
//   differentiated by autograd;
// - fused: star::libtorch::allocate_cuda and token_objective_cuda;
// - fused_kernels: the same kernels launched directly on buffers made beforehand, and the
//   objective also in one pass (the forward writing the gradient for an upstream of 1);
// - naive: the same formulas written directly in ATen (no checks, no metrics).

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "sd35_block.hpp"
#include "star/allocation/allocate.hpp"
#include "star/objective/policy_objective.hpp"
#include "star/torch/backend.hpp"
#ifdef STAR_BENCH_FUSED
#include "star/torch/cuda_ops.hpp"
#endif

namespace star::bench {

/// One variant's calls: the allocation, the objective forward + backward, and where the
/// variant has one, the objective with its gradient in one pass (else empty).
struct update_variant {
  std::string name;
  std::function<void()> allocate, objective;
  std::function<void()> objective_one_pass = {};
};

/// The inputs of one update, float32 on the device.
struct update_inputs {
  at::Tensor relevance;             // [R, N] maps, >= 0
  std::vector<std::int64_t> steps;  // [R] step of each row
  at::Tensor log_prob;              // [R, N] `ell`, requires grad
  at::Tensor old_log_prob;          // [R, N] `ell_old`
  at::Tensor allocation;            // [R, N] `W`, mean 1 per row
  at::Tensor advantages;            // [R]
};

inline update_inputs make_update_inputs(std::int64_t batch, at::Device device) {
  const std::int64_t rows = batch * sd35m::steps, image = sd35m::layout().image_tokens();
  const auto options = at::TensorOptions().device(device).dtype(at::kFloat);
  update_inputs in;
  in.relevance = at::rand({rows, image}, options);  // [R, N]
  for (std::int64_t r = 0; r < rows; ++r) in.steps.push_back(r % sd35m::steps);
  in.old_log_prob = at::randn({rows, image}, options);  // [R, N]
  in.log_prob =
      (in.old_log_prob + 1e-3 * at::randn_like(in.old_log_prob)).requires_grad_();  // [R, N]
  const auto unnormalised = at::rand({rows, image}, options) + 0.5;                 // [R, N]
  in.allocation = unnormalised / unnormalised.mean(1, true);                        // [R, N]
  in.advantages = at::randn({rows}, options);                                       // [R]
  return in;
}

/// Least traffic of the allocation: read `R`, write `W`.
inline double allocation_bytes(const update_inputs& in) {
  return 2.0 * sizeof(float) * static_cast<double>(in.relevance.numel());
}

/// Least traffic of the objective's forward: read `ell`, `ell_old`, `W`.
inline double objective_forward_bytes(const update_inputs& in) {
  return 3.0 * sizeof(float) * static_cast<double>(in.log_prob.numel());
}

/// Least traffic of the objective's backward: read `ell`, `ell_old`, `W` again, write `d ell`.
inline double objective_backward_bytes(const update_inputs& in) {
  return 4.0 * sizeof(float) * static_cast<double>(in.log_prob.numel());
}

/// Least traffic of the objective as an autograd function: its forward and its backward.
inline double objective_bytes(const update_inputs& in) {
  return objective_forward_bytes(in) + objective_backward_bytes(in);
}

/// Least traffic of the objective with its gradient in one pass: read `ell`, `ell_old`, `W`,
/// write `d ell`.
inline double one_pass_objective_bytes(const update_inputs& in) {
  return 4.0 * sizeof(float) * static_cast<double>(in.log_prob.numel());
}

/// `d loss / d ell`, leaving no gradient behind in `ell`.
inline at::Tensor log_prob_gradient(const at::Tensor& loss, const update_inputs& in) {
  return torch::autograd::grad({loss}, {in.log_prob})[0];  // [R, N]
}

/// `W = (1 - lambda) N m + lambda` with `m = R^{1/tau} / sum R^{1/tau}` (constant schedule).
inline at::Tensor naive_allocation(const at::Tensor& relevance, const allocation_options& options) {
  const auto sharpened = at::pow(relevance, 1.0 / options.tau);                // [R, N]
  const auto map = sharpened / sharpened.sum(1, true);                         // [R, N]
  return map * ((1.0 - options.lambda) * relevance.size(1)) + options.lambda;  // [R, N]
}

/// `mean max(-Â rho, -Â clip(rho, 1 - eps, 1 + eps))` with `Â = A W`,
/// `rho = exp(ell - ell_old)`.
inline at::Tensor naive_token_loss(const update_inputs& in, double eps) {
  const auto ratio = at::exp(in.log_prob - in.old_log_prob);          // [R, N]
  const auto advantage = in.advantages.unsqueeze(1) * in.allocation;  // [R, N]
  return at::maximum(-advantage * ratio, -advantage * at::clamp(ratio, 1.0 - eps, 1.0 + eps))
      .mean();  // []
}

#ifdef STAR_BENCH_FUSED
/// The fused allocation and objective kernels launched directly on buffers made beforehand
/// (float32, no autograd), with the options and `lambda` ([R]) of the `fused` variant: what
/// the kernels cost on a busy stream without the LibTorch wrappers' per-call work
/// (allocations, argument checks, autograd bookkeeping).
inline update_variant fused_kernel_variant(const update_inputs& in,
                                           const allocation_options& allocation,
                                           const policy_objective_options& objective,
                                           const at::Tensor& lambda) {
  const std::int64_t rows = in.relevance.size(0), image = in.relevance.size(1);
  const auto options = in.relevance.options();
  const at::Tensor weights = at::empty({rows, image}, options);          // [R, N]
  const at::Tensor used_lambda = at::empty({rows}, options);             // [R]
  const at::Tensor entropy = at::empty({rows}, options);                 // [R]
  const at::Tensor capped = at::empty({rows}, options.dtype(at::kInt));  // [R]
  const at::Tensor log_prob = in.log_prob.detach();                      // [R, N]
  const at::Tensor totals = at::empty({6}, options);                     // [6]
  const std::size_t bytes = star::cuda::token_objective_workspace_bytes(rows);
  const at::Tensor workspace =
      at::zeros({static_cast<std::int64_t>(bytes)}, options.dtype(at::kByte));  // [bytes]
  const at::Tensor d_log_prob = at::empty({rows, image}, options);              // [R, N]
  const star::cuda::allocation_params allocation_params{
      static_cast<float>(allocation.tau), lambda.data_ptr<float>(),
      static_cast<float>(allocation.w_max.value_or(0.0))};
  const star::cuda::token_objective_params objective_params{
      static_cast<float>(objective.token_clip_range), static_cast<float>(objective.beta), false};
  const at::Device device = in.relevance.device();
  const cudaStream_t stream = libtorch::cuda_detail::current_stream(device);
  using libtorch::view_of;
  const auto relevance = view_of<const float, 2>(in.relevance, "relevance", device);
  const star::cuda::allocation_outputs allocation_out{
      view_of<float, 2>(weights, "weights", device), used_lambda.data_ptr<float>(),
      entropy.data_ptr<float>(), capped.data_ptr<std::int32_t>()};
  const star::cuda::token_objective_inputs<float> inputs{
      view_of<const float, 2>(log_prob, "log_prob", device),
      view_of<const float, 2>(in.old_log_prob, "old_log_prob", device),
      view_of<const float, 2>(in.allocation, "allocation", device),
      in.advantages.data_ptr<float>(),
      nullptr,
      {}};
  const star::cuda::token_objective_gradient gradient{
      nullptr, view_of<float, 2>(d_log_prob, "d_log_prob", device), {}};
  auto* const objective_totals =
      reinterpret_cast<star::cuda::token_objective_totals*>(totals.data_ptr<float>());
  // both calls keep alive the tensors their views point into
  const std::vector<at::Tensor> buffers{weights, used_lambda, entropy,   capped,
                                        log_prob, totals,     workspace, d_log_prob};
  return {"fused_kernels",
          [=, keep = buffers] {
            libtorch::cuda_detail::check(
                star::cuda::allocate_rows<float>(relevance, allocation_params, allocation_out,
                                                 stream),
                "allocate_rows");
          },
          [=, keep = buffers] {
            libtorch::cuda_detail::check(
                star::cuda::token_objective_forward(inputs, objective_params, objective_totals,
                                                    workspace.data_ptr(), bytes, stream),
                "token_objective_forward");
            libtorch::cuda_detail::check(
                star::cuda::token_objective_backward(inputs, objective_params, gradient, stream),
                "token_objective_backward");
          },
          [=, keep = buffers] {
            libtorch::cuda_detail::check(
                star::cuda::token_objective_forward(inputs, objective_params, objective_totals,
                                                    workspace.data_ptr(), bytes, stream, gradient),
                "token_objective_forward with its gradient");
          }};
}
#endif

/// The update variants available on `be`'s device.
inline std::vector<update_variant> update_variants(const update_inputs& in,
                                                   const libtorch::backend& be) {
  static const allocation_options allocation{};
  static const policy_objective_options objective{};  // token mode
  std::vector<update_variant> variants{
      {"composite",
       [&in, &be] {
         star::allocate(be, in.relevance, std::span(in.steps), sd35m::steps, allocation);
       },
       [&in, &be] {
         const policy_objective_inputs<at::Tensor> inputs{
             in.log_prob, in.old_log_prob, in.advantages, in.allocation, {}, {}};
         log_prob_gradient(spatial_policy_objective(be, inputs, objective).loss, in);
       }},
      {"naive", [&in] { naive_allocation(in.relevance, allocation); },
       [&in] { log_prob_gradient(naive_token_loss(in, objective.token_clip_range), in); }}};
#ifdef STAR_BENCH_FUSED
  if (be.device().is_cuda()) {
    const auto lambda = at::full({in.relevance.size(0)}, allocation.lambda,
                                 in.relevance.options());  // [R]
    variants.push_back(
        {"fused",
         [&in, lambda] {
           libtorch::allocate_cuda(in.relevance, allocation.tau, lambda, allocation.w_max);
         },
         [&in] {
           const libtorch::cuda_token_objective_options options{objective.token_clip_range,
                                                                objective.beta};
           log_prob_gradient(
               libtorch::token_objective_cuda(in.log_prob, in.old_log_prob, in.allocation,
                                              in.advantages, {}, {}, options)[0],
               in);
         }});
    variants.push_back(fused_kernel_variant(in, allocation, objective, lambda));
  }
#endif
  return variants;
}

}  // namespace star::bench
