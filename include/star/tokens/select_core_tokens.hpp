#pragma once
/// @file
/// @brief Token relevance selection (docs/math.md §2) with the linguistic rules: the weight
/// vector `w` over the text block, and the fallback chain rule -> content_words -> uniform.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/error.hpp"
#include "star/core/token_layout.hpp"
#include "star/tokens/selection_options.hpp"
#include "star/tokens/selection_rules.hpp"
#include "star/tokens/span_weights.hpp"
#include "star/tokens/tokenization.hpp"
#include "star/tokens/words.hpp"

namespace star {

namespace detail {

/// @brief Why a rule selected no word.
inline std::string nothing_selected_reason(selection_rule rule) {
  switch (rule) {
    case selection_rule::quoted: return "no text between a first pair of double quotes";
    case selection_rule::metadata:
      return "no class name, colour or count word of the metadata occurs in the prompt";
    case selection_rule::content_words: return "every word of the prompt is a stop word";
    case selection_rule::explicit_spans: return "no explicit span given and no explicit word found";
    case selection_rule::attention_topk:
      return "no non-special token that covers a prompt byte has an attention map with "
             "non-zero mass";
    case selection_rule::uniform: break;
  }
  return "";
}

/// @brief The checked inputs every rule shares.
struct selection_input {
  std::string_view prompt;
  std::span<const segment_tokenization> tokenizations;
  std::vector<std::int64_t> segment_offsets;
  std::int64_t text_length = 0;
};

inline selection_input check_selection_input(std::string_view prompt,
                                             std::span<const segment_tokenization> tokenizations,
                                             const token_layout& layout,
                                             const token_selection_options& options) {
  options.validate();
  return {prompt, tokenizations, validate_tokenizations(prompt, tokenizations, layout),
          layout.text_tokens()};
}

/// @brief Weights the units `rule` selected; when none lands on a token, falls back to
/// `content_words`, then to uniform, recording each step in `fallback_reason`.
inline token_selection weigh_with_fallback(const selection_input& in, selection_rule rule,
                                           std::vector<char_span> units,
                                           const token_selection_options& options) {
  const auto weigh = [&](std::vector<char_span> selected) {
    return weights_from_spans(std::move(selected), in.tokenizations, in.segment_offsets,
                              in.text_length);
  };
  const auto result = [&](span_weighting placed, selection_rule used, std::string reason) {
    token_selection out{std::move(placed.weights), used, {}, std::move(reason)};
    for (const char_span unit : placed.placed)
      out.selected_words.emplace_back(text::substring(in.prompt, unit));
    return out;
  };
  const auto failure = [&](selection_rule failed, bool had_units) {
    return to_string(failed) + ": " +
           (had_units ? std::string("the selected words overlap no non-special token")
                      : nothing_selected_reason(failed));
  };

  if (rule == selection_rule::uniform)
    return {uniform_token_weights(in.tokenizations, in.segment_offsets, in.text_length),
            selection_rule::uniform, {}, {}};
  std::string reason;
  if (rule != selection_rule::content_words) {
    const bool had_units = !units.empty();
    auto placed = weigh(std::move(units));
    if (!placed.placed.empty()) return result(std::move(placed), rule, {});
    reason = failure(rule, had_units) + "; fell back to content_words";
    units = rules::content_words(in.prompt, options.stop_words);
  }
  const bool had_content = !units.empty();
  auto content = weigh(std::move(units));
  if (!content.placed.empty())
    return result(std::move(content), selection_rule::content_words, reason);
  reason += (reason.empty() ? "" : "; ") + failure(selection_rule::content_words, had_content) +
            "; fell back to uniform (the allocation uses lambda = 1)";
  return {uniform_token_weights(in.tokenizations, in.segment_offsets, in.text_length),
          selection_rule::uniform, {}, std::move(reason)};
}

}  // namespace detail

/// @brief The core-token weights `w` over the text block for a linguistic rule
/// (`quoted`, `metadata`, `content_words`, `explicit`, or `uniform`).
///
/// The rule selects words of the prompt (byte ranges); each maps to the tokens of every
/// segment whose byte range overlaps it (special tokens excluded). Each selected word gets
/// equal total weight, split evenly over all its sub-tokens across segments (see
/// `weights_from_spans`). So `w_j >= 0`, `sum_j w_j = 1`, `w = 0` on special and unlisted
/// positions. If the rule selects nothing that lands on a token, it falls back to
/// `content_words`; if that is empty too, the result is `uniform()` (weights spread equally
/// over the non-special tokens, all 0 if there is none) and the allocation must use
/// `lambda = 1`. Every fallback is explained in `fallback_reason`.
/// @param prompt        the UTF-8 prompt
/// @param tokenizations one per text segment (any subset of the layout's segments)
/// @param layout        gives each segment's length `L_s` and order; `L = layout.text_tokens()`
/// @param options       the rule and its inputs; `attention_topk` needs the overload with maps
inline token_selection select_core_tokens(std::string_view prompt,
                                          std::span<const segment_tokenization> tokenizations,
                                          const token_layout& layout,
                                          const token_selection_options& options = {}) {
  const auto in = detail::check_selection_input(prompt, tokenizations, layout, options);
  std::vector<char_span> units;
  switch (options.rule) {
    case selection_rule::quoted: units = rules::quoted(prompt); break;
    case selection_rule::metadata: units = rules::metadata(prompt, options.metadata); break;
    case selection_rule::content_words:
      units = rules::content_words(prompt, options.stop_words);
      break;
    case selection_rule::explicit_spans:
      units = rules::explicit_selection(prompt, options.explicit_spans, options.explicit_words);
      break;
    case selection_rule::attention_topk:
      throw option_error(
          "token_selection_options.rule: attention_topk needs the attention maps [L, N]; call "
          "select_core_tokens(backend, attention_maps, ...)");
    case selection_rule::uniform: break;
  }
  return detail::weigh_with_fallback(in, options.rule, std::move(units), options);
}

}  // namespace star
