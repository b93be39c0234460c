#pragma once
/// @file
/// @brief The linguistic selection rules: each turns the prompt (and its rule's inputs) into
/// the byte ranges of the selected words.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "star/core/error.hpp"
#include "star/tokens/selection_options.hpp"
#include "star/tokens/words.hpp"

namespace star::rules {

/// @brief `quoted`: the whitespace-separated runs between the first two `"` of the prompt
/// (every visible character of an OCR target counts, punctuation included). Empty when the
/// prompt has fewer than two `"` or nothing but spaces between them.
inline std::vector<char_span> quoted(std::string_view prompt) {
  const std::size_t open = prompt.find('"');
  if (open == std::string_view::npos) return {};
  const std::size_t close = prompt.find('"', open + 1);
  if (close == std::string_view::npos) return {};
  return text::split_whitespace(
      prompt, {static_cast<std::int64_t>(open + 1), static_cast<std::int64_t>(close)});
}

/// @brief `metadata`: every whole-word, case-insensitive occurrence of each object's class
/// name (its last word also as a simple plural: cat/cats, box/boxes), colour, and count (as
/// an English word up to twenty, or digits). Throws `value_error` naming
/// `options.metadata[i].class_name` when it is empty and `...count` when it is negative.
inline std::vector<char_span> metadata(std::string_view prompt,
                                       const std::vector<geneval_object>& objects) {
  static constexpr std::array<std::string_view, 21> number_words{
      "zero", "one",    "two",     "three",    "four",     "five",    "six",
      "seven", "eight", "nine",    "ten",      "eleven",   "twelve",  "thirteen",
      "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"};
  std::vector<char_span> units;
  const auto add = [&](std::string_view phrase, bool allow_plural) {
    const auto found = text::find_phrase(prompt, phrase, allow_plural);
    units.insert(units.end(), found.begin(), found.end());
  };
  for (std::size_t i = 0; i < objects.size(); ++i) {
    const auto& object = objects[i];
    const std::string name = "options.metadata[" + std::to_string(i) + "]";
    if (text::split_words(object.class_name).empty())
      throw value_error(name + ".class_name: empty (expected a class name such as \"cat\")");
    if (object.count < 0)
      throw value_error(name + ".count: " + std::to_string(object.count) + " is negative");
    add(object.class_name, true);
    if (!object.color.empty()) add(object.color, false);
    if (object.count > 0) {
      add(std::to_string(object.count), false);
      if (object.count < static_cast<std::int64_t>(number_words.size()))
        add(number_words[static_cast<std::size_t>(object.count)], false);
    }
  }
  return units;
}

/// @brief `content_words`: every word (`text::split_words`) whose lower-case form is not in
/// `stop_words` (compared lower-case).
inline std::vector<char_span> content_words(std::string_view prompt,
                                            const std::vector<std::string>& stop_words) {
  std::unordered_set<std::string> stop;
  for (const auto& word : stop_words) stop.insert(text::ascii_lower(word));
  std::vector<char_span> units;
  for (const char_span word : text::split_words(prompt))
    if (!stop.contains(text::ascii_lower(text::substring(prompt, word)))) units.push_back(word);
  return units;
}

/// @brief `explicit`: the caller's byte ranges (each one unit), plus every whole-word,
/// case-insensitive occurrence of each caller word or phrase (one unit per matched word).
/// Throws `value_error` naming `options.explicit_spans[i]` for a range outside the prompt or
/// with `begin > end`, and `options.explicit_words[i]` for a word with no word characters.
inline std::vector<char_span> explicit_selection(std::string_view prompt,
                                                 const std::vector<char_span>& spans,
                                                 const std::vector<std::string>& words) {
  const auto prompt_bytes = static_cast<std::int64_t>(prompt.size());
  std::vector<char_span> units;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const char_span span = spans[i];
    if (span.begin < 0 || span.begin > span.end || span.end > prompt_bytes)
      throw value_error("options.explicit_spans[" + std::to_string(i) + "]: byte range [" +
                        std::to_string(span.begin) + ", " + std::to_string(span.end) +
                        ") is not a range of the prompt of " + std::to_string(prompt_bytes) +
                        " bytes");
    units.push_back(span);
  }
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (text::split_words(words[i]).empty())
      throw value_error("options.explicit_words[" + std::to_string(i) + "]: '" + words[i] +
                        "' has no word characters");
    const auto found = text::find_phrase(prompt, words[i], false);
    units.insert(units.end(), found.begin(), found.end());
  }
  return units;
}

}  // namespace star::rules
