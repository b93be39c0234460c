// The spatially resolved policy objective on per-token log-probabilities: every mode against a
// host loop, hand-built clipping cases, the KL weighting, mode equivalences and bad inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "star/objective/policy_gradient.hpp"
#include "star/objective/policy_objective.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"

namespace {

using star::kl_weighting;
using star::objective_mode;

/// Host copies of the objective's inputs; every value is float-representable so that a float
/// backend sees exactly the same numbers.
struct host_inputs {
  std::int64_t rows = 0, tokens = 0;
  std::vector<double> ell, ell_old, advantages;
  std::optional<std::vector<double>> allocation, step_weights, kl;
};

/// What the objective returns, computed by plain loops in double.
struct host_outputs {
  double loss = 0, policy_loss = 0, kl_loss = 0, clip_fraction = 0, outside = 0, approx_kl = 0;
  std::vector<double> d_ell, d_kl;
};

std::vector<double> rounded_to_float(std::vector<double> values) {
  for (double& v : values) v = static_cast<float>(v);
  return values;
}

/// Off-policy inputs: log-ratios `u_r + v_rn`, `u ~ U(-3 eps, 3 eps)`, `v ~ U(-eps, eps)`;
/// W positive with mean 1 per row.
host_inputs random_inputs(std::int64_t rows, std::int64_t tokens, double eps,
                          std::uint64_t seed) {
  const auto count = static_cast<std::size_t>(rows * tokens);
  const auto rows_count = static_cast<std::size_t>(rows);
  host_inputs in{rows, tokens, {}, {}, {}, {}, {}, {}};
  in.ell = rounded_to_float(star::test::uniform(count, seed, -2.0, -0.5));
  const auto row_offset = star::test::uniform(rows_count, seed + 1, -3 * eps, 3 * eps);
  const auto token_offset = star::test::uniform(count, seed + 2, -eps, eps);
  in.ell_old.resize(count);
  for (std::size_t i = 0; i < count; ++i)
    in.ell_old[i] = static_cast<float>(
        in.ell[i] - row_offset[i / static_cast<std::size_t>(tokens)] - token_offset[i]);
  in.advantages = rounded_to_float(star::test::normal(rows_count, seed + 3));
  auto allocation = star::test::uniform(count, seed + 4, 0.1, 3.0);
  for (std::size_t r = 0; r < rows_count; ++r) {
    const auto begin = allocation.begin() + static_cast<std::ptrdiff_t>(r * tokens);
    const double mean = std::accumulate(begin, begin + tokens, 0.0) / static_cast<double>(tokens);
    std::for_each(begin, begin + tokens, [mean](double& w) { w /= mean; });
  }
  in.allocation = allocation;
  in.step_weights = rounded_to_float(star::test::uniform(rows_count, seed + 5, 0.5, 1.5));
  in.kl = rounded_to_float(star::test::uniform(count, seed + 6, 0.0, 0.1));
  return in;
}

template <class B>
star::policy_objective_inputs<typename B::tensor> on_backend(const B& be, const host_inputs& in) {
  const star::shape tokens{in.rows, in.tokens}, rows{in.rows};
  const auto optional_tensor = [&](const std::optional<std::vector<double>>& values,
                                   const star::shape& s) {
    return values ? std::optional{be.from_host(*values, s)} : std::nullopt;
  };
  return {be.from_host(in.ell, tokens), be.from_host(in.ell_old, tokens),
          be.from_host(in.advantages, rows), optional_tensor(in.allocation, tokens),
          optional_tensor(in.step_weights, rows), optional_tensor(in.kl, tokens)};
}

/// The objective and its gradient by plain loops over ratio entries.
host_outputs host_objective(const host_inputs& in, const star::policy_objective_options& o) {
  const auto rows = static_cast<std::size_t>(in.rows), tokens = static_cast<std::size_t>(in.tokens);
  const double eps = o.active_clip_range();
  const bool per_token = o.mode == objective_mode::token;
  const auto at = [&](const std::optional<std::vector<double>>& v, std::size_t i) {
    return v ? (*v)[i] : 1.0;
  };
  host_outputs out;
  out.d_ell.assign(rows * tokens, 0.0);
  const std::size_t entries = per_token ? rows * tokens : rows;
  for (std::size_t e = 0; e < entries; ++e) {
    const std::size_t r = per_token ? e / tokens : e;
    double log_ratio = 0.0, advantage = in.advantages[r] * at(in.step_weights, r);
    std::vector<double> pooling(tokens, 0.0);  // d log_ratio / d ell(r, n)
    if (per_token) {
      log_ratio = in.ell[e] - in.ell_old[e];
      advantage *= (*in.allocation)[e];
      pooling[e % tokens] = 1.0;
    } else {
      for (std::size_t n = 0; n < tokens; ++n) {
        const double w = o.mode == objective_mode::scalar ? 1.0 : (*in.allocation)[r * tokens + n];
        pooling[n] = w / static_cast<double>(tokens);
        log_ratio += pooling[n] * (in.ell[r * tokens + n] - in.ell_old[r * tokens + n]);
      }
    }
    const double ratio = std::exp(log_ratio);
    const double unclipped = -advantage * ratio;
    const double clipped = -advantage * std::clamp(ratio, 1.0 - eps, 1.0 + eps);
    const bool clip_acts = clipped > unclipped;
    out.policy_loss += std::max(unclipped, clipped) / static_cast<double>(entries);
    out.clip_fraction += clip_acts ? 1.0 / static_cast<double>(entries) : 0.0;
    out.outside += std::abs(ratio - 1.0) > eps ? 1.0 / static_cast<double>(entries) : 0.0;
    out.approx_kl += 0.5 * log_ratio * log_ratio / static_cast<double>(entries);
    for (std::size_t n = 0; n < tokens; ++n)
      out.d_ell[r * tokens + n] +=
          clip_acts ? 0.0 : unclipped * pooling[n] / static_cast<double>(entries);
  }
  out.loss = out.policy_loss;
  if (in.kl) {
    out.d_kl.resize(rows * tokens);
    for (std::size_t i = 0; i < rows * tokens; ++i) {
      const double weight = o.kl_weights == kl_weighting::allocation ? (*in.allocation)[i] : 1.0;
      out.kl_loss += weight * (*in.kl)[i] / static_cast<double>(rows * tokens);
      out.d_kl[i] = o.beta * weight / static_cast<double>(rows * tokens);
    }
    out.loss += o.beta * out.kl_loss;
  }
  return out;
}

const char* name_of(objective_mode mode) {
  switch (mode) {
    case objective_mode::scalar: return "scalar";
    case objective_mode::weighted_scalar: return "weighted_scalar";
    case objective_mode::token: return "token";
  }
  return "?";
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("objective: every mode and KL weighting matches a host loop (loss, "
                        "metrics, gradients)",
                        "[objective]", star::test::all_backends) {
  TestType be{};
  const double tol = 10 * star::test::tolerance<TestType>::value;
  for (const auto mode : {objective_mode::scalar, objective_mode::weighted_scalar,
                          objective_mode::token})
    for (const auto weighting : {kl_weighting::uniform, kl_weighting::allocation}) {
      const std::uint64_t seed = 100;
      INFO("mode " << name_of(mode) << ", kl weighting "
                   << (weighting == kl_weighting::uniform ? "uniform" : "allocation")
                   << ", seed " << seed);
      star::policy_objective_options options;
      options.mode = mode;
      options.beta = 0.04;
      options.kl_weights = weighting;
      const auto host = random_inputs(8, 6, options.active_clip_range(), seed);
      const auto want = host_objective(host, options);
      REQUIRE(want.clip_fraction > 0.0);  // the inputs exercise the clip
      REQUIRE(want.clip_fraction < 1.0);

      const auto in = on_backend(be, host);
      const auto got = star::spatial_policy_objective(be, in, options);
      REQUIRE(be.shape_of(got.loss).empty());
      star::test::require_close(be.to_host(got.loss), {want.loss}, tol, "loss");
      CHECK(got.policy_loss == Approx(want.policy_loss).margin(tol));
      CHECK(got.kl_loss == Approx(want.kl_loss).margin(tol));
      CHECK(got.clip_fraction == Approx(want.clip_fraction).margin(tol));
      CHECK(got.outside_clip_range_fraction == Approx(want.outside).margin(tol));
      CHECK(got.approx_kl == Approx(want.approx_kl).margin(tol));

      const auto gradient = star::spatial_policy_gradient(be, in, options);
      star::test::require_close(be.to_host(gradient.log_prob), want.d_ell, tol, "d loss / d ell");
      REQUIRE(gradient.kl.has_value());
      star::test::require_close(be.to_host(*gradient.kl), want.d_kl, tol, "d loss / d kl");
    }
}

TEMPLATE_LIST_TEST_CASE("objective: clipping on hand-built ratios with positive and negative "
                        "advantages (token mode)",
                        "[objective][clip]", star::test::all_backends) {
  TestType be{};
  const double tol = 10 * star::test::tolerance<TestType>::value;
  // Ratios 1.05 (inside), 1.2 (above), 0.8 (below) for A = +1 (row 0) and A = -1 (row 1).
  const std::vector<double> ratios{1.05, 1.2, 0.8, 1.05, 1.2, 0.8};
  std::vector<double> ell(6, 0.0);
  for (std::size_t i = 0; i < 6; ++i) ell[i] = std::log(ratios[i]);
  star::policy_objective_options options;
  options.token_clip_range = 0.1;
  const star::policy_objective_inputs<typename TestType::tensor> in{
      be.from_host(ell, {2, 3}), be.full({2, 3}, 0.0),
      be.from_host(std::vector<double>{1.0, -1.0}, {2}), be.full({2, 3}, 1.0), std::nullopt,
      std::nullopt};
  const auto result = star::spatial_policy_objective(be, in, options);
  // Row 0: max(-1.05, -1.05), max(-1.2, -1.1) clip acts, max(-0.8, -0.9) unclipped wins.
  // Row 1: max(1.05, 1.05), max(1.2, 1.1) unclipped wins, max(0.8, 0.9) clip acts.
  CHECK(result.policy_loss == Approx((-1.05 - 1.1 - 0.8 + 1.05 + 1.2 + 0.9) / 6).margin(tol));
  CHECK(result.clip_fraction == Approx(2.0 / 6.0).margin(tol));
  CHECK(result.outside_clip_range_fraction == Approx(4.0 / 6.0).margin(tol));
  double approx_kl = 0.0;
  for (const double l : ell) approx_kl += 0.5 * l * l / 6.0;
  CHECK(result.approx_kl == Approx(approx_kl).margin(tol));
  CHECK(result.kl_loss == 0.0);
  const auto gradient = star::spatial_policy_gradient(be, in, options);
  CHECK_FALSE(gradient.kl.has_value());
  star::test::require_close(be.to_host(gradient.log_prob),
                            {-1.05 / 6, 0.0, -0.8 / 6, 1.05 / 6, 1.2 / 6, 0.0}, tol,
                            "zero slope exactly where the clip acts");
}

TEMPLATE_LIST_TEST_CASE("objective: scalar mode clips one ratio per row, from the mean over "
                        "tokens, with Flow-GRPO's eps 1e-4",
                        "[objective][clip]", star::test::all_backends) {
  TestType be{};
  const double tol = 10 * star::test::tolerance<TestType>::value;
  // Per-row log-ratios (the mean of two tokens' log-ratios) 3e-5 (inside), -5e-4 (below),
  // 4e-4 (above), -4e-4 (below); advantages +1.5, -1, +0.5, +2.
  const std::vector<double> row_log_ratio{3e-5, -5e-4, 4e-4, -4e-4};
  const std::vector<double> advantages{1.5, -1.0, 0.5, 2.0};
  std::vector<double> ell(8), ell_old(8, 0.0);
  for (std::size_t r = 0; r < 4; ++r) {
    ell[2 * r] = row_log_ratio[r] + 1e-3;
    ell[2 * r + 1] = row_log_ratio[r] - 1e-3;
  }
  star::policy_objective_options options;
  options.mode = objective_mode::scalar;
  REQUIRE(options.clip_range == 1e-4);
  const star::policy_objective_inputs<typename TestType::tensor> in{
      be.from_host(ell, {4, 2}), be.from_host(ell_old, {4, 2}), be.from_host(advantages, {4}),
      std::nullopt, std::nullopt, std::nullopt};
  const auto result = star::spatial_policy_objective(be, in, options);
  const double eps = 1e-4;
  const double want_loss = (-1.5 * std::exp(3e-5) + 1.0 * (1 - eps) - 0.5 * (1 + eps) -
                            2.0 * std::exp(-4e-4)) / 4;
  CHECK(result.policy_loss == Approx(want_loss).margin(tol));
  CHECK(result.clip_fraction == Approx(0.5).margin(tol));                // rows 1 and 2
  CHECK(result.outside_clip_range_fraction == Approx(0.75).margin(tol));  // rows 1, 2, 3
  double approx_kl = 0.0;
  for (const double l : row_log_ratio) approx_kl += 0.5 * l * l / 4;
  CHECK(result.approx_kl == Approx(approx_kl).epsilon(1e-4));
  const auto gradient = be.to_host(star::spatial_policy_gradient(be, in, options).log_prob);
  const double row0 = -1.5 * std::exp(3e-5) / 4 / 2, row3 = -2.0 * std::exp(-4e-4) / 4 / 2;
  star::test::require_close(gradient, {row0, row0, 0, 0, 0, 0, row3, row3}, tol,
                            "each token of a row gets the row's slope / N");
}

TEMPLATE_LIST_TEST_CASE("objective: weighted_scalar with W = 1 equals scalar, and gamma scales "
                        "the advantage in every mode",
                        "[objective]", star::test::all_backends) {
  TestType be{};
  const double tol = 10 * star::test::tolerance<TestType>::value;
  const std::uint64_t seed = 200;
  INFO("seed " << seed);
  auto host = random_inputs(6, 5, 1e-4, seed);
  host.allocation = std::vector<double>(30, 1.0);
  star::policy_objective_options scalar, weighted;
  scalar.mode = objective_mode::scalar;
  weighted.mode = objective_mode::weighted_scalar;
  scalar.beta = weighted.beta = 0.01;
  const auto in = on_backend(be, host);
  const auto a = star::spatial_policy_objective(be, in, scalar);
  const auto b = star::spatial_policy_objective(be, in, weighted);
  star::test::require_close(be.to_host(b.loss), be.to_host(a.loss), tol, "loss");
  CHECK(a.clip_fraction == b.clip_fraction);
  CHECK(a.approx_kl == Approx(b.approx_kl).margin(tol));
  star::test::require_close(be.to_host(star::spatial_policy_gradient(be, in, weighted).log_prob),
                            be.to_host(star::spatial_policy_gradient(be, in, scalar).log_prob),
                            tol, "d loss / d ell");

  // gamma = 2 everywhere equals advantages x 2.
  for (const auto mode : {objective_mode::scalar, objective_mode::weighted_scalar,
                          objective_mode::token}) {
    INFO("mode " << name_of(mode));
    star::policy_objective_options options;
    options.mode = mode;
    auto doubled_gamma = host;
    doubled_gamma.step_weights = std::vector<double>(6, 2.0);
    auto doubled_advantage = host;
    doubled_advantage.step_weights.reset();
    for (double& adv : doubled_advantage.advantages) adv *= 2.0;
    const auto with_gamma =
        star::spatial_policy_objective(be, on_backend(be, doubled_gamma), options);
    const auto with_advantage =
        star::spatial_policy_objective(be, on_backend(be, doubled_advantage), options);
    CHECK(with_gamma.policy_loss == Approx(with_advantage.policy_loss).margin(tol));
    CHECK(with_gamma.clip_fraction == with_advantage.clip_fraction);
  }
}

TEMPLATE_LIST_TEST_CASE("objective: the KL term is beta times the uniform or W-weighted mean of "
                        "the per-token KL",
                        "[objective][kl]", star::test::all_backends) {
  TestType be{};
  const double tol = 10 * star::test::tolerance<TestType>::value;
  star::policy_objective_options options;
  options.beta = 0.1;
  const star::policy_objective_inputs<typename TestType::tensor> in{
      be.full({1, 2}, -1.0), be.full({1, 2}, -1.0), be.full({1}, 0.5),
      be.from_host(std::vector<double>{0.5, 1.5}, {1, 2}), std::nullopt,
      be.from_host(std::vector<double>{1.0, 3.0}, {1, 2})};
  const auto uniform = star::spatial_policy_objective(be, in, options);
  CHECK(uniform.kl_loss == Approx(2.0).margin(tol));
  CHECK(uniform.policy_loss == Approx(-0.5).margin(tol));
  star::test::require_close(be.to_host(uniform.loss), {-0.5 + 0.1 * 2.0}, tol, "uniform");
  star::test::require_close(be.to_host(*star::spatial_policy_gradient(be, in, options).kl),
                            {0.05, 0.05}, tol, "uniform d loss / d kl");

  options.kl_weights = kl_weighting::allocation;
  const auto weighted = star::spatial_policy_objective(be, in, options);
  CHECK(weighted.kl_loss == Approx((0.5 * 1.0 + 1.5 * 3.0) / 2).margin(tol));
  star::test::require_close(be.to_host(weighted.loss), {-0.5 + 0.1 * 2.5}, tol, "weighted");
  star::test::require_close(be.to_host(*star::spatial_policy_gradient(be, in, options).kl),
                            {0.025, 0.075}, tol, "weighted d loss / d kl");

  options.beta = 0.0;  // the KL is still reported, but does not enter the loss
  const auto unweighted = star::spatial_policy_objective(be, in, options);
  CHECK(unweighted.kl_loss == Approx(2.5).margin(tol));
  star::test::require_close(be.to_host(unweighted.loss), {-0.5}, tol, "beta 0");
}

TEMPLATE_LIST_TEST_CASE("objective: a mode or kl_weights outside its enum is an option_error "
                        "naming the field and the value",
                        "[objective][errors]", star::test::all_backends) {
  const TestType be{};
  const star::policy_objective_inputs<typename TestType::tensor> in{
      be.full({3, 4}, -1.0), be.full({3, 4}, -1.1), be.full({3}, 1.0),
      be.full({3, 4}, 1.0), std::nullopt, be.full({3, 4}, 0.1)};  // [R, N], [R], W, KL
  // the objective and its gradient both reject `bad` with the message `want`
  const auto require_rejected = [&](const star::policy_objective_options& bad,
                                    const std::string& want) {
    REQUIRE_THROWS_AS(star::spatial_policy_objective(be, in, bad), star::option_error);
    REQUIRE_THROWS_WITH(star::spatial_policy_objective(be, in, bad), want);
    REQUIRE_THROWS_WITH(star::spatial_policy_gradient(be, in, bad), want);
  };
  star::policy_objective_options options;
  options.beta = 0.01;
  for (const int bad : {-1, 3, 7}) {
    INFO("mode " << bad);
    options.mode = static_cast<objective_mode>(bad);
    require_rejected(options, "policy_objective_options.mode: expected scalar, weighted_scalar "
                              "or token, got " + std::to_string(bad));
  }
  options.mode = objective_mode::token;
  for (const int bad : {-1, 2}) {
    INFO("kl_weights " << bad);
    options.kl_weights = static_cast<kl_weighting>(bad);
    require_rejected(options, "policy_objective_options.kl_weights: expected uniform or "
                              "allocation, got " + std::to_string(bad));
  }
}

TEST_CASE("objective: bad inputs and options throw, naming the argument", "[objective][errors]") {
  const star::reference_backend be;
  using tensor = star::reference_backend::tensor;
  const auto make = [&](bool with_allocation = true) {
    return star::policy_objective_inputs<tensor>{
        be.full({3, 4}, -1.0), be.full({3, 4}, -1.0), be.full({3}, 1.0),
        with_allocation ? std::optional{be.full({3, 4}, 1.0)} : std::nullopt, be.full({3}, 1.0),
        be.full({3, 4}, 0.1)};
  };
  const star::policy_objective_options options;
  REQUIRE_NOTHROW(star::spatial_policy_objective(be, make(), options));

  const auto require_shape_error = [&](star::policy_objective_inputs<tensor> in,
                                       const char* arg) {
    INFO(arg);
    REQUIRE_THROWS_AS(star::spatial_policy_objective(be, in, options), star::shape_error);
    REQUIRE_THROWS_WITH(star::spatial_policy_objective(be, in, options), Catch::Contains(arg));
    REQUIRE_THROWS_WITH(star::spatial_policy_gradient(be, in, options), Catch::Contains(arg));
  };
  auto in = make();
  in.log_prob = be.full({12}, -1.0);
  require_shape_error(in, "log_prob");
  in = make();
  in.log_prob = be.full({0, 4}, -1.0);
  in.old_log_prob = be.full({0, 4}, -1.0);
  require_shape_error(in, "log_prob");
  in = make();
  in.old_log_prob = be.full({3, 5}, -1.0);
  require_shape_error(in, "old_log_prob");
  in = make();
  in.advantages = be.full({4}, 1.0);
  require_shape_error(in, "advantages");
  in = make();
  in.allocation = be.full({4, 3}, 1.0);
  require_shape_error(in, "allocation");
  in = make();
  in.step_weights = be.full({3, 1}, 1.0);
  require_shape_error(in, "step_weights");
  in = make();
  in.kl = be.full({3}, 0.1);
  require_shape_error(in, "kl");

  const auto require_value_error = [&](star::policy_objective_inputs<tensor> in,
                                       const char* arg) {
    INFO(arg);
    REQUIRE_THROWS_AS(star::spatial_policy_objective(be, in, options), star::value_error);
    REQUIRE_THROWS_WITH(star::spatial_policy_objective(be, in, options), Catch::Contains(arg));
  };
  in = make();
  in.log_prob = be.from_host(std::vector<double>{-1, -1, -1, -1, -1, NAN, -1, -1, -1, -1, -1, -1},
                             {3, 4});
  require_value_error(in, "log_prob");
  in = make();
  in.old_log_prob = be.full({3, 4}, -INFINITY);
  require_value_error(in, "old_log_prob");
  in = make();
  in.advantages = be.full({3}, NAN);
  require_value_error(in, "advantages");
  in = make();
  in.kl = be.full({3, 4}, INFINITY);
  require_value_error(in, "kl");

  const auto require_option_error = [&](const star::policy_objective_inputs<tensor>& in,
                                        const star::policy_objective_options& o,
                                        const char* field) {
    INFO(field);
    REQUIRE_THROWS_AS(star::spatial_policy_objective(be, in, o), star::option_error);
    REQUIRE_THROWS_WITH(star::spatial_policy_objective(be, in, o), Catch::Contains(field));
    REQUIRE_THROWS_WITH(star::spatial_policy_gradient(be, in, o), Catch::Contains(field));
  };
  for (const double bad : {0.0, -1e-4, 1.0, std::nan("")}) {
    star::policy_objective_options o;
    o.clip_range = bad;
    require_option_error(make(), o, "clip_range");
    o = {};
    o.token_clip_range = bad;
    require_option_error(make(), o, "token_clip_range");
  }
  star::policy_objective_options o;
  o.beta = -0.01;
  require_option_error(make(), o, "beta");
  o.beta = INFINITY;
  require_option_error(make(), o, "beta");
  o = {};
  require_option_error(make(false), o, "allocation");  // token mode needs W
  o.mode = objective_mode::weighted_scalar;
  require_option_error(make(false), o, "allocation");
  o.mode = objective_mode::scalar;
  REQUIRE_NOTHROW(star::spatial_policy_objective(be, make(false), o));
  o.kl_weights = kl_weighting::allocation;
  require_option_error(make(false), o, "allocation");  // W-weighted KL needs W
  o = {};
  o.beta = 0.04;
  in = make();
  in.kl.reset();
  require_option_error(in, o, "kl");
}
