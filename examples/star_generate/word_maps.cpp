#include "word_maps.hpp"

#include <algorithm>
#include <iostream>
#include <set>

namespace star::generate_cli {

std::vector<word_map> select_words(const std::string& prompt,
                                   const std::vector<star::segment_tokenization>& tokenizations,
                                   const star::token_layout& layout,
                                   const std::vector<std::string>& words) {
  auto chosen = words;
  if (chosen.empty())
    chosen = star::select_core_tokens(prompt, tokenizations, layout).selected_words;
  std::vector<word_map> maps;
  for (const auto& word : chosen) {
    star::token_selection_options options;
    options.rule = star::selection_rule::explicit_spans;
    options.explicit_words = {word};
    const auto picked = star::select_core_tokens(prompt, tokenizations, layout, options);
    if (picked.rule_used != star::selection_rule::explicit_spans) {
      std::cerr << "star-generate: '" << word << "' is not a word of \"" << prompt
                << "\"; no map\n";
      continue;
    }
    maps.push_back({word, star::select_text_columns(picked.weights, layout)});
  }
  return maps;
}

word_map_observer::word_map_observer(const std::vector<std::vector<word_map>>& maps,
                                     at::Device device)
    : backend_(device, at::kFloat) {
  std::set<std::int64_t> all;
  std::size_t most_words = 0;
  for (const auto& prompt_maps : maps) {
    most_words = std::max(most_words, prompt_maps.size());
    for (const auto& map : prompt_maps)
      all.insert(map.selection.indices.begin(), map.selection.indices.end());
  }
  columns_.assign(all.begin(), all.end());
  // Word m of prompt b: its weights at its columns' positions in columns_, zeros elsewhere.
  auto weights = at::zeros({static_cast<std::int64_t>(maps.size()),
                            static_cast<std::int64_t>(columns_.size()),
                            static_cast<std::int64_t>(most_words)},
                           at::kDouble);  // [B, S, W]
  auto entries = weights.accessor<double, 3>();
  for (std::size_t b = 0; b < maps.size(); ++b)
    for (std::size_t m = 0; m < maps[b].size(); ++m) {
      const auto& selection = maps[b][m].selection;
      for (std::size_t j = 0; j < selection.indices.size(); ++j)
        entries[static_cast<std::int64_t>(b)][position_in_columns(selection.indices[j])]
               [static_cast<std::int64_t>(m)] += selection.weights[j];
    }
  weights_ = weights.to(device, at::kFloat);  // [B, S, W]
}

void word_map_observer::on_joint_attention(int /*block*/, const at::Tensor& q,
                                           const at::Tensor& k, const at::Tensor& lse,
                                           const star::token_layout& layout) {
  if (columns_.empty()) return;
  const auto probabilities = star::libtorch::selected_attention_probabilities(
      backend_, q, k, layout, columns_, lse);                     // [B, H, N, S]
  const auto maps = at::matmul(probabilities.mean(1), weights_);  // [B, N, W]
  sums_ = sums_.defined() ? sums_ + maps : maps;                  // [B, N, W]
}

at::Tensor word_map_observer::map(std::size_t b, std::size_t m) const {
  if (!sums_.defined()) return {};
  return sums_[static_cast<std::int64_t>(b)].select(1, static_cast<std::int64_t>(m));  // [N]
}

std::int64_t word_map_observer::position_in_columns(std::int64_t column) const {
  return std::lower_bound(columns_.begin(), columns_.end(), column) - columns_.begin();
}

}  // namespace star::generate_cli
