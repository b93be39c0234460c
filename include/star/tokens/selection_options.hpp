#pragma once
/// @file
/// @brief The selection rules of token relevance selection (docs/math.md §2), their
/// options, and the selection result.

#include <cstdint>
#include <string>
#include <vector>

#include "star/core/error.hpp"
#include "star/tokens/stop_words.hpp"
#include "star/tokens/tokenization.hpp"

namespace star {

/// @brief How the core words of a prompt are chosen.
enum class selection_rule {
  quoted,          ///< OCR: the words between the first pair of double quotes
  metadata,        ///< GenEval: object class names, their colour and count words
  content_words,   ///< every word not in the stop-word list
  explicit_spans,  ///< the method's `explicit` rule: caller-given byte ranges and words
  attention_topk,  ///< the k tokens whose attention maps have the lowest spatial entropy
  uniform,         ///< no selection: the allocation uses `lambda = 1` (also the last fallback)
};

/// @brief The rule's name as docs/math.md spells it.
inline std::string to_string(selection_rule rule) {
  switch (rule) {
    case selection_rule::quoted: return "quoted";
    case selection_rule::metadata: return "metadata";
    case selection_rule::content_words: return "content_words";
    case selection_rule::explicit_spans: return "explicit";
    case selection_rule::attention_topk: return "attention_topk";
    case selection_rule::uniform: return "uniform";
  }
  return "unknown selection_rule";
}

/// @brief One object of GenEval's structured prompt metadata (an `include` clause).
struct geneval_object {
  std::string class_name;  ///< e.g. `"cat"`, `"traffic light"` (plural forms also match)
  std::string color;       ///< e.g. `"red"`; empty: none
  std::int64_t count = 0;  ///< required count; its English word (`"two"`) or digits match; 0: none
};

/// @brief Options of `select_core_tokens`; only the fields of the chosen rule are read.
struct token_selection_options {
  selection_rule rule = selection_rule::content_words;        ///< the rule to apply
  std::vector<geneval_object> metadata;                       ///< `metadata` rule
  std::vector<char_span> explicit_spans;                      ///< `explicit`: byte ranges
  std::vector<std::string> explicit_words;                    ///< `explicit`: words/phrases
  std::vector<std::string> stop_words = default_english_stop_words();  ///< lower-case
  std::int64_t top_k = 4;                                     ///< `attention_topk`: k > 0

  /// @brief Throws `option_error` naming the field for an unknown rule or `top_k <= 0`.
  void validate() const {
    if (rule < selection_rule::quoted || rule > selection_rule::uniform)
      throw option_error("token_selection_options.rule: not a selection_rule value");
    if (top_k <= 0)
      throw option_error("token_selection_options.top_k: k must be > 0, got " +
                         std::to_string(top_k));
  }
};

/// @brief The weight vector over the text block and how it was obtained.
struct token_selection {
  std::vector<double> weights;              ///< [L] `w_j >= 0`, sums to 1, 0 on special tokens
  selection_rule rule_used = selection_rule::uniform;  ///< after any fallback
  std::vector<std::string> selected_words;  ///< the prompt text of each weighted word
  std::string fallback_reason;              ///< non-empty exactly when a fallback happened

  /// @brief Nothing was selected: the allocation must use `lambda = 1` (uniform).
  bool uniform() const { return rule_used == selection_rule::uniform; }
};

}  // namespace star
