// What only the LibTorch adapters have: zero-copy views, float16 / bfloat16 inputs, ATen
// errors as star errors, autograd through the objective (invariant I1 included), and the
// attention read-out with the fused LSE (invariant I3, CPU). The operator tests of tests/unit
// run over the LibTorch backend in the same executable (see CMakeLists.txt).
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "attention_lse_checks.hpp"
#include "require_throws.hpp"
#include "star/allocation/allocate.hpp"
#include "star/attention/probabilities.hpp"
#include "star/backends/reference.hpp"
#include "star/objective/flow_schedule.hpp"
#include "star/objective/policy_gradient.hpp"
#include "star/objective/policy_objective.hpp"
#include "star/objective/reference_kl.hpp"
#include "star/objective/token_log_prob.hpp"
#include "star/torch.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

using star::libtorch::backend;
using star::test::require_throws;

TEST_CASE("libtorch views: view_of aliases a tensor's memory and checks dtype, rank, device, "
          "strides",
          "[torch][views]") {
  using star::libtorch::view_of, star::libtorch::stride_requirement;
  const auto t = at::arange(24, at::kFloat).reshape({2, 3, 4});  // [2, 3, 4]
  const auto view =
      view_of<float, 3>(t, "x", at::Device(at::kCPU), stride_requirement::contiguous);
  REQUIRE(view.data == t.data_ptr<float>());
  REQUIRE(view.dims() == star::shape{2, 3, 4});
  REQUIRE(view(1, 2, 3) == 23.0f);
  view(0, 1, 2) = -1.0f;
  REQUIRE(t[0][1][2].item<float>() == -1.0f);

  const auto transposed = t.transpose(0, 2);  // [4, 3, 2], strides [1, 4, 12]
  const auto strided = view_of<const float, 3>(transposed, "xt");
  REQUIRE(strided(3, 2, 1) == t[1][2][3].item<float>());
  REQUIRE_FALSE(strided.is_contiguous());

  require_throws<star::value_error>([&] { view_of<double, 3>(t, "x"); }, "x: expected dtype");
  require_throws<star::shape_error>([&] { view_of<float, 2>(t, "x"); }, "[2, 3, 4]");
  REQUIRE_THROWS_WITH(
      (view_of<float, 3>(transposed, "xt", std::nullopt, stride_requirement::contiguous)),
      Catch::Contains("xt: expected a contiguous tensor"));
  REQUIRE_THROWS_WITH(
      (view_of<float, 3>(transposed, "xt", std::nullopt, stride_requirement::unit_inner_stride)),
      Catch::Contains("xt: expected stride 1"));
  REQUIRE_THROWS_WITH((view_of<float, 3>(t, "x", at::Device(at::kCUDA, 0))),
                      Catch::Contains("x: expected a tensor on cuda:0"));
  REQUIRE_THROWS_WITH((view_of<float, 3>(at::Tensor(), "u")),
                      Catch::Contains("u: the tensor is undefined"));
  REQUIRE_THROWS_WITH((view_of<float, 3>(t.to_sparse(), "s")),  // [2, 3, 4], sparse
                      Catch::Contains("s: expected a dense strided tensor, got layout Sparse"));
  // a lazily negated tensor stores the values before negation: a view would read them
  const auto negated = at::imag(at::conj(at::complex(at::ones({2}), at::full({2}, 2.0))));  // [2]
  REQUIRE(negated.is_neg());
  REQUIRE_THROWS_WITH((view_of<float, 1>(negated, "n")),
                      Catch::Contains("n: the tensor carries a lazy negation"));
  REQUIRE(view_of<float, 1>(negated.resolve_neg(), "n")(1) == -2.0f);  // [2]
  // an empty tensor is contiguous whatever its strides
  const auto empty = at::empty({2, 0, 3});  // [2, 0, 3]
  REQUIRE(view_of<float, 3>(empty, "e", std::nullopt, stride_requirement::contiguous).size() == 0);

  // from_view: the same memory back as a tensor, strides kept.
  const auto back = star::libtorch::from_view(strided);  // [4, 3, 2]
  REQUIRE(back.data_ptr() == t.data_ptr());
  REQUIRE(back.strides() == transposed.strides());
  REQUIRE(at::equal(back, transposed));
}

