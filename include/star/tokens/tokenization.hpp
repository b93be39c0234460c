#pragma once
/// @file
/// @brief The tokenization of each text-encoder segment, with byte offsets into the prompt,
/// and its check against the prompt and the `star::token_layout`.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "star/core/error.hpp"
#include "star/core/token_layout.hpp"

namespace star {

/// @brief A half-open byte range `[begin, end)` of the UTF-8 prompt.
struct char_span {
  std::int64_t begin = 0;  ///< first byte
  std::int64_t end = 0;    ///< one past the last byte
};

/// @brief Whether two byte ranges share at least one byte (empty ranges overlap nothing).
inline bool overlaps(const char_span& a, const char_span& b) {
  return a.begin < b.end && b.begin < a.end;
}

/// @brief One token of a segment.
struct text_token {
  std::int64_t position = 0;    ///< index within its segment, in `[0, L_s)`
  std::int64_t char_begin = 0;  ///< first prompt byte it covers
  std::int64_t char_end = 0;    ///< one past its last prompt byte (`== char_begin`: none)
  bool special = false;         ///< BOS, EOS or padding: never receives weight
};

/// @brief The tokens one text encoder produced for the prompt. Positions it does not list
/// (e.g. padding left out) receive no weight.
struct segment_tokenization {
  std::string segment;            ///< a `token_layout::text_segments` name, e.g. `"clip"`
  std::vector<text_token> tokens; ///< in any order, each position at most once
};

/// @brief Checks every tokenization against the prompt and the layout and returns, for each,
/// the offset of its segment in the text block (`layout.segment_begin`).
///
/// Throws `value_error` for an unknown or repeated segment name, a repeated position, or a
/// byte range outside the prompt or with `char_begin > char_end`; `shape_error` for a
/// position outside its segment's length. Messages name `tokenizations[i]...`.
inline std::vector<std::int64_t> validate_tokenizations(
    std::string_view prompt, std::span<const segment_tokenization> tokenizations,
    const token_layout& layout) {
  layout.validate();
  const auto prompt_bytes = static_cast<std::int64_t>(prompt.size());
  std::vector<std::int64_t> offsets;
  std::vector<bool> segment_seen(layout.text_segments.size(), false);
  for (std::size_t t = 0; t < tokenizations.size(); ++t) {
    const auto& tokenization = tokenizations[t];
    const std::string name = "tokenizations[" + std::to_string(t) + "]";
    std::size_t segment = 0;
    while (segment < layout.text_segments.size() &&
           layout.text_segments[segment].name != tokenization.segment)
      ++segment;
    if (segment == layout.text_segments.size()) {
      std::string known;
      for (const auto& s : layout.text_segments) known += (known.empty() ? "" : ", ") + s.name;
      throw value_error(name + ".segment: '" + tokenization.segment +
                        "' is not a segment of the token layout (" + known + ")");
    }
    if (segment_seen[segment])
      throw value_error(name + ".segment: '" + tokenization.segment + "' is tokenized twice");
    segment_seen[segment] = true;

    const std::int64_t length = layout.text_segments[segment].length;
    std::vector<bool> position_seen(static_cast<std::size_t>(length), false);
    for (std::size_t k = 0; k < tokenization.tokens.size(); ++k) {
      const auto& token = tokenization.tokens[k];
      const std::string token_name = name + ".tokens[" + std::to_string(k) + "]";
      if (token.position < 0 || token.position >= length)
        throw shape_error(token_name + ".position: " + std::to_string(token.position) +
                          " is outside segment '" + tokenization.segment + "' of length " +
                          std::to_string(length));
      if (position_seen[static_cast<std::size_t>(token.position)])
        throw value_error(token_name + ".position: " + std::to_string(token.position) +
                          " is listed twice in segment '" + tokenization.segment + "'");
      position_seen[static_cast<std::size_t>(token.position)] = true;
      if (token.char_begin < 0 || token.char_begin > token.char_end ||
          token.char_end > prompt_bytes)
        throw value_error(token_name + ": byte range [" + std::to_string(token.char_begin) +
                          ", " + std::to_string(token.char_end) +
                          ") is not a range of the prompt of " + std::to_string(prompt_bytes) +
                          " bytes (need 0 <= char_begin <= char_end <= prompt size)");
    }
    offsets.push_back(layout.segment_begin(segment));
  }
  return offsets;
}

}  // namespace star
