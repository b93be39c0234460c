#pragma once
/// @file
/// @brief The default English stop-word list of the `content_words` selection rule.

#include <string>
#include <vector>

namespace star {

/// @brief Lower-case English function words (articles, pronouns, prepositions, conjunctions,
/// auxiliaries, quantifier-like adverbs) plus the text-to-image boilerplate nouns `photo`,
/// `image`, `picture` (as in GenEval's "a photo of ..."). Colours and number words are NOT
/// stop words: they are content the reward checks. Replace it through
/// `token_selection_options::stop_words`.
inline std::vector<std::string> default_english_stop_words() {
  return {
      "a",       "an",      "the",     "this",    "that",    "these",   "those",   "some",
      "any",     "each",    "every",   "such",    "of",      "in",      "on",      "at",
      "to",      "for",     "from",    "by",      "with",    "without", "into",    "onto",
      "over",    "under",   "about",   "as",      "than",    "then",    "and",     "or",
      "nor",     "but",     "so",      "if",      "while",   "is",      "are",     "was",
      "were",    "be",      "been",    "being",   "am",      "has",     "have",    "had",
      "having",  "do",      "does",    "did",     "will",    "would",   "shall",   "should",
      "can",     "could",   "may",     "might",   "must",    "it",      "its",     "it's",
      "i",       "me",      "my",      "we",      "us",      "our",     "you",     "your",
      "he",      "him",     "his",     "she",     "her",     "they",    "them",    "their",
      "there",   "here",    "which",   "who",     "whom",    "whose",   "what",    "where",
      "when",    "how",     "why",     "not",     "no",      "very",    "too",     "also",
      "just",    "only",    "both",    "either",  "neither", "other",   "another", "all",
      "most",    "more",    "much",    "many",    "own",     "same",    "up",      "down",
      "out",     "off",     "again",   "further", "once",    "during",  "before",  "after",
      "through", "between", "against", "upon",    "via",     "per",     "photo",   "image",
      "picture",
  };
}

}  // namespace star
