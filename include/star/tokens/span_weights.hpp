#pragma once
/// @file
/// @brief From selected byte ranges of the prompt to the weight vector over the text block.

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "star/tokens/tokenization.hpp"

namespace star {

/// @brief The weights of the placed units and the units themselves, in prompt order.
struct span_weighting {
  std::vector<double> weights;   ///< [L]
  std::vector<char_span> placed; ///< the distinct units that overlap a non-special token
};

/// @brief Spreads weight over the text block from selected units (words or byte ranges).
///
/// A token belongs to a unit when their byte ranges overlap; tokens of EVERY segment count
/// (in SD3 a word has sub-tokens in the CLIP block and in the T5 block). Special tokens never
/// belong to a unit. Identical units are merged; a unit with no token is left out. Each of
/// the U remaining units gets total weight `1/U`, split evenly over all its tokens across
/// segments, so a unit with `n` tokens puts `1/(U n)` on each; a token in several units
/// receives the sum of their shares. The weights sum to 1 when U > 0 and are all 0 otherwise.
/// @param units           byte ranges of the prompt
/// @param tokenizations   validated tokenizations (`validate_tokenizations`)
/// @param segment_offsets each tokenization's segment offset in the text block
/// @param text_length     `L`, the length of the text block
inline span_weighting weights_from_spans(std::vector<char_span> units,
                                         std::span<const segment_tokenization> tokenizations,
                                         std::span<const std::int64_t> segment_offsets,
                                         std::int64_t text_length) {
  const auto before = [](const char_span& a, const char_span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  };
  const auto same = [](const char_span& a, const char_span& b) {
    return a.begin == b.begin && a.end == b.end;
  };
  std::sort(units.begin(), units.end(), before);
  units.erase(std::unique(units.begin(), units.end(), same), units.end());

  span_weighting out{std::vector<double>(static_cast<std::size_t>(text_length), 0.0), {}};
  std::vector<std::vector<std::int64_t>> members;
  for (const char_span& unit : units) {
    std::vector<std::int64_t> indices;
    for (std::size_t t = 0; t < tokenizations.size(); ++t)
      for (const text_token& token : tokenizations[t].tokens)
        if (!token.special && overlaps(unit, {token.char_begin, token.char_end}))
          indices.push_back(segment_offsets[t] + token.position);
    if (indices.empty()) continue;
    out.placed.push_back(unit);
    members.push_back(std::move(indices));
  }
  const auto unit_count = static_cast<double>(members.size());
  for (const auto& indices : members) {
    const double share = 1.0 / (unit_count * static_cast<double>(indices.size()));
    for (const std::int64_t j : indices) out.weights[static_cast<std::size_t>(j)] += share;
  }
  return out;
}

/// @brief Equal weight on every listed non-special token (all 0 when there is none).
inline std::vector<double> uniform_token_weights(
    std::span<const segment_tokenization> tokenizations,
    std::span<const std::int64_t> segment_offsets, std::int64_t text_length) {
  std::vector<double> weights(static_cast<std::size_t>(text_length), 0.0);
  std::vector<std::int64_t> indices;
  for (std::size_t t = 0; t < tokenizations.size(); ++t)
    for (const text_token& token : tokenizations[t].tokens)
      if (!token.special) indices.push_back(segment_offsets[t] + token.position);
  for (const std::int64_t j : indices)
    weights[static_cast<std::size_t>(j)] = 1.0 / static_cast<double>(indices.size());
  return weights;
}

}  // namespace star