TEST_CASE("device_matches: a device without an index is the current one of its type",
          "[torch][views]") {
  using star::libtorch::device_matches;
  const c10::Device cuda(at::kCUDA), cuda0(at::kCUDA, 0), cuda1(at::kCUDA, 1);
  REQUIRE(device_matches(cuda1, cuda, /*current=*/1));
  REQUIRE_FALSE(device_matches(cuda1, cuda, /*current=*/0));  // ATen would allocate on cuda:0
  REQUIRE(device_matches(cuda0, cuda0, /*current=*/1));
  REQUIRE_FALSE(device_matches(cuda1, cuda0, /*current=*/1));
  REQUIRE_FALSE(device_matches(c10::Device(at::kCPU), cuda, /*current=*/0));
  REQUIRE(device_matches(c10::Device(at::kCPU), c10::Device(at::kCPU)));
}

TEST_CASE("libtorch backend: device and dtype state, host round trip, errors as star errors",
          "[torch][backend]") {
  const backend be;
  REQUIRE(be.device() == at::Device(at::kCPU));
  REQUIRE(be.dtype() == at::kFloat);
  REQUIRE(backend(at::kCPU, at::kDouble).full({2}, 0.1).scalar_type() == at::kDouble);
  REQUIRE_THROWS_AS(backend(at::kCPU, at::kHalf), star::option_error);

  // from_host copies (the host values may go away), to_host reads any strides.
  std::vector<double> host{1, 2, 3, 4, 5, 6};
  const auto x = backend(at::kCPU, at::kDouble).from_host(host, {2, 3});  // [2, 3]
  host[0] = 100.0;
  REQUIRE(x[0][0].item<double>() == 1.0);
  star::test::require_close(be.to_host(be.permute(x, {1, 0})), {1, 4, 2, 5, 3, 6}, 0.0);
  REQUIRE(be.to_host(be.full({}, 2.5)) == std::vector<double>{2.5});

  // An empty axis list reduces nothing (ATen would reduce everything).
  REQUIRE(be.shape_of(be.sum(be.full({2, 3}, 1.0), {}, false)) == star::shape{2, 3});
  // amax over an empty axis is -inf, like the reference backend.
  const auto empty_max = be.to_host(be.amax(be.full({2, 0}, 1.0), {1}, false));  // [2]
  REQUIRE(empty_max == std::vector<double>(2, -INFINITY));

  // greater is 0/1 in the compute dtype and carries no gradient.
  const auto a = be.from_host(std::vector<double>{1, 5}, {2}).requires_grad_(true);  // [2]
  const auto g = be.greater(a, be.full({}, 2.0));                                    // [2]
  REQUIRE(g.scalar_type() == at::kFloat);
  REQUIRE_FALSE(g.requires_grad());
  REQUIRE(be.to_host(g) == std::vector<double>{0.0, 1.0});

  // An operand outside the compute dtype is a value_error naming the op: float16 would be
  // summed in float16 (65536 ones: inf), float64 would give float64 results.
  const auto d = at::ones({2, 2}, at::kDouble), f = at::ones({2, 2}, at::kFloat);  // [2, 2] each
  require_throws<star::value_error>([&] { be.matmul(d, f); },
                                    Catch::StartsWith("matmul: expected a tensor in the backend's "
                                                      "compute dtype Float, got Double"));
  REQUIRE_THROWS_WITH(be.sum(at::ones({65536}, at::kHalf), {0}, false),  // [65536]
                      Catch::StartsWith("sum: ") && Catch::Contains("got Half"));
  REQUIRE_THROWS_WITH(be.exp(d), Catch::StartsWith("exp: "));
  REQUIRE_THROWS_WITH(be.greater(f, d), Catch::StartsWith("greater: "));
  // What ATen rejects after star's checks pass becomes a star::error naming the op, with
  // ATen's first line only.
  const auto rejected = [&] {
    try {
      be.clamp(f.to_sparse(), 0.0, 1.0);
    } catch (const star::error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  REQUIRE(rejected.starts_with("clamp: "));
  REQUIRE(rejected.find('\n') == std::string::npos);
  REQUIRE_THROWS_AS(be.clamp(f, 1.0, 0.0), star::value_error);
  REQUIRE_THROWS_WITH(be.add(f, at::ones({3}, at::kFloat)),  // [2, 2] + [3]
                      Catch::Contains("[2, 2]") && Catch::Contains("[3]"));
}

TEST_CASE("libtorch to_compute_dtype: float16 and bfloat16 inputs enter in float32, other "
          "devices and dtypes are rejected",
          "[torch][precision]") {
  const backend be;
  const auto half = at::ones({2, 3}, at::kHalf).requires_grad_(true);  // [2, 3]
  const auto converted = be.to_compute_dtype(half, "q");  // [2, 3]
  REQUIRE(converted.scalar_type() == at::kFloat);
  converted.sum().backward();  // differentiable back to the float16 input
  REQUIRE(half.grad().scalar_type() == at::kHalf);
  REQUIRE(at::equal(half.grad(), at::ones({2, 3}, at::kHalf)));  // [2, 3]
  const auto already = at::ones({2}, at::kFloat);                 // [2]
  REQUIRE(be.to_compute_dtype(already, "x").is_same(already));

  const auto indices = at::ones({2}, at::kLong);  // [2]
  require_throws<star::value_error>([&] { be.to_compute_dtype(indices, "idx"); },
                                    "idx: expected a floating dtype");
  const backend on_gpu(at::Device(at::kCUDA, 0));
  REQUIRE_THROWS_WITH(on_gpu.to_compute_dtype(already, "k"),
                      Catch::Contains("k: expected a tensor on cuda:0"));
  REQUIRE_THROWS_WITH(be.to_compute_dtype(at::Tensor(), "v"),
                      Catch::Contains("v: the tensor is undefined"));
}

/// Worst |got - want| / (1 + |want|).
double worst_error(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i])));
  return worst;
}

