#pragma once
/// @file
/// @brief Words of a UTF-8 prompt as byte ranges, ASCII case folding, and whole-word phrase
/// matching with simple plurals: the text side of token relevance selection.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "star/tokens/tokenization.hpp"

namespace star::text {

/// @brief ASCII letters and digits, and every byte >= 0x80 (so non-ASCII letters stay inside
/// their word).
inline bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z');
}

/// @brief The words of `text`: maximal runs of word bytes, where an apostrophe or hyphen
/// between two word bytes joins them (`don't`, `t-shirt`). Byte ranges index into `text`.
inline std::vector<char_span> split_words(std::string_view text) {
  std::vector<char_span> words;
  const std::size_t size = text.size();
  std::size_t i = 0;
  while (i < size) {
    if (!is_word_byte(text[i])) {
      ++i;
      continue;
    }
    const std::size_t begin = i;
    while (i < size && (is_word_byte(text[i]) ||
                        ((text[i] == '\'' || text[i] == '-') && i + 1 < size &&
                         is_word_byte(text[i + 1]))))
      ++i;
    words.push_back({static_cast<std::int64_t>(begin), static_cast<std::int64_t>(i)});
  }
  return words;
}

/// @brief The runs of non-whitespace bytes of `text[range]`, as ranges of `text`.
inline std::vector<char_span> split_whitespace(std::string_view text, char_span range) {
  const auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  std::vector<char_span> runs;
  std::int64_t i = range.begin;
  while (i < range.end) {
    if (is_space(text[static_cast<std::size_t>(i)])) {
      ++i;
      continue;
    }
    const std::int64_t begin = i;
    while (i < range.end && !is_space(text[static_cast<std::size_t>(i)])) ++i;
    runs.push_back({begin, i});
  }
  return runs;
}

/// @brief `text` with ASCII letters lower-cased (other bytes unchanged).
inline std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// @brief The bytes of `range` in `text`.
inline std::string_view substring(std::string_view text, char_span range) {
  return text.substr(static_cast<std::size_t>(range.begin),
                     static_cast<std::size_t>(range.end - range.begin));
}

/// @brief Whether lower-case words `a` and `b` are equal or one is a simple plural of the
/// other: `+s` (cat/cats), `+es` (box/boxes), `y -> ies` (puppy/puppies).
inline bool same_word_or_plural(std::string_view a, std::string_view b) {
  const auto plural_of = [](std::string_view plural, std::string_view singular) {
    const auto ends = [&](std::string_view suffix, std::size_t stem) {
      return plural.size() == stem + suffix.size() && plural.substr(stem) == suffix &&
             plural.substr(0, stem) == singular.substr(0, stem);
    };
    return ends("s", singular.size()) || ends("es", singular.size()) ||
           (!singular.empty() && singular.back() == 'y' && ends("ies", singular.size() - 1));
  };
  return a == b || plural_of(a, b) || plural_of(b, a);
}

/// @brief Every occurrence of `phrase` (one or more words) in `text` as consecutive whole
/// words, compared case-insensitively; with `allow_plural`, the phrase's last word may also
/// match its simple plural or singular. Returns the matched words' ranges of `text`, one per
/// word (a two-word phrase found twice gives four ranges).
inline std::vector<char_span> find_phrase(std::string_view text, std::string_view phrase,
                                          bool allow_plural) {
  std::vector<std::string> wanted;
  for (const char_span w : split_words(phrase)) wanted.push_back(ascii_lower(substring(phrase, w)));
  const std::vector<char_span> words = split_words(text);
  std::vector<char_span> found;
  if (wanted.empty() || words.size() < wanted.size()) return found;
  for (std::size_t start = 0; start + wanted.size() <= words.size(); ++start) {
    bool match = true;
    for (std::size_t k = 0; k < wanted.size() && match; ++k) {
      const std::string word = ascii_lower(substring(text, words[start + k]));
      const bool last = k + 1 == wanted.size();
      match = word == wanted[k] || (last && allow_plural && same_word_or_plural(word, wanted[k]));
    }
    if (match) found.insert(found.end(), words.begin() + static_cast<std::ptrdiff_t>(start),
                            words.begin() + static_cast<std::ptrdiff_t>(start + wanted.size()));
  }
  return found;
}

}  // namespace star::text
