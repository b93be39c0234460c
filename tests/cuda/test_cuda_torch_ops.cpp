// The LibTorch wrappers of the fused CUDA kernels (star/torch/cuda_ops.hpp) against plain ATen
// computations on the GPU: read-out vs an explicit softmax, allocation invariants, and the
// token objective's loss, metrics and autograd gradient vs ATen autograd of the same formula,
// in one dtype and in mixed dtypes (which the wrapper widens to float32). Exits non-zero on a
// failed check.

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "star/torch/cuda_ops.hpp"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("  %-50s %s\n", what.c_str(), ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

void check_close(const at::Tensor& got, const at::Tensor& want, double tol,
                 const std::string& what) {
  const at::Tensor want_double = want.to(at::kDouble).cpu();  // the shape of want
  const double err = (got.to(at::kDouble).cpu() - want_double).abs().max().item<double>();
  const double scale = 1.0 + want_double.abs().max().item<double>();
  std::printf("  %-50s max abs err %.3g (tol %.3g)\n", what.c_str(), err, tol * scale);
  if (!(err <= tol * scale)) ++failures, std::printf("FAILED: %s\n", what.c_str());
}

void test_readout(at::ScalarType dtype) {
  const auto layout = star::token_layout::sd3(8, 8, 20);
  const std::int64_t batch = 2, heads = 4, dim = 32, image = 64, text = 97;
  const auto options = at::TensorOptions().device(at::kCUDA);
  // heads interleaved, as after a projection
  const auto interleaved = [&] {  // strided [B, H, T, D] views of [B, T, H, D]
    return at::randn({batch, image + text, heads, dim}, options).to(dtype).transpose(1, 2);
  };
  const at::Tensor q = interleaved(), k = interleaved();  // [B, H, T, D] each
  const double scale = 1.0 / std::sqrt(double(dim));
  const at::Tensor scores = at::matmul(q.slice(2, 0, image).to(at::kFloat),
                                       k.to(at::kFloat).transpose(2, 3)) * scale;  // [B, H, N, T]
  // the LSE of every row of the joint sequence; the text rows are NaN, which the read-out must
  // not read
  at::Tensor lse =
      at::full({batch, heads, image + text}, NAN, options.dtype(at::kFloat));  // [B, H, T]
  lse.slice(2, 0, image).copy_(at::logsumexp(scores, -1));                     // [B, H, N]
  const std::vector<std::int64_t> columns{1, 5, 77, 90};
  const std::vector<double> weights{0.1, 0.2, 0.3, 0.4};
  const at::Tensor softmax = at::softmax(scores, -1);                  // [B, H, N, T]
  at::Tensor want = at::zeros({batch, image}, options.dtype(at::kFloat));  // [B, N]
  for (std::size_t j = 0; j < columns.size(); ++j)
    want += weights[j] * softmax.select(3, image + columns[j]).mean(1);  // [B, N]
  const auto got = star::libtorch::accumulate_relevance_cuda(
      q, k, lse, layout, columns, weights, scale, 1.0, {}, true);  // [B, N], [B, H, N, S]
  check_close(got.relevance, want, 2e-5,
              "read-out vs explicit softmax " + std::string(c10::toString(dtype)));
  check_close(got.probabilities.select(3, 2), softmax.select(3, image + 77), 2e-5,
              "probabilities vs explicit softmax");
  // a second block of weight 0.5 adds to the relevance it is given, in place
  const at::Tensor accumulator = got.relevance.clone();  // [B, N]
  const auto added = star::libtorch::accumulate_relevance_cuda(
      q, k, lse, layout, columns, weights, scale, 0.5, accumulator);  // [B, N]
  check(added.relevance.data_ptr() == accumulator.data_ptr(), "relevance accumulated in place");
  check_close(accumulator, 1.5 * want, 2e-5, "two blocks' read-outs, weights 1 and 0.5");
}

void test_allocation() {
  const auto options = at::TensorOptions().device(at::kCUDA);
  const at::Tensor relevance = at::rand({4, 1024}, options).pow(4);  // [B, N]
  const at::Tensor lambda = at::full({4}, 0.3, options);             // [B]
  const auto plain = star::libtorch::allocate_cuda(relevance, 1.0, lambda);  // W [B, N]
  const at::Tensor want = 0.7 * 1024 * relevance / relevance.sum(1, true) + 0.3;  // [B, N]
  check_close(plain.weights, want, 1e-5, "allocation, constant lambda 0.3");
  const auto capped = star::libtorch::allocate_cuda(relevance, 0.5, std::nullopt, 2.0);  // W [B, N]
  check_close(capped.weights.mean(1), at::ones({4}, options), 1e-5,  // [B]
              "I2 mean W = 1 with cap 2");
  check_close(capped.weights.clamp_min(2.0), at::full({4, 1024}, 2.0, options), 1e-6,  // [B, N]
              "W <= w_max");
}

/// Half the distance between 1 and the next value of `dtype`: the error of rounding to it.
double unit_roundoff(at::ScalarType dtype) {
  return dtype == at::kBFloat16 ? 0x1p-8 : dtype == at::kHalf ? 0x1p-11 : 0x1p-24;
}

/// The tolerance of a gradient that comes back in `dtype`: its rounding, and float32 slack.
double gradient_tolerance(const at::Tensor& reference, at::ScalarType dtype) {
  return 1e-3 / double(reference.numel()) +
         unit_roundoff(dtype) * reference.abs().max().item<double>();
}

/// The token objective computed by ATen in float32.
struct objective_reference {
  at::Tensor loss;     ///< [], differentiable w.r.t. `log_prob` and `kl`
  at::Tensor metrics;  ///< [5] as `token_objective_cuda` orders them
};

/// The token objective in float32 from the same values (`log_prob` upcast), KL weighted by
/// the allocation; `kl` undefined: none.
objective_reference reference_objective(const at::Tensor& log_prob,
                                        const at::Tensor& old_log_prob,
                                        const at::Tensor& allocation,
                                        const at::Tensor& step_advantages, const at::Tensor& kl,
                                        double eps, double beta) {
  const at::Tensor w = allocation.to(at::kFloat);           // [R, N]
  const at::Tensor adv = step_advantages.unsqueeze(1) * w;  // [R, N]
  const at::Tensor log_ratio =
      log_prob.to(at::kFloat) - old_log_prob.to(at::kFloat);         // [R, N]
  const at::Tensor ratio = at::exp(log_ratio);                        // [R, N]
  const at::Tensor unclipped = -adv * ratio;                          // [R, N]
  const at::Tensor clipped = -adv * ratio.clamp(1 - eps, 1 + eps);    // [R, N]
  const at::Tensor policy_loss = at::maximum(unclipped, clipped).mean();  // []
  const at::Tensor kl_loss =
      kl.defined() ? (w * kl.to(at::kFloat)).mean() : at::zeros({}, w.options());  // []
  const auto fraction = [](const at::Tensor& entries) {
    return entries.to(at::kFloat).mean();  // []
  };
  const at::Tensor metrics = at::stack({policy_loss, kl_loss, fraction(clipped > unclipped),
                                        fraction((ratio > 1 + eps) | (ratio < 1 - eps)),
                                        0.5 * log_ratio.square().mean()})
                                 .detach();  // [5]
  return {policy_loss + beta * kl_loss, metrics};
}

/// The fused token objective against autograd through the formula; with `optional_inputs`
/// false, `gamma` and `kl` are left out (beta 0).
void test_token_objective(at::ScalarType dtype, bool optional_inputs) {
  const auto options = at::TensorOptions().device(at::kCUDA);
  const std::int64_t rows = 6, tokens = 1024;
  const at::Tensor old_log_prob = at::randn({rows, tokens}, options).to(dtype);  // [R, N]
  const at::Tensor log_prob_base =
      (old_log_prob.to(at::kFloat) + 3e-3 * at::randn({rows, tokens}, options))
          .to(dtype);  // [R, N]
  const at::Tensor allocation =
      (0.2 + 1.8 * at::rand({rows, tokens}, options)).to(dtype);  // [R, N]
  const at::Tensor advantages = at::randn({rows}, options);      // [R]
  const at::Tensor gamma =
      optional_inputs ? 0.5 + at::rand({rows}, options) : at::Tensor();  // [R]
  const at::Tensor kl_base = (0.1 * at::rand({rows, tokens}, options)).to(dtype);  // [R, N]
  const double eps = 2e-3, beta = optional_inputs ? 0.04 : 0.0;

  const at::Tensor log_prob = log_prob_base.clone().requires_grad_(true);  // [R, N]
  const at::Tensor kl =
      optional_inputs ? kl_base.clone().requires_grad_(true) : at::Tensor();  // [R, N]
  const auto outputs = star::libtorch::token_objective_cuda(
      log_prob, old_log_prob, allocation, advantages, gamma, kl, {eps, beta, true});  // [], [5]
  outputs[0].backward();

  const at::Tensor log_prob_ref = log_prob_base.to(at::kFloat).requires_grad_(true);  // [R, N]
  const at::Tensor kl_ref = kl_base.to(at::kFloat).requires_grad_(true);             // [R, N]
  const at::Tensor step_advantages = optional_inputs ? advantages * gamma : advantages;  // [R]
  const at::Tensor loss =
      reference_objective(log_prob_ref, old_log_prob, allocation, step_advantages,
                          optional_inputs ? kl_ref : at::Tensor(), eps, beta)
          .loss;  // []
  loss.backward();
  const std::string what = std::string(c10::toString(dtype)) +
                           (optional_inputs ? ", gamma and kl" : ", no gamma, no kl");
  check_close(outputs[0], loss.detach(), 1e-5, "token loss " + what);
  // the gradients come back in the input's dtype: their rounding is part of the tolerance
  check_close(log_prob.grad(), log_prob_ref.grad(),
              gradient_tolerance(log_prob_ref.grad(), dtype), "d loss / d ell " + what);
  if (optional_inputs)
    check_close(kl.grad(), kl_ref.grad(), gradient_tolerance(kl_ref.grad(), dtype),
                "d loss / d kl " + what);
}

/// A bfloat16 `ell` with float32 `ell_old`, `W` and `kl`: the wrapper computes in float32.
/// `ell - ell_old` is +-0.75 eps or +-1.25 eps, a quarter of eps from the clip bounds, where
/// rounding `ell_old` to bfloat16 (a step of 2^-7 at |ell_old| >= 1) would flip clip decisions.
void test_token_objective_mixed_dtypes() {
  const auto options = at::TensorOptions().device(at::kCUDA);
  const std::int64_t rows = 6, tokens = 1024;
  const double eps = 2e-3, beta = 0.04;
  const at::Tensor log_prob_base = at::randn({rows, tokens}, options).to(at::kBFloat16);  // [R, N]
  const at::Tensor log_ratio = eps * at::tensor({0.75, -0.75, 1.25, -1.25},
                                                options.dtype(at::kFloat));  // [4]
  const at::Tensor old_log_prob =
      log_prob_base.to(at::kFloat) - log_ratio.repeat({rows, tokens / 4});  // [R, N]
  const at::Tensor allocation = 0.2 + 1.8 * at::rand({rows, tokens}, options);  // [R, N]
  const at::Tensor advantages = at::randn({rows}, options);                     // [R]
  const at::Tensor gamma = 0.5 + at::rand({rows}, options);                     // [R]
  const at::Tensor kl_base = 0.1 * at::rand({rows, tokens}, options);           // [R, N]

  const at::Tensor log_prob = log_prob_base.clone().requires_grad_(true);  // [R, N] bfloat16
  const at::Tensor kl = kl_base.clone().requires_grad_(true);              // [R, N] float32
  const auto outputs = star::libtorch::token_objective_cuda(
      log_prob, old_log_prob, allocation, advantages, gamma, kl, {eps, beta, true});  // [], [5]
  outputs[0].backward();

  const at::Tensor log_prob_ref = log_prob_base.to(at::kFloat).requires_grad_(true);  // [R, N]
  const at::Tensor kl_ref = kl_base.clone().requires_grad_(true);                    // [R, N]
  const at::Tensor step_advantages = advantages * gamma;                             // [R]
  const auto want = reference_objective(log_prob_ref, old_log_prob, allocation,
                                        step_advantages, kl_ref, eps, beta);  // [], [5]
  want.loss.backward();
  // the case is one where the widening matters: ell_old in bfloat16 clips fewer entries
  const at::Tensor rounded_old = old_log_prob.to(at::kBFloat16);  // [R, N]
  const auto rounded = reference_objective(log_prob_base, rounded_old, allocation,
                                           step_advantages, kl_base, eps, beta);  // [], [5]
  check(rounded.metrics[2].item<double>() < want.metrics[2].item<double>(),
        "bfloat16 ell_old would change the clip fraction");

  check_close(outputs[0], want.loss.detach(), 1e-5, "token loss, mixed dtypes");
  check_close(outputs[1], want.metrics, 1e-5, "token metrics, mixed dtypes");
  check(log_prob.grad().scalar_type() == at::kBFloat16, "d loss / d ell in bfloat16");
  check(kl.grad().scalar_type() == at::kFloat, "d loss / d kl in float32");
  check_close(log_prob.grad(), log_prob_ref.grad(),
              gradient_tolerance(log_prob_ref.grad(), at::kBFloat16),
              "d loss / d ell, mixed dtypes");
  check_close(kl.grad(), kl_ref.grad(), gradient_tolerance(kl_ref.grad(), at::kFloat),
              "d loss / d kl, mixed dtypes");
}

}  // namespace

int main() {
  if (!at::hasCUDA()) {
    std::printf("LibTorch sees no CUDA device\n");
    return 1;
  }
  try {
    for (const auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
      test_readout(dtype);
      test_token_objective(dtype, true);
      test_token_objective(dtype, false);
    }
    test_token_objective_mixed_dtypes();
    test_allocation();
  } catch (const std::exception& e) {
    ++failures;
    std::printf("FAILED: exception %s\n", e.what());
  }
  std::printf("%s (%d failed checks)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
