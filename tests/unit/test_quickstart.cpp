// The code of docs/quickstart.md: each `//! [name]` block is a snippet of that page, so the
// quickstart is compiled and its results are checked here.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/random.hpp"

//! [backend]
#include "star/star.hpp"  // every algorithm and star::reference_backend (double, plain loops)
//! [backend]
#if STAR_TEST_WITH_EIGEN
//! [eigen]
#include "star/eigen.hpp"  // component `eigen`: the vectorised, multi-threaded CPU backend
using backend = star::eigen::backend<float>;  // or star::eigen::backend<double>
//! [eigen]
#else
using backend = star::reference_backend;
#endif

namespace {

constexpr double tol = 1e-5;  // covers the float Eigen backend

/// A whitespace "tokenizer" standing in for CLIP / T5: one token per word with its byte range,
/// then an EOS; `with_bos` puts a BOS at position 0 (CLIP).
star::segment_tokenization whitespace_tokens(const std::string& prompt, const std::string& segment,
                                             bool with_bos) {
  star::segment_tokenization out{segment, {}};
  std::int64_t position = 0;
  if (with_bos) out.tokens.push_back({position++, 0, 0, true});
  std::size_t begin = 0;
  while (begin < prompt.size()) {
    const std::size_t end = std::min(prompt.find(' ', begin), prompt.size());
    out.tokens.push_back({position++, static_cast<std::int64_t>(begin),
                          static_cast<std::int64_t>(end), false});
    begin = end + 1;
  }
  out.tokens.push_back({position, 0, 0, true});  // EOS
  return out;
}

/// Mean of each row of a row-major [rows, cols] host array.
std::vector<double> row_means(const std::vector<double>& values, std::int64_t cols) {
  std::vector<double> means;
  for (auto row = values.begin(); row != values.end(); row += cols)
    means.push_back(std::accumulate(row, row + cols, 0.0) / static_cast<double>(cols));
  return means;
}

}  // namespace