TEST_CASE("libtorch float16 and bfloat16 inputs: attention maps and allocation within the "
          "documented tolerances",
          "[torch][precision]") {
  const star::token_layout layout{6, 6, {{"clip", 5}, {"t5", 11}}, true};  // N = 36, T = 52
  const star::shape qk{2, 4, layout.total_tokens(), 32};
  const std::uint64_t seed = 950;
  INFO("seed " << seed);
  const auto count = static_cast<std::size_t>(star::numel(qk));
  const auto q_host = star::test::normal(count, seed), k_host = star::test::normal(count, seed + 1);
  const star::text_selection selection{{1, 4, 9}, {0.5, 0.3, 0.2}};
  const star::reference_backend ref;
  const auto want_relevance = ref.to_host(star::block_relevance(
      ref, ref.from_host(q_host, qk), ref.from_host(k_host, qk), layout, selection));  // [B, N]
  const auto want_weights = ref.to_host(
      star::allocate(ref, ref.from_host(want_relevance, {2, 36}), 0, 10, {}).weights);  // [B, N]

  const backend be, in_double(at::kCPU, at::kDouble);
  for (const auto& [dtype, bound] : {std::pair{at::kHalf, 5e-3}, std::pair{at::kBFloat16, 4e-2}}) {
    INFO("dtype " << c10::toString(dtype));
    const auto q = in_double.from_host(q_host, qk).to(dtype);  // [B, H, T, D]
    const auto k = in_double.from_host(k_host, qk).to(dtype);  // [B, H, T, D]
    const auto relevance = star::block_relevance(be, be.to_compute_dtype(q, "q"),
                                                 be.to_compute_dtype(k, "k"), layout,
                                                 selection);  // [B, N]
    const auto weights = star::allocate(be, relevance, 0, 10, {}).weights;  // [B, N]
    CHECK(worst_error(be.to_host(relevance), want_relevance) <= bound);
    CHECK(worst_error(be.to_host(weights), want_weights) <= bound);
    // On the rounded values themselves, the float32 tolerance holds.
    const auto rounded = star::block_relevance(ref, ref.from_host(be.to_host(q), qk),
                                               ref.from_host(be.to_host(k), qk), layout,
                                               selection);  // [B, N]
    star::test::require_close(be.to_host(relevance), ref.to_host(rounded), 2e-5, "rounded inputs");
  }
}

// ---- autograd through the objective ------------------------------------------------------

