// The sd35 library's one attention (dot_product_attention, its explicit fallback, SDPA against
// that fallback from LibTorch 2.1) and RMS normalisation against plain float64 loops: scale,
// causal, additive mask, both together, fully blocked rows, dtypes, and the rejected arguments.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "sd35/common/attention.hpp"
#include "sd35/common/rms_norm.hpp"
#include "sd35/sd35_fixtures.hpp"
#include "star/core/error.hpp"
#include "star/core/shape.hpp"
#include "support/random.hpp"

namespace {

using star::sd35::dot_product_attention;
using star::sd35::dot_product_options;
using star::sd35::detail::explicit_attention;
using star::test::max_abs_diff;

/// Seeded N(0, 1) values as a float32 tensor of `sizes`.
at::Tensor seeded(const std::vector<std::int64_t>& sizes, std::uint64_t seed) {
  std::int64_t count = 1;
  for (const auto s : sizes) count *= s;
  auto values = star::test::normal(static_cast<std::size_t>(count), seed);
  return at::tensor(values, at::kDouble).reshape(sizes).to(at::kFloat);  // sizes
}

/// softmax(s q k^T + mask) v with loops in float64; `mask` [Bm, Hm, Tq, Tk] broadcast.
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               bool causal, const at::Tensor& mask, double scale) {
  const auto qd = q.to(at::kDouble), kd = k.to(at::kDouble);  // [B, H, Tq, D], [B, H, Tk, D]
  const auto vd = v.to(at::kDouble);                                // [B, H, Tk, Dv]
  auto out = at::zeros({q.size(0), q.size(1), q.size(2), v.size(3)},
                       at::kDouble);  // [B, H, Tq, Dv]
  const auto qa = qd.accessor<double, 4>(), ka = kd.accessor<double, 4>();
  const auto va = vd.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  const auto md = mask.defined() ? mask.to(at::kDouble) : at::Tensor();  // mask's shape
  for (std::int64_t b = 0; b < q.size(0); ++b)
    for (std::int64_t h = 0; h < q.size(1); ++h)
      for (std::int64_t t = 0; t < q.size(2); ++t) {
        std::vector<double> logits(static_cast<std::size_t>(k.size(2)));
        double largest = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < k.size(2); ++j) {
          double dot = 0.0;
          for (std::int64_t d = 0; d < q.size(3); ++d) dot += qa[b][h][t][d] * ka[b][h][j][d];
          double logit = scale * dot;
          if (md.defined())
            logit += md[md.size(0) == 1 ? 0 : b][md.size(1) == 1 ? 0 : h][t][j].item<double>();
          if (causal && j > t) logit = -std::numeric_limits<double>::infinity();
          logits[static_cast<std::size_t>(j)] = logit;
          largest = std::max(largest, logit);
        }
        double total = 0.0;
        for (auto& logit : logits) total += (logit = std::exp(logit - largest));
        for (std::int64_t j = 0; j < k.size(2); ++j)
          for (std::int64_t d = 0; d < v.size(3); ++d)
            oa[b][h][t][d] += logits[static_cast<std::size_t>(j)] / total * va[b][h][j][d];
      }
  return out;
}

/// The inputs and option sets of the float64 comparison: q [2, 3, 5, 4], k [2, 3, 7, 4],
/// v [2, 3, 7, 6], a [1, H, Tq, Tk] mask with some keys lowered by -1e9.
struct option_sets {
  struct run {
    const char* name;
    dot_product_options options;
    double scale;
  };
  at::Tensor q = seeded({2, 3, 5, 4}, 11);  // [B, H, Tq, D]
  at::Tensor k = seeded({2, 3, 7, 4}, 12);  // [B, H, Tk, D]
  at::Tensor v = seeded({2, 3, 7, 6}, 13);  // [B, H, Tk, Dv]
  at::Tensor mask = seeded({1, 3, 5, 7}, 14) +
                    at::where(seeded({1, 3, 5, 7}, 15).gt(1.0), -1e9, 0.0);  // [1, H, Tq, Tk]
  std::vector<run> runs{
      {"default scale 1/2", {}, 0.5},
      {"scale 1", {.scale = 1.0}, 1.0},
      {"causal", {.causal = true}, 0.5},
      {"mask", {.additive_mask = mask}, 0.5},
      {"causal and mask", {.causal = true, .additive_mask = mask, .scale = 0.3}, 0.3}};
};

}  // namespace

