// Reading STAR's relevance map out of one SD3.5-Medium joint-attention block (24 heads, head
// dim 64, 1024 image + 333 text tokens) on the Eigen float backend: the LSE path that forms only
// the S selected columns, against forming the full softmax over all 1357 keys.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "bandwidth.hpp"
#include "star/attention/all.hpp"
#include "star/core/ops.hpp"
#include "star/eigen/backend.hpp"
#include "../tests/support/random.hpp"

namespace {

constexpr std::int64_t heads = 24, head_dim = 64;
const star::token_layout layout = star::token_layout::sd3(32, 32);  // N = 1024, L = 333

using backend = star::eigen::backend<float>;

/// Post-norm q and k of one block, the image rows' LSE and `selected` core tokens.
struct block_inputs {
  backend::tensor q, k, lse;  // [B, H, T, D], [B, H, T, D], [B, H, N]
  star::text_selection selection;

  block_inputs(const backend& be, std::int64_t batch, std::int64_t selected) {
    const star::shape qk_shape{batch, heads, layout.total_tokens(), head_dim};
    q = be.from_host(star::test::normal(star::numel(qk_shape), 1), qk_shape);  // [B, H, T, D]
    k = be.from_host(star::test::normal(star::numel(qk_shape), 2), qk_shape);  // [B, H, T, D]
    lse = star::image_row_lse(be, q, k, layout);                               // [B, H, N]
    for (std::int64_t j = 0; j < selected; ++j) {
      selection.indices.push_back(1 + 3 * j);  // CLIP positions after BOS
      selection.weights.push_back(1.0 / static_cast<double>(selected));
    }
  }
};

/// Bytes the LSE path must read: the image queries, the selected keys and the LSE.
double lse_path_bytes(std::int64_t batch, std::int64_t selected) {
  const double image_rows = static_cast<double>(batch * heads * layout.image_tokens());
  return sizeof(float) * (image_rows * (head_dim + 1) + batch * heads * selected * head_dim +
                          batch * layout.image_tokens());
}

void BM_relevance_via_lse(benchmark::State& state) {
  const backend be;
  const block_inputs in(be, state.range(0), state.range(1));
  for (auto _ : state) {
    auto map = star::block_relevance(be, in.q, in.k, layout, in.selection, in.lse);  // [B, N]
    benchmark::DoNotOptimize(map.values.data());
  }
  star::bench::report_bytes(state, lse_path_bytes(state.range(0), state.range(1)));
}

void BM_relevance_via_full_softmax(benchmark::State& state) {
  const backend be;
  const block_inputs in(be, state.range(0), state.range(1));
  for (auto _ : state) {
    const auto all_text = star::full_attention_image_to_text(be, in.q, in.k, layout);  // [B, H, N, L]
    const auto selected = be.index_select(all_text, 3, in.selection.indices);         // [B, H, N, S]
    auto map = star::relevance_map(be, selected, in.selection.weights);                // [B, N]
    benchmark::DoNotOptimize(map.values.data());
  }
  star::bench::report_bytes(state, lse_path_bytes(state.range(0), state.range(1)));
}

void BM_row_lse_chunked(benchmark::State& state) {
  const backend be;
  const block_inputs in(be, state.range(0), 1);
  for (auto _ : state) {
    auto lse = star::image_row_lse(be, in.q, in.k, layout);  // [B, H, N]
    benchmark::DoNotOptimize(lse.values.data());
  }
}

}  // namespace

BENCHMARK(BM_relevance_via_lse)
    ->ArgNames({"batch", "selected"})
    ->ArgsProduct({{8}, {1, 4, 16}})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_relevance_via_full_softmax)
    ->ArgNames({"batch", "selected"})
    ->ArgsProduct({{8}, {1, 16}})
    ->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Iterations(2);
BENCHMARK(BM_row_lse_chunked)->ArgNames({"batch"})->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
