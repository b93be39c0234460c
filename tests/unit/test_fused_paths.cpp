// The fused tier of the Eigen backend against the composite algorithms it replaces: allocation
// (every schedule, sharpening, cap, all-zero and one-hot rows) and the policy objective and its
// gradient (every mode, with and without W, gamma and KL), plus identical errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "star/allocation/allocate.hpp"
#include "star/eigen/fast_log.hpp"
#include "star/objective/policy_gradient.hpp"
#include "star/objective/policy_objective.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

#if STAR_TEST_WITH_EIGEN

namespace {

static_assert(star::fused_allocation_backend<star::eigen::backend<float>>);
static_assert(star::fused_allocation_backend<star::eigen::backend<double>>);
static_assert(star::fused_policy_objective_backend<star::eigen::backend<float>>);
static_assert(star::fused_policy_objective_backend<star::eigen::backend<double>>);
static_assert(star::fused_policy_gradient_backend<star::eigen::backend<float>>);
static_assert(star::fused_policy_gradient_backend<star::eigen::backend<double>>);
static_assert(!star::fused_allocation_backend<star::reference_backend>);
static_assert(!star::fused_policy_objective_backend<star::reference_backend>);
static_assert(!star::fused_policy_gradient_backend<star::test::odd_backend>);

constexpr std::int64_t rows = 12, tokens = 96;

/// Random relevance [rows, tokens] with an all-zero row 3, a one-hot row 5 and a sparse row 7.
std::vector<double> relevance_values(std::uint64_t seed) {
  auto values = star::test::uniform(rows * tokens, seed, 0.0, 1.0);
  for (std::int64_t n = 0; n < tokens; ++n) {
    values[static_cast<std::size_t>(3 * tokens + n)] = 0.0;
    values[static_cast<std::size_t>(5 * tokens + n)] = n == 17 ? 4.0 : 0.0;
    if (n % 9 != 0) values[static_cast<std::size_t>(7 * tokens + n)] = 0.0;
  }
  return values;
}

/// The message `f` throws as `Error`, or "" when it does not throw.
template <class Error, class F>
std::string message_of(const F& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEMPLATE_TEST_CASE("fused allocate equals allocate_composite for every schedule, tau and cap",
                   "[fused][allocation]", star::eigen::backend<float>,
                   star::eigen::backend<double>) {
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 101;
  INFO("seed " << seed);
  const auto relevance = be.from_host(relevance_values(seed), {rows, tokens});  // [B, N]
  std::vector<std::int64_t> steps(rows);
  for (std::int64_t r = 0; r < rows; ++r) steps[static_cast<std::size_t>(r)] = r % 10;

  std::vector<star::allocation_options> variants(6);
  variants[1].schedule = star::mixing_schedule::entropy;
  variants[1].tau = 0.5;
  variants[2].schedule = star::mixing_schedule::linear;
  variants[2].w_max = 3.0;
  variants[3].schedule = star::mixing_schedule::cosine;
  variants[3].tau = 2.0;
  variants[3].w_max = 1.5;
  variants[4].lambda = 0.0;  // one-hot row with a cap below N: the starved rule
  variants[4].w_max = 2.0;
  variants[5].schedule = star::mixing_schedule::entropy;
  variants[5].w_max = 1.2;
  for (std::size_t v = 0; v < variants.size(); ++v) {
    INFO("variant " << v);
    const auto fused = star::allocate(be, relevance, steps, 10, variants[v]);
    const auto composite = star::allocate_composite(be, relevance, steps, 10, variants[v]);
    star::test::require_close(be.to_host(fused.weights), be.to_host(composite.weights), tol,
                              "weights");
    star::test::require_close(fused.lambda, composite.lambda, tol, "lambda");
    star::test::require_close(fused.entropy, composite.entropy, tol, "entropy");
    CHECK(fused.capped_entries == composite.capped_entries);
    if (variants[v].w_max && *variants[v].w_max < static_cast<double>(tokens))
      CHECK(fused.capped_entries > 0);  // the cap binds (at least the one-hot row)
  }
}

TEMPLATE_TEST_CASE("fused allocate rejects bad relevance and steps with the composite's errors",
                   "[fused][allocation][errors]", star::eigen::backend<float>,
                   star::eigen::backend<double>) {
  const TestType be{};
  for (const double bad : {-0.25, std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity()}) {
    INFO("bad entry " << bad);
    auto values = relevance_values(7);
    values[40] = bad;
    const auto relevance = be.from_host(values, {rows, tokens});  // [B, N]
    REQUIRE_THROWS_AS(star::allocate(be, relevance, 0, 10), star::value_error);
    REQUIRE_THROWS_WITH(star::allocate(be, relevance, 0, 10), Catch::Contains("relevance"));
    const std::vector<std::int64_t> first_step(rows, 0);
    const std::string composite = message_of<star::value_error>(
        [&] { star::allocate_composite(be, relevance, first_step, 10); });
    CHECK(message_of<star::value_error>([&] { star::allocate(be, relevance, 0, 10); }) ==
          composite);
    // A value error comes before a bad step, as in the composite.
    CHECK(message_of<star::value_error>([&] { star::allocate(be, relevance, 12, 10); }) ==
          composite);
  }
  const auto relevance = be.from_host(relevance_values(7), {rows, tokens});  // [B, N]
  REQUIRE_THROWS_AS(star::allocate(be, relevance, 10, 10), star::option_error);
  REQUIRE_THROWS_WITH(star::allocate(be, relevance, 10, 10), Catch::Contains("step"));
  const std::vector<std::int64_t> short_steps(rows - 1, 0);
  REQUIRE_THROWS_AS(star::allocate(be, relevance, short_steps, 10), star::shape_error);
  REQUIRE_THROWS_WITH(star::allocate(be, relevance, short_steps, 10), Catch::Contains("steps"));
}

TEMPLATE_TEST_CASE("fused allocate takes -0 as 0 and rejects -inf and negative NaN",
                   "[fused][allocation][errors]", star::eigen::backend<float>,
                   star::eigen::backend<double>) {
  const TestType be{};
  auto values = relevance_values(8);
  values[40] = -0.0;
  values[3 * tokens + 5] = -0.0;  // in the all-zero row
  const std::vector<std::int64_t> first_step(rows, 0);
  const auto relevance = be.from_host(values, {rows, tokens});  // [B, N]
  const auto fused = star::allocate(be, relevance, 0, 10);
  const auto composite = star::allocate_composite(be, relevance, first_step, 10);
  star::test::require_close(be.to_host(fused.weights), be.to_host(composite.weights),
                            star::test::tolerance<TestType>::value);
  for (const double bad : {-std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::quiet_NaN(), -1e-30}) {
    INFO("bad entry " << bad);
    values[40] = bad;
    const auto bad_relevance = be.from_host(values, {rows, tokens});  // [B, N]
    REQUIRE_THROWS_AS(star::allocate(be, bad_relevance, 0, 10), star::value_error);
    REQUIRE_THROWS_WITH(star::allocate(be, bad_relevance, 0, 10), Catch::Contains("relevance"));
  }
}

TEMPLATE_TEST_CASE("fused allocate scales by the row maximum exactly: subnormal maxima and a "
                   "small tau give the composite's finite weights",
                   "[fused][allocation]", float, double) {
  const star::eigen::backend<TestType> be{};
  const double tol = star::test::tolerance<star::eigen::backend<TestType>>::value;
  // Row 0: maximum a subnormal of the backend's type, whose reciprocal overflows to +inf.
  // Row 1: maximum 107, with 107 * (1 / 107) < 1 in float and double, so a product with the
  // reciprocal and then pow(., 1 / tau) would send every entry to 0.
  const double subnormal = std::numeric_limits<TestType>::denorm_min() * 8;
  std::vector<double> values(2 * tokens, 0.0);
  for (std::int64_t n = 0; n < tokens; n += 3) {
    values[static_cast<std::size_t>(n)] = n == 9 ? subnormal : subnormal / 2;
    values[static_cast<std::size_t>(tokens + n)] = n == 9 ? 107.0 : 53.0;
  }
  const auto relevance = be.from_host(values, {2, tokens});  // [2, N]
  const std::vector<std::int64_t> first_step(2, 0);
  for (const double tau : {1.0, 1e-20}) {
    INFO("tau " << tau);
    star::allocation_options options;
    options.tau = tau;
    const auto fused = star::allocate(be, relevance, 0, 10, options);
    const auto composite = star::allocate_composite(be, relevance, first_step, 10, options);
    const std::vector<double> weights = be.to_host(fused.weights);
    CHECK(std::all_of(weights.begin(), weights.end(), [](double w) { return std::isfinite(w); }));
    star::test::require_close(weights, be.to_host(composite.weights), tol, "weights");
    star::test::require_close(fused.entropy, composite.entropy, tol, "entropy");
    if (tau == 1e-20)  // one-hot map: W = (1 - lambda) N + lambda at the maximum, lambda else
      for (std::int64_t r = 0; r < 2; ++r)
        CHECK(weights[static_cast<std::size_t>(r * tokens + 9)] ==
              Approx(0.5 * static_cast<double>(tokens) + 0.5));
  }
}

TEMPLATE_TEST_CASE("fast_log matches std::log for 0 < x <= 1 and stays finite at 0 and subnormals",
                   "[fused][fast_log]", float, double) {
  using star::eigen::detail::fast_log;
  using limits = std::numeric_limits<TestType>;
  // float: within 1e-6 max(1, |log x|) of the double log (1e-6 absolute where |log x| <= 1);
  // double: within 5e-16 max(1, |log x|) of the long double log.
  const long double bound = std::is_same_v<TestType, float> ? 1e-6L : 5e-16L;
  long double worst = 0.0L;
  TestType worst_at = 1;
  const auto check = [&](TestType x) {
    const long double exact = std::log(static_cast<long double>(x));
    const long double error = std::fabs(static_cast<long double>(fast_log(x)) - exact) /
                              std::max(1.0L, std::fabs(exact));
    if (error > worst) worst = error, worst_at = x;
  };
  // Dense sweep of bit patterns from the smallest normal number up to 1: every 61st float,
  // a log-uniform stride through the doubles.
  using bits = std::conditional_t<std::is_same_v<TestType, float>, std::uint32_t, std::uint64_t>;
  const bits first = std::bit_cast<bits>(limits::min()), last = std::bit_cast<bits>(TestType{1});
  const bits stride = std::is_same_v<TestType, float> ? bits{61} : (last - first) / 4000000;
  for (bits pattern = first; pattern <= last; pattern += stride)
    check(std::bit_cast<TestType>(pattern));
  // Edges: the smallest normals, the clamp 1e-30, both sides of the reduction boundaries
  // sqrt(1/2) and 1, and every power of two.
  for (TestType x : {limits::min(), std::nextafter(limits::min(), TestType{1}),
                     static_cast<TestType>(1e-30), std::nextafter(TestType{1}, TestType{0}),
                     TestType{1}, std::nextafter(TestType{1}, TestType{2})})
    check(x);
  for (const TestType centre : {static_cast<TestType>(std::sqrt(0.5)), TestType{1}}) {
    TestType x = centre;
    for (int step = 0; step < 64; ++step) x = std::nextafter(x, TestType{0});
    for (int step = 0; step < 128; ++step, x = std::nextafter(x, TestType{2})) check(x);
  }
  for (TestType x = limits::min(); x <= TestType{1}; x *= 2) check(x);
  INFO("worst relative error " << static_cast<double>(worst) << " at " << worst_at);
  CHECK(worst <= bound);
  CHECK(fast_log(TestType{1}) == TestType{0});
  // 0 and subnormals: finite, within 1 of log(min()), so x log x -> 0 without a clamp.
  const TestType log_min = std::log(limits::min());
  for (const TestType x : {TestType{0}, limits::denorm_min(), limits::min() / 3,
                           std::nextafter(limits::min(), TestType{0})}) {
    INFO("x " << x);
    CHECK(std::isfinite(fast_log(x)));
    CHECK(std::fabs(fast_log(x) - log_min) <= 1);
    CHECK(x * fast_log(x) <= TestType{0});
  }
}

TEMPLATE_TEST_CASE("fused objective and gradient equal the composite in every mode, with and "
                   "without W, gamma and KL",
                   "[fused][objective]", star::eigen::backend<float>,
                   star::eigen::backend<double>) {
  using tensor = typename TestType::tensor;
  const TestType be{};
  const double tol = star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 202;
  INFO("seed " << seed);
  const star::shape shape{rows, tokens};
  const auto old_log_prob = star::test::normal(rows * tokens, seed);
  auto log_prob = old_log_prob;
  const auto drift = star::test::normal(log_prob.size(), seed + 1, 0.0, 3e-3);  // clips some
  for (std::size_t i = 0; i < log_prob.size(); ++i) log_prob[i] += drift[i];
  const tensor allocation =
      be.from_host(star::test::uniform(rows * tokens, seed + 2, 0.0, 2.0), shape);  // [R, N]
  const tensor kl = be.from_host(star::test::uniform(rows * tokens, seed + 3, 0.0, 0.1), shape);
  auto advantages = star::test::normal(rows, seed + 4);
  advantages[2] = 0.0;  // a zero-advantage row
  const tensor gamma = be.from_host(star::test::uniform(rows, seed + 5, 0.5, 1.5), {rows});  // [R]

  for (const auto mode : {star::objective_mode::scalar, star::objective_mode::weighted_scalar,
                          star::objective_mode::token}) {
    for (int extras = 0; extras < 8; ++extras) {
      const bool with_w = (extras & 1) != 0 || mode != star::objective_mode::scalar;
      const bool with_gamma = (extras & 2) != 0, with_kl = (extras & 4) != 0;
      INFO("mode " << static_cast<int>(mode) << " W " << with_w << " gamma " << with_gamma
                   << " KL " << with_kl);
      star::policy_objective_inputs<tensor> in{be.from_host(log_prob, shape),     // [R, N]
                                               be.from_host(old_log_prob, shape),  // [R, N]
                                               be.from_host(advantages, {rows}),   // [R]
                                               std::nullopt, std::nullopt, std::nullopt};
      if (with_w) in.allocation = allocation;
      if (with_gamma) in.step_weights = gamma;
      if (with_kl) in.kl = kl;
      star::policy_objective_options options{.mode = mode};
      if (with_kl) {
        options.beta = 0.04;
        if (with_w && with_gamma) options.kl_weights = star::kl_weighting::allocation;
      }
      const auto fused = star::spatial_policy_objective(be, in, options);
      const auto composite = star::spatial_policy_objective_composite(be, in, options);
      star::test::require_close(
          {be.to_host(fused.loss)[0], fused.policy_loss, fused.kl_loss, fused.clip_fraction,
           fused.outside_clip_range_fraction, fused.approx_kl},
          {be.to_host(composite.loss)[0], composite.policy_loss, composite.kl_loss,
           composite.clip_fraction, composite.outside_clip_range_fraction, composite.approx_kl},
          tol, "loss, policy loss, KL loss, clip fraction, outside fraction, approx KL");
      if (mode == star::objective_mode::token) CHECK(composite.clip_fraction > 0.0);

      const auto fused_gradient = star::spatial_policy_gradient(be, in, options);
      const auto composite_gradient = star::spatial_policy_gradient_composite(be, in, options);
      star::test::require_close(be.to_host(fused_gradient.log_prob),
                                be.to_host(composite_gradient.log_prob), tol, "d loss / d ell");
      REQUIRE(fused_gradient.kl.has_value() == with_kl);
      if (with_kl)
        star::test::require_close(be.to_host(*fused_gradient.kl),
                                  be.to_host(*composite_gradient.kl), tol, "d loss / d kl");
    }
  }
}

TEMPLATE_TEST_CASE("fused objective rejects non-finite inputs with the composite's errors",
                   "[fused][objective][errors]", star::eigen::backend<float>,
                   star::eigen::backend<double>) {
  using tensor = typename TestType::tensor;
  const TestType be{};
  const star::shape shape{rows, tokens};
  const auto finite = star::test::normal(rows * tokens, 9);
  auto broken = finite;
  broken[100] = std::numeric_limits<double>::infinity();
  const star::policy_objective_options options{.beta = 0.01};
  for (const char* arg : {"log_prob", "old_log_prob", "allocation", "kl"}) {
    INFO("non-finite " << arg);
    const std::string name = arg;
    star::policy_objective_inputs<tensor> in{
        be.from_host(name == "log_prob" ? broken : finite, shape),          // [R, N]
        be.from_host(name == "old_log_prob" ? broken : finite, shape),      // [R, N]
        be.from_host(star::test::normal(rows, 10), {rows}),                 // [R]
        be.from_host(name == "allocation" ? broken : finite, shape),        // [R, N]
        std::nullopt,
        be.from_host(name == "kl" ? broken : finite, shape)};               // [R, N]
    REQUIRE_THROWS_AS(star::spatial_policy_objective(be, in, options), star::value_error);
    REQUIRE_THROWS_WITH(star::spatial_policy_objective(be, in, options), Catch::Contains(arg));
    REQUIRE_THROWS_AS(star::spatial_policy_gradient(be, in, options), star::value_error);
    REQUIRE_THROWS_WITH(star::spatial_policy_gradient(be, in, options), Catch::Contains(arg));
    CHECK(message_of<star::value_error>([&] { star::spatial_policy_objective(be, in, options); }) ==
          message_of<star::value_error>(
              [&] { star::spatial_policy_objective_composite(be, in, options); }));
  }
}

#endif  // STAR_TEST_WITH_EIGEN