TEST_CASE("quickstart: core tokens, attention maps, allocation, advantages, objective",
          "[quickstart]") {
  constexpr std::int64_t G = 4, K = 10, heads = 2, head_dim = 8, blocks = 3;
  //! [backend object]
  const backend be;  // stateless here; a backend may carry a device, a dtype, a thread pool
  //! [backend object]

  //! [select]
  const std::string prompt = "a red apple on a wooden table";
  const star::token_layout layout{4, 4, {{"clip", 10}, {"t5", 10}}, true};  // N = 16, L = 20
  const std::vector<star::segment_tokenization> tokenizations{
      whitespace_tokens(prompt, "clip", true),  // your tokenizers' output, with byte offsets
      whitespace_tokens(prompt, "t5", false)};
  star::token_selection_options selection_options;
  selection_options.rule = star::selection_rule::content_words;  // or quoted, metadata, ...
  const star::token_selection selection =
      star::select_core_tokens(prompt, tokenizations, layout, selection_options);
  // selection.weights: [L] w_j, summing to 1; selection.fallback_reason says why, if a
  // fallback happened; selection.uniform() means "allocate with lambda = 1".
  const star::text_selection columns = star::select_text_columns(selection.weights, layout);
  //! [select]
  REQUIRE(selection.rule_used == star::selection_rule::content_words);
  REQUIRE(selection.selected_words == std::vector<std::string>{"red", "apple", "wooden", "table"});
  REQUIRE(std::accumulate(selection.weights.begin(), selection.weights.end(), 0.0) ==
          Approx(1.0).epsilon(1e-12));
  REQUIRE(columns.indices.size() == 8);  // four words, each in the CLIP and the T5 block

  const star::shape qk_shape{G, heads, layout.total_tokens(), head_dim};
  const auto block_q = [&](std::int64_t block) {
    return star::test::normal(static_cast<std::size_t>(star::numel(qk_shape)), 100 + block);
  };
  const auto block_k = [&](std::int64_t block) {
    return star::test::normal(static_cast<std::size_t>(star::numel(qk_shape)), 200 + block);
  };
  //! [maps]
  // the selected columns' weights go to the device once; optional: options, blocks `Λ`
  star::lse_relevance_accumulator<backend> accumulator(be, columns);
  for (std::int64_t block = 0; block < blocks; ++block) {
    // In the transformer's forward pass, per joint-attention block (conditional branch):
    const auto q = be.from_host(block_q(block), qk_shape);    // [G, H, T, D] post-QK-norm
    const auto k = be.from_host(block_k(block), qk_shape);    // [G, H, T, D] post-QK-norm
    const auto lse = star::image_row_lse(be, q, k, layout);   // [G, H, N]; a fused kernel returns it
    accumulator.add(block, q, k, layout, lse);  // no read-back to the host per block
  }
  const auto relevance = accumulator.result();  // [G, N] mean over the blocks; checks finiteness
  //! [maps]
  auto expected_relevance = be.full({G, layout.image_tokens()}, 0.0);  // [G, N]
  for (std::int64_t block = 0; block < blocks; ++block) {
    const auto q = be.from_host(block_q(block), qk_shape);  // [G, H, T, D]
    const auto k = be.from_host(block_k(block), qk_shape);  // [G, H, T, D]
    expected_relevance = be.add(expected_relevance,
                                star::block_relevance(be, q, k, layout, columns));  // [G, N]
  }
  star::test::require_close(be.to_host(relevance),
                            be.to_host(be.mul(expected_relevance, 1.0 / blocks)), tol);

  const std::int64_t step = 3;
  //! [allocate]
  star::allocation_options allocation_options;
  allocation_options.schedule = star::mixing_schedule::linear;  // lambda 1 at k = 0 -> 0.5 at K-1
  allocation_options.w_max = 3.0;                               // optional cap W <= 3
  const auto allocation = star::allocate(be, relevance, step, K, allocation_options);
  // allocation.weights: [G, N] W, mean 1 per row; allocation.lambda: [G] the mix used

  const auto sigmas = star::flow_match_sigmas(static_cast<int>(K));  // [K + 1]
  std::vector<std::size_t> trained_steps(K - 1);                     // Flow-GRPO: 0..K-2
  std::iota(trained_steps.begin(), trained_steps.end(), std::size_t{0});
  const std::vector<double> gamma = star::temporal_weights(
      {star::temporal_weighting::noise_aware}, sigmas, trained_steps);  // mean 1
  //! [allocate]
  for (const double mean : row_means(be.to_host(allocation.weights), layout.image_tokens()))
    REQUIRE(mean == Approx(1.0).epsilon(tol));
  for (const double w : be.to_host(allocation.weights)) REQUIRE(w <= 3.0 + tol);
  REQUIRE(allocation.lambda[0] == Approx(1.0 - 0.5 * step / (K - 1.0)));
  REQUIRE(std::accumulate(gamma.begin(), gamma.end(), 0.0) / gamma.size() == Approx(1.0));

  //! [advantages]
  const std::vector<double> rewards{0.9, 0.4, 0.7, 0.4};      // one scalar per image
  const std::vector<std::string> groups(G, prompt);          // the group key of each reward
  const star::advantage_result advantages =
      star::group_relative_advantages(rewards, groups);      // global std, eps 1e-4, clip 5
  //! [advantages]
  REQUIRE(std::accumulate(advantages.advantages.begin(), advantages.advantages.end(), 0.0) ==
          Approx(0.0).margin(1e-12));

  //! [spatial]
  const auto advantage_tensor = be.from_host(advantages.advantages, {G});  // [G]
  const auto spatial = star::spatial_advantage(be, advantage_tensor, gamma[step],
                                               allocation.weights);      // [G, N] A gamma W
  //! [spatial]
  const auto spatial_means = row_means(be.to_host(spatial), layout.image_tokens());
  for (std::int64_t g = 0; g < G; ++g)
    REQUIRE(spatial_means[g] ==
            Approx(advantages.advantages[g] * gamma[step]).epsilon(tol).margin(tol));

  const star::shape token_shape{G, layout.image_tokens()};
  const auto old_host = star::test::normal(static_cast<std::size_t>(star::numel(token_shape)), 7, -1.2, 0.05);
  auto new_host = old_host;
  for (double& x : new_host) x += 1e-3;
  //! [objective]
  star::policy_objective_inputs<backend::tensor> inputs{
      be.from_host(new_host, token_shape),  // [R, N] ell under the current policy
      be.from_host(old_host, token_shape),  // [R, N] ell_old, stored at sampling time
      advantage_tensor,                     // [R] A of each row's rollout
      allocation.weights,                   // [R, N] W (token, weighted_scalar modes)
      be.full({G}, gamma[step]),            // [R] gamma (absent: 1)
      std::nullopt};                        // [R, N] per-token KL, needed when beta > 0
  star::policy_objective_options objective_options;  // mode token, eps_tok 2e-3, beta 0
  const auto result = star::spatial_policy_objective(be, inputs, objective_options);
  // result.loss: [] the differentiable loss; policy_loss, kl_loss, clip_fraction,
  // outside_clip_range_fraction, approx_kl: host doubles to log

  objective_options.mode = star::objective_mode::scalar;  // Flow-GRPO, for comparison
  const auto baseline = star::spatial_policy_objective(be, inputs, objective_options);
  //! [objective]
  REQUIRE(std::isfinite(result.policy_loss));
  REQUIRE(std::isfinite(baseline.policy_loss));
  REQUIRE(be.to_host(result.loss)[0] == Approx(result.policy_loss));
  REQUIRE(result.approx_kl == Approx(0.5e-6).epsilon(1e-3));
}

