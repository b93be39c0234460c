// star-allocation-demo: STAR on one prompt group with synthetic attention. It selects the
// prompt's core tokens, reads their attention maps out of three blocks per step through the
// LSE path, allocates each rollout's advantage over the image tokens step by step, and compares
// the token-mode objective with Flow-GRPO's scalar one on the same rollouts.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "files/atomic_file.hpp"
#include "heatmap.hpp"
#include "prompt.hpp"
#include "star/advantage/group_advantage.hpp"
#include "star/allocation/all.hpp"
#include "star/attention/all.hpp"
#include "star/eigen/backend.hpp"
#include "star/objective/all.hpp"
#include "star/tokens/select_core_tokens.hpp"
#include "synthetic_attention.hpp"

namespace {

constexpr std::int64_t rollouts = 4, steps = 10, blocks = 3, heads = 4, head_dim = 32;
using backend = star::eigen::backend<float>;

/// The concept direction of every text position: 0 for the apple and its colour, 1 for the cup
/// and its colour, -1 for the rest.
std::vector<int> text_directions(const std::string& prompt, const star::token_layout& layout,
                                 const std::vector<star::segment_tokenization>& tokenizations) {
  std::vector<int> direction(static_cast<std::size_t>(layout.text_tokens()), -1);
  for (std::size_t s = 0; s < tokenizations.size(); ++s)
    for (const auto& token : tokenizations[s].tokens) {
      if (token.special) continue;
      const auto word_begin = prompt.rfind(' ', static_cast<std::size_t>(token.char_begin));
      const auto begin = word_begin == std::string::npos ? 0 : word_begin + 1;
      const std::string word = prompt.substr(begin, prompt.find(' ', begin) - begin);
      const bool apple = word == "red" || word == "apple", cup = word == "blue" || word == "cup";
      direction[static_cast<std::size_t>(layout.segment_begin(s) + token.position)] =
          apple ? 0 : cup ? 1 : -1;
    }
  return direction;
}

/// Each rollout places the apple (left half) and the cup (right half) somewhere else on the
/// 16 x 16 grid.
std::vector<std::vector<demo::object_placement>> place_objects() {
  std::mt19937_64 rng(2026);
  std::uniform_real_distribution<double> row(3.0, 12.0), left(2.0, 6.0), right(9.0, 13.0);
  std::vector<std::vector<demo::object_placement>> objects(rollouts);
  for (auto& rollout : objects) rollout = {{row(rng), left(rng), 0}, {row(rng), right(rng), 1}};
  return objects;
}

}  // namespace

