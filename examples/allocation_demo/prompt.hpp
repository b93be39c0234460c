#pragma once
// The demo's prompt and a word-level stand-in for SD3's two tokenizers: CLIP gives each word
// one token after BOS; T5 splits words longer than four bytes into two sub-tokens.

#include <cctype>
#include <string>
#include <vector>

#include "star/tokens/tokenization.hpp"

namespace demo {

/// Byte ranges of the words of `prompt` (runs of letters).
inline std::vector<star::char_span> word_spans(const std::string& prompt) {
  std::vector<star::char_span> words;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(prompt.size());) {
    if (!std::isalpha(static_cast<unsigned char>(prompt[i]))) { ++i; continue; }
    std::int64_t end = i;
    while (end < static_cast<std::int64_t>(prompt.size()) &&
           std::isalpha(static_cast<unsigned char>(prompt[end])))
      ++end;
    words.push_back({i, end});
    i = end;
  }
  return words;
}

/// CLIP-like: BOS, one token per word, EOS (padding positions are left out: they get no weight).
inline star::segment_tokenization clip_like(const std::vector<star::char_span>& words) {
  star::segment_tokenization clip{"clip", {{0, 0, 0, true}}};
  for (const auto& word : words)
    clip.tokens.push_back(
        {static_cast<std::int64_t>(clip.tokens.size()), word.begin, word.end, false});
  clip.tokens.push_back({static_cast<std::int64_t>(clip.tokens.size()), 0, 0, true});
  return clip;
}

/// T5-like: long words in two sub-tokens, then EOS.
inline star::segment_tokenization t5_like(const std::vector<star::char_span>& words) {
  star::segment_tokenization t5{"t5", {}};
  const auto push = [&t5](std::int64_t begin, std::int64_t end) {
    t5.tokens.push_back({static_cast<std::int64_t>(t5.tokens.size()), begin, end, false});
  };
  for (const auto& word : words) {
    if (word.end - word.begin > 4) {
      push(word.begin, word.begin + 3);
      push(word.begin + 3, word.end);
    } else {
      push(word.begin, word.end);
    }
  }
  t5.tokens.push_back({static_cast<std::int64_t>(t5.tokens.size()), 0, 0, true});
  return t5;
}

}  // namespace demo
