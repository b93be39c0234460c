// Group-relative advantages for one Flow-GRPO epoch on 32 GPUs: 48 prompts x 24 rollouts.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "bandwidth.hpp"
#include "star/advantage/group_advantage.hpp"

namespace {

void BM_group_relative_advantages(benchmark::State& state) {
  const auto groups = state.range(0), group_size = state.range(1);
  std::mt19937_64 rng(7);
  std::normal_distribution<double> reward(0.5, 0.2);
  std::vector<double> rewards;          // [groups * group_size]
  std::vector<std::int64_t> prompt_ids;  // [groups * group_size]
  for (std::int64_t g = 0; g < groups; ++g)
    for (std::int64_t i = 0; i < group_size; ++i) {
      rewards.push_back(reward(rng));
      prompt_ids.push_back(g);
    }
  for (auto _ : state) {
    auto result = star::group_relative_advantages(rewards, prompt_ids);
    benchmark::DoNotOptimize(result.advantages.data());
  }
  state.SetItemsProcessed(state.iterations() * groups * group_size);
  star::bench::report_bytes(state, static_cast<double>(rewards.size()) * 3 * sizeof(double));
}

}  // namespace

BENCHMARK(BM_group_relative_advantages)
    ->ArgNames({"groups", "group_size"})
    ->Args({48, 24})
    ->Args({1, 24})
    ->Unit(benchmark::kMicrosecond);