int main(int argc, char** argv) try {
  std::filesystem::path out_dir = "demo-output";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--out" && i + 1 < argc) out_dir = argv[++i];
    else {
      std::cerr << "usage: star-allocation-demo [--out DIR]\n";
      return arg == "--help" ? 0 : 2;
    }
  }
  std::filesystem::create_directories(out_dir);
  const backend be;

  // 1. Core tokens of a GenEval-style prompt, through both text segments.
  const std::string prompt = "a photo of a red apple next to a blue cup";
  const auto layout = star::token_layout::sd3(16, 16);  // N = 256 image tokens, L = 333
  const auto words = demo::word_spans(prompt);
  const std::vector<star::segment_tokenization> tokenizations{demo::clip_like(words),
                                                              demo::t5_like(words)};
  star::token_selection_options selection_options;
  selection_options.rule = star::selection_rule::metadata;
  selection_options.metadata = {{"apple", "red", 0}, {"cup", "blue", 0}};
  const auto selection =
      star::select_core_tokens(prompt, tokenizations, layout, selection_options);
  const auto columns = star::select_text_columns(selection.weights, layout);
  std::printf("prompt: \"%s\"\nrule: %s, words:", prompt.c_str(),
              star::to_string(selection.rule_used).c_str());
  for (const auto& word : selection.selected_words) std::printf(" %s", word.c_str());
  std::printf("\n%zu text positions weighted (CLIP and T5 blocks):", columns.indices.size());
  for (std::size_t j = 0; j < columns.indices.size(); ++j)
    std::printf(" %lld:%.3f", static_cast<long long>(columns.indices[j]), columns.weights[j]);
  std::printf("\n\n");

  // 2. The group's rewards become advantages; the steps get noise-aware temporal weights.
  const std::vector<double> rewards{0.82, 0.35, 0.61, 0.35};
  const std::vector<std::string> group(rollouts, prompt);
  const auto advantages = star::group_relative_advantages(rewards, group);
  const auto sigmas = star::flow_match_sigmas(steps);
  std::vector<std::size_t> trained(steps - 1);
  std::iota(trained.begin(), trained.end(), 0);
  const auto gamma =
      star::temporal_weights({star::temporal_weighting::noise_aware}, sigmas, trained);
  const auto advantage_tensor = be.from_host(advantages.advantages, {rollouts});  // [G]

  // 3. Per trained step: maps from three blocks through the LSE path, then the allocation.
  const auto directions = text_directions(prompt, layout, tokenizations);
  const auto objects = place_objects();
  star::allocation_options allocation_options;
  allocation_options.schedule = star::mixing_schedule::entropy;
  allocation_options.w_max = 4.0;
  std::vector<std::vector<std::vector<double>>> tiles(rollouts);  // [G][K-1][N] weights
  std::vector<double> all_weights;                                 // [(K-1) * G * N]
  std::ostringstream csv;  // allocation.csv, written once complete
  csv << "step,gamma,rollout,advantage,lambda,max_weight,sum_spatial_advantage\n";
  std::printf("step  gamma   lambda per rollout          max W per rollout        "
              "sum_n A^ = N A gamma?\n");
  for (const std::size_t k : trained) {
    const double focus = static_cast<double>(k) / static_cast<double>(steps - 2);
    star::relevance_accumulator<backend> accumulator(be);
    for (std::int64_t block = 0; block < blocks; ++block) {
      const auto host = demo::synthetic_block(layout, directions, objects, heads, head_dim, focus,
                                              100 * k + static_cast<std::uint64_t>(block));
      const star::shape qk_shape{rollouts, heads, layout.total_tokens(), head_dim};
      const auto q = be.from_host(host.q, qk_shape);                // [G, H, T, D]
      const auto key = be.from_host(host.k, qk_shape);              // [G, H, T, D]
      const auto lse = star::image_row_lse(be, q, key, layout);  // [G, H, N], a kernel's LSE
      accumulator.add(block, star::block_relevance(be, q, key, layout, columns, lse));  // [G, N]
    }
    const auto relevance = star::smooth_on_grid(be, accumulator.result(), layout, 0.5);  // [G, N]
    const auto allocation = star::allocate(be, relevance, static_cast<std::int64_t>(k), steps,
                                           allocation_options);  // weights [G, N]
    const auto spatial = star::spatial_advantage(be, advantage_tensor, gamma[k],
                                                 allocation.weights);  // [G, N]
    const auto weights = be.to_host(allocation.weights);
    const auto spatial_host = be.to_host(spatial);
    all_weights.insert(all_weights.end(), weights.begin(), weights.end());

    std::string lambdas, maxima, sums;
    for (std::int64_t g = 0; g < rollouts; ++g) {
      const auto row_begin = weights.begin() + g * layout.image_tokens();
      const std::vector<double> row(row_begin, row_begin + layout.image_tokens());
      tiles[static_cast<std::size_t>(g)].push_back(row);
      const double max_w = *std::max_element(row.begin(), row.end());
      const auto adv_begin = spatial_host.begin() + g * layout.image_tokens();
      const double sum = std::accumulate(adv_begin, adv_begin + layout.image_tokens(), 0.0);
      const double expected =
          static_cast<double>(layout.image_tokens()) * advantages.advantages[g] * gamma[k];
      char cell[64];
      std::snprintf(cell, sizeof cell, " %.2f", allocation.lambda[g]);
      lambdas += cell;
      std::snprintf(cell, sizeof cell, " %.2f", max_w);
      maxima += cell;
      std::snprintf(cell, sizeof cell, " %+.1f/%+.1f", sum, expected);
      sums += cell;
      csv << k << ',' << gamma[k] << ',' << g << ',' << advantages.advantages[g] << ','
          << allocation.lambda[g] << ',' << max_w << ',' << sum << '\n';
    }
    std::printf("%4zu  %.3f %s   %s   %s\n", k, gamma[k], lambdas.c_str(), maxima.c_str(),
                sums.c_str());
  }
  star::files::write_text_atomically(out_dir / "allocation.csv", csv.str());

  for (const std::size_t k : {std::size_t{0}, std::size_t{4}, std::size_t{8}})
    std::printf("\nrollout 0, step %zu: allocation weights W on the 16 x 16 token grid\n%s", k,
                demo::ascii_heatmap(tiles[0][k], layout.grid_h, layout.grid_w).c_str());

  // 4. The same rollouts under Flow-GRPO's scalar objective and STAR's token objective.
  const std::int64_t rows = rollouts * static_cast<std::int64_t>(trained.size());
  std::vector<double> row_advantage, row_gamma, old_log_prob, log_prob;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> ell(-1.2, 0.05), drift(0.0, 1e-3);
  for (const std::size_t k : trained)
    for (std::int64_t g = 0; g < rollouts; ++g) {
      row_advantage.push_back(advantages.advantages[g]);
      row_gamma.push_back(gamma[k]);
    }
  for (std::int64_t i = 0; i < rows * layout.image_tokens(); ++i) {
    old_log_prob.push_back(ell(rng));
    log_prob.push_back(old_log_prob.back() + drift(rng));
  }
  const star::shape token_shape{rows, layout.image_tokens()};
  const star::policy_objective_inputs<backend::tensor> inputs{
      be.from_host(log_prob, token_shape), be.from_host(old_log_prob, token_shape),  // [R, N]
      be.from_host(row_advantage, {rows}), be.from_host(all_weights, token_shape),   // [R], [R, N]
      be.from_host(row_gamma, {rows}), std::nullopt};                                // [R]
  std::printf("\nobjective over %lld rows x %lld tokens (slightly off-policy):\n",
              static_cast<long long>(rows), static_cast<long long>(layout.image_tokens()));
  for (const auto mode : {star::objective_mode::scalar, star::objective_mode::token}) {
    star::policy_objective_options options;
    options.mode = mode;
    const auto result = star::spatial_policy_objective(be, inputs, options);
    std::printf("  %-7s policy loss %+.5f  clip fraction %.3f  approx KL %.2e\n",
                mode == star::objective_mode::scalar ? "scalar" : "token", result.policy_loss,
                result.clip_fraction, result.approx_kl);
  }

  demo::write_pgm(out_dir / "allocation_weights.pgm", tiles, layout.grid_h, layout.grid_w, 4.0);
  std::printf("\nwrote %s (rows: rollouts, columns: steps 0..8; white = W of 4) and %s\n",
              (out_dir / "allocation_weights.pgm").c_str(), (out_dir / "allocation.csv").c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "star-allocation-demo: " << e.what() << '\n';
  return 1;
}