TEST_CASE("dot_product_attention and its fallback match float64 loops: scale, causal, mask, both",
          "[sd35][common][attention]") {
  INFO("seeds 11 to 15");
  const option_sets sets;
  for (const auto& [name, options, scale] : sets.runs) {
    INFO(name);
    const auto want =
        reference_attention(sets.q, sets.k, sets.v, options.causal, options.additive_mask, scale);
    const auto got = dot_product_attention(sets.q, sets.k, sets.v, options);  // [B, H, Tq, Dv]
    REQUIRE(got.scalar_type() == at::kFloat);
    REQUIRE(max_abs_diff(got, want) < 1e-5);
    const auto fallback = explicit_attention(sets.q, sets.k, sets.v, options);  // [B, H, Tq, Dv]
    REQUIRE(fallback.scalar_type() == at::kFloat);
    REQUIRE(max_abs_diff(fallback, want) < 1e-5);
  }
}

#if STAR_SD35_USES_FUSED_SDPA
TEST_CASE("dot_product_attention (SDPA) equals the explicit fallback for every option set",
          "[sd35][common][attention]") {
  const option_sets sets;
  for (const auto& [name, options, scale] : sets.runs) {
    INFO(name);
    const auto sdpa = dot_product_attention(sets.q, sets.k, sets.v, options);  // [B, H, Tq, Dv]
    const auto fallback = explicit_attention(sets.q, sets.k, sets.v, options);  // [B, H, Tq, Dv]
    REQUIRE(max_abs_diff(sdpa, fallback) < 1e-6);
  }
}
#endif

TEST_CASE("dot_product_attention: a causal query ignores later keys, bfloat16 stays bfloat16",
          "[sd35][common][attention]") {
  const auto q = seeded({1, 2, 6, 8}, 3);  // [B, H, T, D]
  const auto k = seeded({1, 2, 6, 8}, 4);  // [B, H, T, D]
  const auto v = seeded({1, 2, 6, 8}, 5);  // [B, H, T, D]
  const auto full = dot_product_attention(q, k, v, {.causal = true});              // [B, H, T, D]
  const auto prefix = dot_product_attention(q.slice(2, 0, 3), k.slice(2, 0, 3),
                                            v.slice(2, 0, 3), {.causal = true});  // [B, H, 3, D]
  REQUIRE(max_abs_diff(prefix, full.slice(2, 0, 3)) < 1e-6);
  REQUIRE(max_abs_diff(full, dot_product_attention(q, k, v)) > 1e-2);
  const auto half = dot_product_attention(q.to(at::kBFloat16), k.to(at::kBFloat16),
                                          v.to(at::kBFloat16), {.causal = true});  // [B, H, T, D]
  REQUIRE(half.scalar_type() == at::kBFloat16);
  REQUIRE(max_abs_diff(half, full) < 5e-2);
}