TEST_CASE("quickstart: advantages with rewards split over two ranks equal one process",
          "[quickstart]") {
  const std::vector<double> rewards{0.9, 0.4, 0.7, 0.4, 0.2, 0.8};
  const std::vector<std::string> keys{"cat", "cat", "cat", "dog", "dog", "dog"};
  //! [gather]
  // Stands in for an all-gather over your process group (torch.distributed, MPI, ...): it
  // returns every rank's rewards and keys in rank order, and where the caller's block starts.
  struct all_gather {
    std::span<const double> all_rewards;
    std::span<const std::string> all_keys;
    std::size_t rank_offset;
    star::gathered_rewards<std::string> gather(std::span<const double>,
                                               std::span<const std::string>) const {
      return {{all_rewards.begin(), all_rewards.end()}, {all_keys.begin(), all_keys.end()},
              rank_offset};
    }
  };
  const std::span<const double> rank1_rewards(rewards.data() + 3, 3);  // this rank's samples
  const std::span<const std::string> rank1_keys(keys.data() + 3, 3);
  const auto rank1 = star::group_relative_advantages(rank1_rewards, rank1_keys, {},
                                                     all_gather{rewards, keys, 3});
  //! [gather]
  const auto single = star::group_relative_advantages(rewards, keys);
  REQUIRE(rank1.advantages ==
          std::vector<double>(single.advantages.begin() + 3, single.advantages.end()));
  REQUIRE(rank1.kept_samples == 6);
}

TEST_CASE("quickstart: the analytic gradient matches a finite difference of the loss",
          "[quickstart]") {
  using ref = star::reference_backend;  // double precision for the finite difference
  const ref be;
  constexpr std::int64_t G = 2, C = 2, patch = 2, grid = 2, step = 4;
  const star::shape latent{G, C, grid * patch, grid * patch};
  const auto n = static_cast<std::size_t>(star::numel(latent));
  const auto x = be.from_host(star::test::normal(n, 1), latent);       // [G, C, H, W]
  const auto v = be.from_host(star::test::normal(n, 2), latent);       // [G, C, H, W]
  const auto eps = be.from_host(star::test::normal(n, 3), latent);     // [G, C, H, W]
  const auto sigmas = star::flow_match_sigmas(10);
  const std::vector<star::sde_coefficients> coefficients(
      G, star::flow_grpo_sde_coefficients(sigmas, step));
  const auto x_next = star::sde_step(be, x, v, eps, coefficients).next;  // [G, C, H, W]
  const auto old_ell = star::per_token_log_prob(be, x_next, star::sde_mean(be, x, v, coefficients),
                                                coefficients, patch);  // [G, N]
  const auto advantages = be.from_host(std::vector<double>{1.0, -1.0}, {G});  // [G]
  const auto weights = be.from_host(star::test::uniform(G * grid * grid, 4, 0.5, 1.5),
                                    {G, grid * grid});  // [G, N]

  const auto loss_at = [&](const ref::tensor& mu) {
    const star::policy_objective_inputs<ref::tensor> in{
        star::per_token_log_prob(be, x_next, mu, coefficients, patch), old_ell, advantages,
        weights, std::nullopt, std::nullopt};
    return star::spatial_policy_objective(be, in).policy_loss;
  };
  auto v_host = be.to_host(v);
  for (double& value : v_host) value += 1e-4;  // a slightly updated policy
  //! [gradient]
  // A backend without autograd: ell was computed from mu = sde_mean(x, v_theta).
  const auto mu = star::sde_mean(be, x, be.from_host(v_host, latent), coefficients);  // [G, C, H, W]
  const star::policy_objective_inputs<ref::tensor> in{
      star::per_token_log_prob(be, x_next, mu, coefficients, patch),  // [G, N] ell
      old_ell, advantages, weights, std::nullopt, std::nullopt};
  const auto d_ell = star::spatial_policy_gradient(be, in);  // d loss / d ell: [G, N]
  const auto d_mu = star::spatial_policy_mean_gradient(be, d_ell, x_next, mu, std::nullopt,
                                                       coefficients, patch);  // [G, C, H, W]
  // Chain on by hand: d loss / d v = coef_v * d_mu, then into the model's backward pass.
  //! [gradient]
  const auto mu_host = be.to_host(mu);
  const auto d_mu_host = be.to_host(d_mu);
  const double h = 1e-6;
  for (const std::size_t i : {std::size_t{0}, std::size_t{5}, n - 1}) {
    auto plus = mu_host, minus = mu_host;
    plus[i] += h;
    minus[i] -= h;
    const double numeric =
        (loss_at(be.from_host(plus, latent)) - loss_at(be.from_host(minus, latent))) / (2 * h);
    INFO("element " << i);
    REQUIRE(d_mu_host[i] == Approx(numeric).epsilon(1e-5).margin(1e-9));
  }
}
