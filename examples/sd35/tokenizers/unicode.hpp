#pragma once
/// @file
/// @brief The little Unicode CLIP's tokenizer needs, without ICU: UTF-8 decoding, the letter
/// (`\p{L}`) and number (`\p{N}`) classes, Python's `\s` and Python's `str.lower()`.
///
/// The classes and the lower-case mapping are tables generated from Python's `unicodedata`
/// (tools/generate_unicode_tables.py; the first line of unicode_tables.cpp names the Unicode
/// version). The reference tokenizer uses the `regex` package, whose Unicode version may be
/// newer: code points assigned after that version are neither letters nor numbers here.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace star::sd35::unicode {

/// @brief An inclusive range `[first, last]` of code points.
struct code_point_range {
  char32_t first;
  char32_t last;
};

/// @brief Code points `first, first + stride, ..., last` lower-case to `cp + delta`.
struct lower_run {
  char32_t first;
  char32_t last;
  std::int32_t delta;
  std::int32_t stride;
};

/// @brief Sorted ranges of the general categories Lu, Ll, Lt, Lm, Lo.
std::span<const code_point_range> letters();
/// @brief Sorted ranges of the general categories Nd, Nl, No.
std::span<const code_point_range> numbers();
/// @brief Sorted runs of every single-code-point lower-case mapping of Python's `str.lower()`.
std::span<const lower_run> lowercase_runs();

/// @brief One decoded code point and the bytes it took.
struct decoded {
  char32_t code_point;  ///< U+FFFD for an invalid sequence
  std::size_t length;   ///< bytes consumed, at least 1
};

/// @brief Decodes the code point starting at `text[at]`; an invalid or truncated sequence
/// decodes as U+FFFD of length 1 (the byte-level BPE still sees the original byte).
decoded decode_utf8(std::string_view text, std::size_t at);
/// @brief Appends the UTF-8 encoding of `code_point` to `out`.
void append_utf8(char32_t code_point, std::string& out);

/// @brief `\p{L}`.
bool is_letter(char32_t code_point);
/// @brief `\p{N}`.
bool is_number(char32_t code_point);
/// @brief Python's `\s` for `str` patterns (the characters for which `str.isspace()` holds).
bool is_whitespace(char32_t code_point);
/// @brief Appends Python's `str.lower()` of one code point (U+0130 becomes two) to `out`.
void append_lowercase(char32_t code_point, std::u32string& out);

}  // namespace star::sd35::unicode
