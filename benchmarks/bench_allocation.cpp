// Allocation of relevance maps into mean-one weights at SD3.5-Medium shapes: rows = batch x
// 10 steps, N = 1024 image tokens, on the Eigen float backend.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "bandwidth.hpp"
#include "star/allocation/all.hpp"
#include "star/eigen/backend.hpp"
#include "../tests/support/random.hpp"

namespace {

constexpr std::int64_t image_tokens = 1024, steps = 10;

/// One option set per benchmark argument.
star::allocation_options options_for(std::int64_t variant) {
  star::allocation_options options;
  if (variant == 1) options.schedule = star::mixing_schedule::entropy;
  if (variant == 2) options.w_max = 3.0;
  return options;
}

void BM_allocate(benchmark::State& state) {
  const std::int64_t rows = state.range(0) * steps;
  const star::eigen::backend<float> be;
  const auto relevance = be.from_host(star::test::uniform(rows * image_tokens, 1, 0.0, 1.0),
                                      {rows, image_tokens});  // [B*K, N]
  const auto options = options_for(state.range(1));
  for (auto _ : state) {
    auto result = star::allocate(be, relevance, 3, steps, options);  // W: [B*K, N]
    benchmark::DoNotOptimize(result.weights.values.data());
  }
  // Minimal traffic: read R once, write W once. Threads run the rows, so rates are wall-clock.
  star::bench::report_bytes(state, 2.0 * sizeof(float) * rows * image_tokens);
}

void BM_upsample_to_latent(benchmark::State& state) {
  const std::int64_t rows = state.range(0);
  const star::eigen::backend<float> be;
  const auto weights = be.from_host(star::test::uniform(rows * image_tokens, 2, 0.0, 2.0),
                                    {rows, image_tokens});  // [B, N]
  for (auto _ : state) {
    auto latent = star::upsample_to_latent(be, weights, 32, 32, 2);  // [B, 64, 64]
    benchmark::DoNotOptimize(latent.values.data());
  }
  star::bench::report_bytes(state, (1.0 + 4.0) * sizeof(float) * rows * image_tokens);
}

}  // namespace

BENCHMARK(BM_allocate)
    ->ArgNames({"batch", "variant"})  // variant 0: constant lambda, 1: entropy, 2: cap 3
    ->ArgsProduct({{8, 32}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_upsample_to_latent)->ArgNames({"rows"})->Arg(320)->Unit(benchmark::kMicrosecond)->UseRealTime();