TEST_CASE("dot_product_attention rejects mismatched shapes and names them",
          "[sd35][common][attention][errors]") {
  const auto q = seeded({1, 2, 4, 8}, 1);  // [B, H, T, D]
  REQUIRE_THROWS_AS(dot_product_attention(q[0], q, q), star::shape_error);
  REQUIRE_THROWS_WITH(dot_product_attention(q[0], q, q),
                      Catch::Contains("q") && Catch::Contains("[2, 4, 8]"));
  const auto narrow = q.slice(3, 0, 4);  // [B, H, T, 4]
  REQUIRE_THROWS_AS(dot_product_attention(q, narrow, q), star::shape_error);
  REQUIRE_THROWS_WITH(dot_product_attention(q, narrow, q),
                      Catch::Contains("k, v") && Catch::Contains("[1, 2, 4, 4]"));
  REQUIRE_THROWS_WITH(dot_product_attention(q, q, q.slice(2, 0, 3)),
                      Catch::Contains("k, v") && Catch::Contains("[1, 2, 3, 8]"));
  REQUIRE_THROWS_AS(dot_product_attention(q, q, q, {.additive_mask = at::zeros({4, 4})}),
                    star::shape_error);
  REQUIRE_THROWS_WITH(dot_product_attention(q, q, q, {.additive_mask = at::zeros({4, 4})}),
                      Catch::Contains("additive_mask"));
  // The mask's [B or 1, H or 1, Tq, Tk]: wrong Tk, Tq, B, H.
  for (const std::vector<std::int64_t>& sizes :
       {std::vector<std::int64_t>{1, 2, 4, 3}, {1, 1, 3, 4}, {2, 1, 4, 4}, {1, 3, 4, 4}}) {
    const auto mask = at::zeros(sizes);  // sizes
    INFO(mask.sizes());
    REQUIRE_THROWS_AS(dot_product_attention(q, q, q, {.additive_mask = mask}), star::shape_error);
    REQUIRE_THROWS_WITH(dot_product_attention(q, q, q, {.additive_mask = mask}),
                        Catch::Contains("additive_mask") &&
                            Catch::Contains(star::to_string(sizes)) &&
                            Catch::Contains("[1, 2, 4, 8]"));
  }
}

TEST_CASE("dot_product_attention rejects k, v, mask off q's device and k, v in another dtype",
          "[sd35][common][attention][errors]") {
  const auto q = seeded({1, 2, 4, 8}, 1);                            // [B, H, T, D]
  const auto elsewhere = at::empty({1, 2, 4, 8}, at::device(at::kMeta));  // [B, H, T, D]
  REQUIRE_THROWS_AS(dot_product_attention(q, elsewhere, q), star::value_error);
  REQUIRE_THROWS_WITH(dot_product_attention(q, elsewhere, q),
                      Catch::StartsWith("k:") && Catch::Contains("meta"));
  REQUIRE_THROWS_WITH(dot_product_attention(q, q, elsewhere),
                      Catch::StartsWith("v:") && Catch::Contains("meta"));
  const auto mask = at::empty({1, 1, 4, 4}, at::device(at::kMeta));  // [1, 1, T, T]
  REQUIRE_THROWS_AS(dot_product_attention(q, q, q, {.additive_mask = mask}), star::value_error);
  REQUIRE_THROWS_WITH(dot_product_attention(q, q, q, {.additive_mask = mask}),
                      Catch::StartsWith("additive_mask:") && Catch::Contains("meta"));
  const auto wide = q.to(at::kDouble);  // [B, H, T, D]
  REQUIRE_THROWS_AS(dot_product_attention(q, wide, q), star::value_error);
  REQUIRE_THROWS_WITH(dot_product_attention(q, wide, q),
                      Catch::StartsWith("k:") && Catch::Contains("Double") &&
                          Catch::Contains("[1, 2, 4, 8]"));
  REQUIRE_THROWS_WITH(explicit_attention(q, q, wide),
                      Catch::StartsWith("v:") && Catch::Contains("Double"));
}