/// One SDE transition per row (rows at steps 1, 4, 6, 8 of 10), latents [4, 2, 4, 6],
/// patch 2: N = 6 tokens of 8 elements.
struct latent_case {
  star::shape latent{4, 2, 4, 6};
  std::int64_t patch = 2, rows = 4, tokens = 6;
  std::vector<star::sde_coefficients> coefficients;
  std::vector<double> x_next, mu, mu_ref, ell_old, advantages, allocation, step_weights;
};

latent_case make_latent_case(std::uint64_t seed, bool on_policy_uniform) {
  latent_case c;
  const auto sigmas = star::flow_match_sigmas(10);
  for (const std::size_t step : {1, 4, 6, 8})
    c.coefficients.push_back(star::flow_grpo_sde_coefficients(sigmas, step, 0.7));
  const auto mu = star::test::normal(192, seed), noise = star::test::normal(192, seed + 1);
  const auto offset = star::test::normal(192, seed + 2, 0.0, 0.05);
  for (std::size_t e = 0; e < 192; ++e) {
    const double std_dev = c.coefficients[e / 48].transition_std;
    c.mu.push_back(static_cast<float>(mu[e]));
    c.x_next.push_back(static_cast<float>(mu[e] + std_dev * noise[e]));
    c.mu_ref.push_back(static_cast<float>(mu[e] + offset[e]));
  }
  const star::reference_backend ref;
  c.ell_old = ref.to_host(star::per_token_log_prob(ref, ref.from_host(c.x_next, c.latent),
                                                   ref.from_host(c.mu, c.latent), c.coefficients,
                                                   c.patch));  // [R, N]
  c.advantages = {1.2, -0.4, 0.7, -2.1};
  c.allocation.assign(24, 1.0);
  c.step_weights.assign(4, 1.0);
  if (on_policy_uniform) return c;
  // Off-policy ratios away from the clip kinks, so that the clip acts on some entries only.
  const std::vector<double> log_ratio{0.0005, -0.01, 0.02, -0.0007, 0.05, 0.001};
  for (std::size_t i = 0; i < 24; ++i) c.ell_old[i] -= log_ratio[i % 6] * (1.0 + 0.3 * (i / 6));
  c.allocation = star::test::uniform(24, seed + 3, 0.2, 2.5);
  for (std::size_t r = 0; r < 4; ++r) {
    double mean = 0.0;
    for (std::size_t n = 0; n < 6; ++n) mean += c.allocation[r * 6 + n] / 6.0;
    for (std::size_t n = 0; n < 6; ++n) c.allocation[r * 6 + n] /= mean;
  }
  c.step_weights = {1.0, 0.8, 1.2, 0.9};
  return c;
}

/// The objective inputs on backend `be` with policy means `mu` (a leaf that may require grad);
/// W and gamma only `with_allocation`.
template <class B>
star::policy_objective_inputs<typename B::tensor> inputs_on(const B& be, const latent_case& c,
                                                            const typename B::tensor& mu,
                                                            bool with_allocation) {
  const star::shape tokens{c.rows, c.tokens}, rows{c.rows};
  const auto x_next = be.from_host(c.x_next, c.latent);  // [B, C, H, W]
  const auto mu_ref = be.from_host(c.mu_ref, c.latent);  // [B, C, H, W]
  star::policy_objective_inputs<typename B::tensor> in{
      star::per_token_log_prob(be, x_next, mu, c.coefficients, c.patch),  // [R, N]
      be.from_host(c.ell_old, tokens),                                     // [R, N]
      be.from_host(c.advantages, rows),                                    // [R]
      std::nullopt,
      std::nullopt,
      star::per_token_kl(be, mu, mu_ref, c.coefficients, c.patch)};  // [R, N]
  if (with_allocation) {
    in.allocation = be.from_host(c.allocation, tokens);     // [R, N]
    in.step_weights = be.from_host(c.step_weights, rows);  // [R]
  }
  return in;
}

const char* mode_name(star::objective_mode mode) {
  switch (mode) {
    case star::objective_mode::scalar: return "scalar";
    case star::objective_mode::weighted_scalar: return "weighted_scalar";
    case star::objective_mode::token: return "token";
  }
  return "?";
}

