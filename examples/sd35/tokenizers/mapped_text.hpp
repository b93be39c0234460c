#pragma once
/// @file
/// @brief Text as code points that remember the prompt bytes they came from, so that every
/// normalisation step (ftfy's fixes, NFC, lower-casing) keeps the token offsets exact.

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "sd35/tokenizers/unicode.hpp"
#include "star/tokens/tokenization.hpp"

namespace star::sd35 {

/// @brief One code point of a transformed prompt and the prompt bytes behind it.
struct mapped_char {
  char32_t code_point = 0;
  char_span source;  ///< prompt bytes this code point came from
};

/// @brief A transformed prompt, one entry per code point.
using mapped_text = std::vector<mapped_char>;

/// @brief A byte that is not valid UTF-8 is carried as the lone surrogate `U+DC00 + byte`
/// (Python's `surrogateescape`), so that no step mistakes it for a character.
constexpr char32_t escaped_byte(unsigned char byte) { return 0xDC00 + byte; }
/// @brief Whether `code_point` carries a raw byte (see `escaped_byte`).
constexpr bool is_escaped_byte(char32_t code_point) {
  return code_point >= 0xDC80 && code_point <= 0xDCFF;
}

/// @brief The smallest byte range covering both `a` and `b`.
inline char_span span_union(const char_span& a, const char_span& b) {
  return {std::min(a.begin, b.begin), std::max(a.end, b.end)};
}

/// @brief Decodes a UTF-8 prompt, each code point mapped to its own bytes.
inline mapped_text decode_mapped(std::string_view prompt) {
  mapped_text out;
  out.reserve(prompt.size());
  for (std::size_t at = 0; at < prompt.size();) {
    const auto cp = unicode::decode_utf8(prompt, at);
    const bool invalid = cp.code_point == 0xFFFD && cp.length == 1;
    const auto begin = static_cast<std::int64_t>(at);
    out.push_back({invalid ? escaped_byte(static_cast<unsigned char>(prompt[at])) : cp.code_point,
                   {begin, begin + static_cast<std::int64_t>(cp.length)}});
    at += cp.length;
  }
  return out;
}

/// @brief Appends the UTF-8 encoding of `code_point` to `out` (an escaped byte as its raw byte).
inline void append_encoded(char32_t code_point, std::string& out) {
  if (is_escaped_byte(code_point))
    out += static_cast<char>(code_point - escaped_byte(0));
  else
    unicode::append_utf8(code_point, out);
}

/// @brief The UTF-8 text of `text` (an escaped byte becomes its raw byte again).
inline std::string encode_utf8(const mapped_text& text) {
  std::string out;
  out.reserve(text.size());
  for (const auto& c : text) append_encoded(c.code_point, out);
  return out;
}

}  // namespace star::sd35