TEST_CASE("the fallback rounds the mask to q's dtype, as SDPA sees it",
          "[sd35][common][attention]") {
  const auto q = seeded({1, 2, 4, 8}, 31).to(at::kBFloat16);  // [B, H, T, D]
  const auto k = seeded({1, 2, 4, 8}, 32).to(at::kBFloat16);  // [B, H, T, D]
  const auto v = seeded({1, 2, 4, 8}, 33).to(at::kBFloat16);  // [B, H, T, D]
  const auto mask = seeded({1, 2, 4, 4}, 34) * 0.3 + 0.001;   // [1, H, T, T] float32
  REQUIRE_FALSE(at::equal(mask, mask.to(at::kBFloat16).to(at::kFloat)));
  const auto given = explicit_attention(q, k, v, {.additive_mask = mask});  // [B, H, T, D]
  const auto rounded =
      explicit_attention(q, k, v, {.additive_mask = mask.to(at::kBFloat16)});  // [B, H, T, D]
  REQUIRE(given.scalar_type() == at::kBFloat16);
  REQUIRE(at::equal(given, rounded));
}

TEST_CASE("a query whose keys are all blocked (-inf) attends nothing: 0, finite gradients",
          "[sd35][common][attention]") {
  const double inf = std::numeric_limits<double>::infinity();
  const auto q = seeded({1, 2, 4, 8}, 41).requires_grad_();  // [B, H, T, D]
  const auto k = seeded({1, 2, 4, 8}, 42);                   // [B, H, T, D]
  const auto v = seeded({1, 2, 4, 8}, 43);                   // [B, H, T, D]
  auto mask = at::zeros({1, 1, 4, 4});                       // [1, 1, T, T]
  mask[0][0][2].fill_(-inf);                                 // query 2 sees no key
  const auto got = explicit_attention(q, k, v, {.causal = true, .additive_mask = mask});
  REQUIRE(got.slice(2, 2, 3).abs().max().item<double>() == 0.0);
  const auto want = reference_attention(q.detach(), k, v, true, at::Tensor(), 1 / std::sqrt(8.0));
  for (const std::int64_t row : {0, 1, 3})
    REQUIRE(max_abs_diff(got.slice(2, row, row + 1), want.slice(2, row, row + 1)) < 1e-5);
  got.sum().backward();
  REQUIRE(q.grad().isfinite().all().item<bool>());
  REQUIRE(q.grad().slice(2, 2, 3).abs().max().item<double>() == 0.0);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
  // SDPA (CPU) gives those rows 0 as well from LibTorch 2.5.
  const auto sdpa = dot_product_attention(q.detach(), k, v, {.additive_mask = mask});
  REQUIRE(sdpa.slice(2, 2, 3).abs().max().item<double>() == 0.0);
#endif
}

TEST_CASE("rms_normalize: float32 variance, the weight's half dtype, matches float64 loops",
          "[sd35][common][rms_norm]") {
  const std::uint64_t seed = 21;
  INFO("seed " << seed);
  const auto x = seeded({3, 5}, seed);           // [N, C]
  const auto weight = seeded({5}, seed + 1);     // [C]
  const double eps = 1e-6;
  const auto xd = x.to(at::kDouble), wd = weight.to(at::kDouble);
  auto want = at::empty({3, 5}, at::kDouble);    // [N, C]
  for (std::int64_t n = 0; n < 3; ++n) {
    double square = 0.0;
    for (std::int64_t c = 0; c < 5; ++c) square += std::pow(xd[n][c].item<double>(), 2) / 5.0;
    for (std::int64_t c = 0; c < 5; ++c)
      want[n][c] = xd[n][c].item<double>() / std::sqrt(square + eps) * wd[c].item<double>();
  }
  const auto got = star::sd35::rms_normalize(x, weight, eps);  // [N, C]
  REQUIRE(got.scalar_type() == at::kFloat);
  REQUIRE(max_abs_diff(got, want) < 1e-5);
  const auto half = star::sd35::rms_normalize(x.to(at::kBFloat16), weight.to(at::kBFloat16),
                                              eps);  // [N, C]
  REQUIRE(half.scalar_type() == at::kBFloat16);
  REQUIRE(max_abs_diff(half, want) < 5e-2);
}