TEST_CASE("autograd: gradients of every objective mode w.r.t. ell, the KL and mu equal the "
          "reference analytic gradient",
          "[torch][autograd][objective]") {
  const std::uint64_t seed = 960;
  INFO("seed " << seed);
  const auto c = make_latent_case(seed, false);
  const star::reference_backend ref;
  for (const auto& [dtype, tol] : {std::pair{at::kDouble, 1e-9}, std::pair{at::kFloat, 2e-4}})
    for (const auto mode : {star::objective_mode::scalar, star::objective_mode::weighted_scalar,
                            star::objective_mode::token})
      for (const auto weighting : {star::kl_weighting::uniform, star::kl_weighting::allocation}) {
        INFO("dtype " << c10::toString(dtype) << ", mode " << mode_name(mode)
                      << ", kl weighting " << static_cast<int>(weighting));
        star::policy_objective_options options;
        options.mode = mode;
        options.beta = 0.04;
        options.kl_weights = weighting;

        const auto ref_in = inputs_on(ref, c, ref.from_host(c.mu, c.latent), true);
        const auto ref_result = star::spatial_policy_objective(ref, ref_in, options);
        REQUIRE(ref_result.clip_fraction > 0.0);
        REQUIRE(ref_result.clip_fraction < 1.0);
        const auto want = star::spatial_policy_gradient(ref, ref_in, options);
        const auto want_mu = ref.to_host(star::spatial_policy_mean_gradient(
            ref, want, ref.from_host(c.x_next, c.latent), ref.from_host(c.mu, c.latent),
            std::optional{ref.from_host(c.mu_ref, c.latent)}, c.coefficients, c.patch));

        const backend be(at::kCPU, dtype);
        // d loss / d ell and d loss / d kl: both as leaves.
        auto in = inputs_on(be, c, be.from_host(c.mu, c.latent), true);
        in.log_prob = in.log_prob.detach().requires_grad_(true);  // [R, N]
        in.kl = in.kl->detach().requires_grad_(true);              // [R, N]
        const auto result = star::spatial_policy_objective(be, in, options);
        CHECK(result.clip_fraction == ref_result.clip_fraction);
        result.loss.backward();
        star::test::require_close(be.to_host(in.log_prob.grad()), ref.to_host(want.log_prob), tol,
                                  "d loss / d ell");
        star::test::require_close(be.to_host(in.kl->grad()), ref.to_host(*want.kl), tol,
                                  "d loss / d kl");

        // d loss / d mu through per_token_log_prob and per_token_kl.
        const auto mu = be.from_host(c.mu, c.latent).requires_grad_(true);  // [B, C, H, W]
        star::spatial_policy_objective(be, inputs_on(be, c, mu, true), options).loss.backward();
        star::test::require_close(be.to_host(mu.grad()), want_mu, tol, "d loss / d mu");
      }
}

TEST_CASE("I1 through autograd: token-mode and scalar-mode gradients are equal when uniform "
          "and on-policy",
          "[torch][autograd][objective][invariant]") {
  const std::uint64_t seed = 970;
  INFO("seed " << seed);
  const auto c = make_latent_case(seed, true);
  for (const auto& [dtype, tol] : {std::pair{at::kDouble, 1e-12}, std::pair{at::kFloat, 2e-6}}) {
    INFO("dtype " << c10::toString(dtype));
    const backend be(at::kCPU, dtype);
    star::policy_objective_options token, scalar;
    token.mode = star::objective_mode::token;
    scalar.mode = star::objective_mode::scalar;
    token.beta = scalar.beta = 0.04;
    const auto gradient = [&](const star::policy_objective_options& options,
                              bool uniform_allocation) {
      const auto mu = be.from_host(c.mu, c.latent).requires_grad_(true);  // [B, C, H, W]
      const auto result = star::spatial_policy_objective(
          be, inputs_on(be, c, mu, uniform_allocation), options);
      REQUIRE(result.clip_fraction == 0.0);
      result.loss.backward();
      return be.to_host(mu.grad());
    };
    const auto token_gradient = gradient(token, true);  // W = 1, gamma = 1
    const auto scalar_gradient = gradient(scalar, false);  // the baseline: no allocation
    REQUIRE(std::any_of(token_gradient.begin(), token_gradient.end(),
                        [](double g) { return g != 0.0; }));
    star::test::require_close(token_gradient, scalar_gradient, tol, "d loss / d mu");
  }
}

// ---- attention read-out ----------------------------------------------------------------

