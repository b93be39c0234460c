// The spatially resolved objective at SD3.5-Medium shapes on the Eigen float backend: rows =
// batch x 10 steps, N = 1024 tokens; and the per-token log-probability of [B, 16, 64, 64] latents.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "bandwidth.hpp"
#include "star/eigen/backend.hpp"
#include "star/objective/all.hpp"
#include "../tests/support/random.hpp"

namespace {

constexpr std::int64_t image_tokens = 1024, steps = 10;
using backend = star::eigen::backend<float>;

/// Slightly off-policy per-token log-probabilities, advantages and mean-one weights.
star::policy_objective_inputs<backend::tensor> objective_inputs(const backend& be,
                                                                std::int64_t rows) {
  const star::shape tokens{rows, image_tokens};
  auto old_log_prob = star::test::normal(rows * image_tokens, 1);
  auto log_prob = old_log_prob;
  const auto drift = star::test::normal(log_prob.size(), 2, 0.0, 2e-3);
  for (std::size_t i = 0; i < log_prob.size(); ++i) log_prob[i] += drift[i];
  return {be.from_host(log_prob, tokens),                                          // [R, N]
          be.from_host(old_log_prob, tokens),                                      // [R, N]
          be.from_host(star::test::normal(rows, 3), {rows}),                       // [R]
          be.from_host(star::test::uniform(rows * image_tokens, 4, 0.5, 1.5), tokens),  // [R, N]
          std::nullopt,
          std::nullopt};
}

/// Bytes the token objective must touch: ell, ell_old, W read; one [R, N] gradient written.
double objective_bytes(std::int64_t rows, bool with_gradient) {
  return sizeof(float) * static_cast<double>(rows * image_tokens) * (with_gradient ? 4 : 3);
}

void BM_token_objective_loss(benchmark::State& state) {
  const backend be;
  const std::int64_t rows = state.range(0) * steps;
  const auto inputs = objective_inputs(be, rows);
  for (auto _ : state) {
    auto result = star::spatial_policy_objective(be, inputs);
    benchmark::DoNotOptimize(result.policy_loss);
  }
  star::bench::report_bytes(state, objective_bytes(rows, false));
}

void BM_token_objective_gradient(benchmark::State& state) {
  const backend be;
  const std::int64_t rows = state.range(0) * steps;
  const auto inputs = objective_inputs(be, rows);
  for (auto _ : state) {
    auto gradient = star::spatial_policy_gradient(be, inputs);  // d loss / d ell: [R, N]
    benchmark::DoNotOptimize(gradient.log_prob.values.data());
  }
  star::bench::report_bytes(state, objective_bytes(rows, true));
}

void BM_per_token_log_prob(benchmark::State& state) {
  const backend be;
  const std::int64_t batch = state.range(0);
  const star::shape latent{batch, 16, 64, 64};
  const auto x_next = be.from_host(star::test::normal(star::numel(latent), 5), latent);  // [B, C, H, W]
  const auto mu = be.from_host(star::test::normal(star::numel(latent), 6), latent);      // [B, C, H, W]
  const auto sigmas = star::flow_match_sigmas(10);
  const std::vector<star::sde_coefficients> coefficients(
      static_cast<std::size_t>(batch), star::flow_grpo_sde_coefficients(sigmas, 3));
  for (auto _ : state) {
    auto ell = star::per_token_log_prob(be, x_next, mu, coefficients, 2);  // [B, N]
    benchmark::DoNotOptimize(ell.values.data());
  }
  star::bench::report_bytes(state, sizeof(float) * (2.0 * star::numel(latent) + batch * image_tokens));
}

}  // namespace

BENCHMARK(BM_token_objective_loss)->ArgNames({"batch"})->Arg(8)->Arg(32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_token_objective_gradient)->ArgNames({"batch"})->Arg(8)->Arg(32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_per_token_log_prob)->ArgNames({"batch"})->Arg(8)->Arg(32)->Unit(benchmark::kMicrosecond)->UseRealTime();
