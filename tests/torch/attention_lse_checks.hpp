#pragma once
// The body of the attention-with-LSE test (invariant I3) and an explicit softmax attention in
// double, shared by the CPU tests (test_torch_backend.cpp) and their CUDA twins
// (test_cuda_attention_lse.cpp).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "star/attention/full_softmax.hpp"
#include "star/attention/relevance.hpp"
#include "star/backends/reference.hpp"
#include "star/torch/attention_lse.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace star::test {

/// What `explicit_attention` returns, in double.
struct attention_reference {
  at::Tensor output;  ///< [B, H, T, Dv]
  at::Tensor lse;     ///< [B, H, T]
};

/// `softmax(scale q k^T) v` and the row LSE of `scale q k^T`, explicitly in double from `q`,
/// `k` [B, H, T, D] and `v` [B, H, T, Dv] as they are (no gradient).
inline attention_reference explicit_attention(const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& v, double scale) {
  const at::Tensor scores = at::matmul(q.detach().to(at::kDouble),
                                       k.detach().to(at::kDouble).transpose(2, 3)) *
                            scale;  // [B, H, T, T]
  return {at::matmul(at::softmax(scores, -1), v.detach().to(at::kDouble)),  // [B, H, T, Dv]
          at::logsumexp(scores, -1)};                                        // [B, H, T]
}

/// I3 on `device`: `attention_with_lse` gives the explicit softmax's output and row LSE
/// (double host loops), its probabilities rows sum to 1, and the selected-column read-out
/// from its LSE equals the reference backend's full-softmax probabilities and relevance.
inline void check_attention_with_lse(at::Device device,
                                     libtorch::attention_lse_source expected_source) {
  const std::int64_t batch = 2, heads = 3, head_dim = 16;
  const token_layout layout{4, 5, {{"clip", 7}, {"t5", 9}}, true};  // N = 20, L = 16, T = 36
  const std::int64_t tokens = layout.total_tokens();
  const shape qkv{batch, heads, tokens, head_dim};
  const std::uint64_t seed = 900;
  INFO("seed " << seed << ", device " << device.str());
  const auto count = static_cast<std::size_t>(numel(qkv));
  const auto q_host = normal(count, seed, 0.0, 1.5), k_host = normal(count, seed + 1, 0.0, 1.5);
  const auto v_host = normal(count, seed + 2);
  const libtorch::backend be(device, at::kFloat);
  const auto q = be.from_host(q_host, qkv), k = be.from_host(k_host, qkv);  // [B, H, T, D]
  const auto v = be.from_host(v_host, qkv);                                  // [B, H, T, D]
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));

  // Explicit softmax in double on the host, from the float-rounded inputs.
  const auto qf = be.to_host(q), kf = be.to_host(k), vf = be.to_host(v);
  std::vector<double> want_lse, want_output;
  for (std::int64_t bh = 0; bh < batch * heads; ++bh)
    for (std::int64_t t = 0; t < tokens; ++t) {
      std::vector<double> scores(static_cast<std::size_t>(tokens));
      double max = -INFINITY;
      for (std::int64_t m = 0; m < tokens; ++m) {
        double dot = 0.0;
        for (std::int64_t d = 0; d < head_dim; ++d)
          dot += qf[((bh * tokens) + t) * head_dim + d] * kf[((bh * tokens) + m) * head_dim + d];
        scores[m] = scale * dot;
        max = std::max(max, scores[m]);
      }
      double sum = 0.0;
      for (const double s : scores) sum += std::exp(s - max);
      const double lse = max + std::log(sum);
      want_lse.push_back(lse);
      for (std::int64_t d = 0; d < head_dim; ++d) {
        double out = 0.0;
        for (std::int64_t m = 0; m < tokens; ++m)
          out += std::exp(scores[m] - lse) * vf[((bh * tokens) + m) * head_dim + d];
        want_output.push_back(out);
      }
    }

  for (const std::int64_t key_chunk : {std::int64_t{256}, std::int64_t{5}}) {
    INFO("key_chunk " << key_chunk);
    const auto result =
        libtorch::attention_with_lse(q, k, v, scale, key_chunk);  // [B, H, T, D], lse [B, H, T]
    REQUIRE(result.source == expected_source);
    REQUIRE(be.shape_of(result.lse) == shape{batch, heads, tokens});
    require_close(be.to_host(result.lse), want_lse, 2e-5, "lse");
    require_close(be.to_host(result.output), want_output, 1e-4, "output");

    // Rows over all keys sum to 1 with the fused LSE.
    const auto all_keys = at::exp(at::matmul(q, k.transpose(2, 3)) * scale -
                                  result.lse.unsqueeze(-1).to(at::kFloat));  // [B, H, T, T]
    require_close(be.to_host(all_keys.sum(-1)),
                  std::vector<double>(static_cast<std::size_t>(batch * heads * tokens), 1.0),
                  2e-5, "rows sum to 1");

    // Selected columns from the LSE equal the reference backend's explicit full softmax.
    const reference_backend ref;
    const auto q_ref = ref.from_host(qf, qkv), k_ref = ref.from_host(kf, qkv);  // [B, H, T, D]
    const text_selection selection{{0, 3, 8, 15}, {0.4, 0.1, 0.3, 0.2}};
    const auto full = ref.to_host(full_attention_image_to_text(ref, q_ref, k_ref, layout));
    std::vector<double> want_selected;  // [B, H, N, S] from [B, H, N, L]
    for (std::size_t row = 0; row < full.size() / 16; ++row)
      for (const std::int64_t j : selection.indices) want_selected.push_back(full[row * 16 + j]);
    const auto selected = libtorch::selected_attention_probabilities(
        be, q, k, layout, selection.indices, result.lse);  // [B, H, N, S]
    require_close(be.to_host(selected), want_selected, 2e-5, "selected probabilities");
    const auto relevance =
        libtorch::selected_block_relevance(be, q, k, layout, selection, result.lse);  // [B, N]
    require_close(be.to_host(relevance),
                  ref.to_host(block_relevance(ref, q_ref, k_ref, layout, selection)), 2e-5,
                  "relevance");
  }
}

}  // namespace star::test
