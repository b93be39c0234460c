#pragma once
/// @file
/// @brief The `attention_topk` selection rule: the k non-special text tokens whose aggregated
/// attention maps are the most focused (lowest normalised spatial entropy).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <tuple>
#include <vector>

#include "star/core/backend.hpp"
#include "star/core/ops.hpp"
#include "star/tokens/select_core_tokens.hpp"

namespace star {

/// @brief The normalised spatial entropy of each text token's map,
/// `H_j = -sum_n p_jn log p_jn / log N` with `p_jn = maps_jn / sum_n' maps_jn`, in `[0, 1]`.
/// A row with zero mass gives 0 (callers must treat it as "no map").
/// @param be   the backend
/// @param maps [L, N] nonnegative attention maps, one row per text token, N >= 2
/// @return     [L]
template <class B>
  requires elementwise_backend<B> && reduction_backend<B>
typename B::tensor normalized_spatial_entropy(const B& be, const typename B::tensor& maps) {
  const shape maps_shape = be.shape_of(maps);
  require_rank("attention_maps", maps_shape, 2, "[L, N]");
  if (maps_shape[1] < 2)
    throw shape_error("attention_maps: a normalised entropy needs N >= 2 image tokens, got "
                      "shape " + to_string(maps_shape));
  constexpr double tiny = 1e-30;  // representable in float; p < tiny adds < 1e-28 to H
  const auto mass = be.clamp(be.sum(maps, {1}, true), tiny,
                             std::numeric_limits<double>::infinity());  // [L, 1]
  const auto p = be.div(maps, mass);                                    // [L, N]
  const auto p_log_p = be.mul(p, be.log(be.clamp(p, tiny, 1.0)));       // [L, N]
  const double inv_log_n = 1.0 / std::log(static_cast<double>(maps_shape[1]));
  return be.mul(be.sum(p_log_p, {1}, false), -inv_log_n);  // [L]
}

/// @brief Core-token weights for every rule, with the attention maps that `attention_topk`
/// needs (the maps are read only when `options.rule == selection_rule::attention_topk`;
/// the other rules behave exactly as the host overload).
///
/// `attention_topk` ranks the listed non-special tokens that cover at least one prompt byte
/// and whose map has positive mass by `normalized_spatial_entropy` (ties: lower text position
/// first) and keeps the first `options.top_k` (all of them when fewer). Each kept token stands
/// for the prompt words its byte range overlaps (or its own byte range when it overlaps no
/// word); these words are then weighted like any rule's: equal total weight per word, split
/// evenly over all its sub-tokens in every segment, so the word's other-segment tokens are
/// weighted too. With no candidate token the usual fallback (content_words, then uniform)
/// applies, with its reason.
/// @param be             the backend
/// @param attention_maps [L, N] the aggregated (section 3) nonnegative map of each text token,
///                       `N = layout.image_tokens()`; NaN, Inf or negative entries throw
///                       `value_error`, a wrong shape `shape_error`
/// @param prompt         the UTF-8 prompt
/// @param tokenizations  one per text segment (any subset of the layout's segments)
/// @param layout         gives each segment's length `L_s` and order; `L = layout.text_tokens()`
/// @param options        the rule and its inputs (`options.top_k` for `attention_topk`)
template <class B>
  requires elementwise_backend<B> && reduction_backend<B>
token_selection select_core_tokens(const B& be, const typename B::tensor& attention_maps,
                                   std::string_view prompt,
                                   std::span<const segment_tokenization> tokenizations,
                                   const token_layout& layout,
                                   const token_selection_options& options = {}) {
  if (options.rule != selection_rule::attention_topk)
    return select_core_tokens(prompt, tokenizations, layout, options);
  const auto in = detail::check_selection_input(prompt, tokenizations, layout, options);
  require_shape("attention_maps", be.shape_of(attention_maps),
                {in.text_length, layout.image_tokens()}, "[L, N]");
  const double total = ops::item(be, be.sum(attention_maps, {0, 1}, false));  // [] -> host
  const double lowest =
      -ops::item(be, be.amax(ops::neg(be, attention_maps), {0, 1}, false));  // [] -> host
  if (!std::isfinite(total) || !(lowest >= 0.0))
    throw value_error("attention_maps: entries must be finite and >= 0 (sum " +
                      std::to_string(total) + ", minimum " + std::to_string(lowest) + ")");

  const std::vector<double> entropy =
      be.to_host(normalized_spatial_entropy(be, attention_maps));  // [L]
  const std::vector<double> mass = be.to_host(be.sum(attention_maps, {1}, false));  // [L]
  std::vector<std::tuple<double, std::int64_t, char_span>> candidates;
  for (std::size_t t = 0; t < tokenizations.size(); ++t)
    for (const text_token& token : tokenizations[t].tokens) {
      const std::int64_t j = in.segment_offsets[t] + token.position;
      // A token covering no byte stands for no word, so it must not take one of the k slots.
      const bool covers_bytes = token.char_begin < token.char_end;
      if (!token.special && covers_bytes && mass[static_cast<std::size_t>(j)] > 0.0)
        candidates.emplace_back(entropy[static_cast<std::size_t>(j)], j,
                                char_span{token.char_begin, token.char_end});
    }
  const auto by_entropy = [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  };
  std::sort(candidates.begin(), candidates.end(), by_entropy);
  candidates.resize(std::min(candidates.size(), static_cast<std::size_t>(options.top_k)));

  const std::vector<char_span> words = text::split_words(prompt);
  std::vector<char_span> units;
  for (const auto& candidate : candidates) {
    const char_span range = std::get<2>(candidate);
    bool in_word = false;
    for (const char_span word : words)
      if (overlaps(word, range)) {
        units.push_back(word);
        in_word = true;
      }
    if (!in_word) units.push_back(range);
  }
  return detail::weigh_with_fallback(in, selection_rule::attention_topk, std::move(units),
                                     options);
}

}  // namespace star