TEST_CASE("I3 attention_with_lse on the CPU: output and LSE equal an explicit softmax, the "
          "selected columns equal the full softmax",
          "[torch][attention][invariant]") {
  const auto expected = STAR_TORCH_VERSION_AT_LEAST(2, 3)
                            ? star::libtorch::attention_lse_source::fused_cpu_flash
                            : star::libtorch::attention_lse_source::chunked;
  star::test::check_attention_with_lse(at::kCPU, expected);
}

TEST_CASE("attention_with_lse with Dv != D equals ATen's explicit softmax in double, the "
          "output carries the gradient, the LSE none",
          "[torch][attention]") {
  const std::uint64_t seed = 933;
  INFO("seed " << seed);
  const backend be;
  const star::shape qk{2, 3, 11, 8}, values{2, 3, 11, 5};  // D = 8, Dv = 5
  const auto q =
      be.from_host(star::test::normal(528, seed), qk).requires_grad_(true);  // [B, H, T, D]
  const auto k = be.from_host(star::test::normal(528, seed + 1), qk);      // [B, H, T, D]
  const auto v = be.from_host(star::test::normal(330, seed + 2), values);  // [B, H, T, Dv]
  const auto result =
      star::libtorch::attention_with_lse(q, k, v, 0.3, 4);  // [B, H, T, Dv], lse [B, H, T]
  const auto want = star::test::explicit_attention(q, k, v, 0.3);  // [B, H, T, Dv], lse [B, H, T]
  star::test::require_close(be.to_host(result.output), be.to_host(want.output), 2e-5, "output");
  star::test::require_close(be.to_host(result.lse), be.to_host(want.lse), 2e-5, "lse");
  REQUIRE(result.output.requires_grad());
  REQUIRE_FALSE(result.lse.requires_grad());
  result.output.sum().backward();
  REQUIRE(q.grad().defined());
  REQUIRE(q.grad().abs().sum().item<double>() > 0.0);
}

TEST_CASE("the read-out of bfloat16 q, k (only the gathered rows converted) equals the one of "
          "float32 q, k, add_selected_block adds the map of selected_block_relevance",
          "[torch][attention]") {
  const star::token_layout layout{4, 5, {{"t5", 10}}, false};  // N = 20, L = 10, T = 30
  const star::shape qk{2, 3, 30, 8};
  const std::uint64_t seed = 977;
  INFO("seed " << seed);
  const auto count = static_cast<std::size_t>(star::numel(qk));
  const backend be;
  const auto q =
      be.from_host(star::test::normal(count, seed), qk).to(at::kBFloat16);  // [B, H, T, D]
  const auto k =
      be.from_host(star::test::normal(count, seed + 1), qk).to(at::kBFloat16);  // [B, H, T, D]
  const auto q_float = q.to(at::kFloat), k_float = k.to(at::kFloat);  // [B, H, T, D] all four
  const auto lse = star::libtorch::attention_with_lse(q_float, k_float, q_float).lse;  // [B, H, T]
  const star::text_selection selection{{7, 0, 4}, {0.2, 0.5, 0.3}};

  const auto image_lse =
      lse.slice(2, layout.image_begin(), layout.image_begin() + 20);  // [B, H, N]
  star::test::require_close(
      be.to_host(star::libtorch::selected_attention_probabilities(be, q, k, layout,
                                                                  selection.indices, lse)),
      be.to_host(star::attention_probabilities(be, q_float, k_float, layout, selection.indices,
                                               image_lse)),
      1e-6, "bfloat16 rows converted after gathering");

  const auto want =
      star::libtorch::selected_block_relevance(be, q, k, layout, selection, lse);  // [B, N]
  star::lse_relevance_accumulator<backend> accumulator(be, selection, {},
                                                       std::set<std::int64_t>{0, 2});
  const auto q_grad = q.detach().requires_grad_(true);  // [B, H, T, D]
  for (std::int64_t block = 0; block < 3; ++block)
    REQUIRE(star::libtorch::add_selected_block(accumulator, block, q_grad, k, layout, lse) ==
            (block != 1));
  REQUIRE(accumulator.blocks_added() == 2);
  const auto mean = accumulator.result();  // [B, N]
  REQUIRE_FALSE(mean.requires_grad());
  star::test::require_close(be.to_host(mean), be.to_host(want), 1e-6, "mean of equal maps");

  star::lse_relevance_accumulator<backend> with_nan(be, selection);
  const auto nan_lse = lse.clone().fill_(NAN);  // [B, H, T]
  REQUIRE(star::libtorch::add_selected_block(with_nan, 0, q, k, layout, nan_lse));
  REQUIRE_THROWS_AS(with_nan.result(), star::value_error);
  require_throws<star::shape_error>(
      [&] { star::libtorch::add_selected_block(with_nan, 1, q, k, layout, image_lse); },
      "lse: expected shape [B, H, T]");
  const auto int_k = k.to(at::kInt);  // [B, H, T, D]
  REQUIRE_THROWS_WITH(star::libtorch::add_selected_block(with_nan, 1, q, int_k, layout, lse),
                      Catch::Contains("k: expected a floating dtype"));
}

TEST_CASE("attention_with_lse and the read-out reject bad inputs, naming them",
          "[torch][attention][errors]") {
  using star::libtorch::attention_with_lse, star::libtorch::selected_attention_probabilities;
  using star::option_error, star::shape_error, star::value_error;
  const auto q = at::randn({1, 2, 30, 8});  // [B, H, T, D]
  const auto v = at::randn({1, 2, 30, 4});  // [B, H, T, Dv]
  const auto q_rank_3 = q.view({2, 30, 8});  // [B * H, T, D]
  require_throws<shape_error>([&] { attention_with_lse(q_rank_3, q, v); }, "q");
  REQUIRE_THROWS_WITH(attention_with_lse(q, q.slice(2, 0, 29), v),  // k [B, H, T - 1, D]
                      Catch::Contains("k: expected shape"));
  REQUIRE_THROWS_WITH(attention_with_lse(q, q, v.slice(2, 0, 29)),  // v [B, H, T - 1, Dv]
                      Catch::Contains("v: expected shape"));
  require_throws<option_error>([&] { attention_with_lse(q, q, v, -1.0); }, "scale");
  REQUIRE_THROWS_WITH(attention_with_lse(q, q, v, std::nullopt, 0), Catch::Contains("key_chunk"));
  REQUIRE_THROWS_WITH(attention_with_lse(q, at::Tensor(), v),
                      Catch::Contains("k: the tensor is undefined"));
  const auto q_long = q.to(at::kLong);  // [B, H, T, D]
  require_throws<value_error>([&] { attention_with_lse(q_long, q, v); },
                              "q: expected a floating dtype, got Long");
  REQUIRE_THROWS_WITH(attention_with_lse(q, q, v.to(at::kBool)),  // [B, H, T, Dv]
                      Catch::Contains("v: expected a floating dtype, got Bool"));
  const auto no_dims = at::zeros({1, 2, 30, 0});   // [B, H, T, 0]
  const auto no_tokens = at::zeros({1, 2, 0, 8});  // [B, H, 0, D]
  require_throws<shape_error>([&] { attention_with_lse(no_dims, no_dims, v); },
                              "q: expected [B, H, T, D] with T >= 1 and D >= 1");
  REQUIRE_THROWS_WITH(attention_with_lse(no_tokens, no_tokens, v.slice(2, 0, 0)),  // [B, H, 0, Dv]
                      Catch::Contains("T >= 1"));

  const star::token_layout layout{4, 5, {{"t5", 10}}, true};  // T = 30
  const backend be;
  const auto lse = attention_with_lse(q, q, v).lse;  // [1, 2, 30]
  const std::vector<std::int64_t> columns{0, 9};
  const auto image_lse = lse.slice(2, 0, 20);  // [B, H, N]
  require_throws<shape_error>(
      [&] { selected_attention_probabilities(be, q, q, layout, columns, image_lse); },
      "lse: expected shape [B, H, T]");
  REQUIRE_THROWS_WITH(
      selected_attention_probabilities(be, q, q, layout, std::vector<std::int64_t>{10}, lse),
      Catch::Contains("columns"));
  const auto nan_lse = lse.clone().fill_(NAN);  // [B, H, T]
  REQUIRE_THROWS_AS(selected_attention_probabilities(be, q, q, layout, columns, nan_lse),
                    value_error);
  const auto two = at::ones({2});  // [2]
  REQUIRE(star::libtorch::lse_from_log2(two).allclose(at::full({2}, std::log(2.0))));  // [2]
}

}  // namespace
