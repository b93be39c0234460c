#pragma once
/// @file
/// @brief Unicode normalisation form C (Python's `unicodedata.normalize("NFC", ...)`), the last
/// step of CLIP's reference normalisation, on text that keeps its map back to the prompt.
///
/// The data are tables generated from Python's `unicodedata` (tools/generate_nfc_tables.py),
/// of the same Unicode version as unicode.hpp's (tools/unicode_version.py checks it); Hangul
/// syllables are decomposed and composed algorithmically.

#include <cstdint>
#include <span>
#include <string>

#include "sd35/tokenizers/mapped_text.hpp"

namespace star::sd35::unicode {

/// @brief The full canonical decomposition of `code_point`:
/// `decomposition_pool()[offset, offset + length)`.
struct canonical_decomposition {
  char32_t code_point;
  std::uint16_t offset;
  std::uint16_t length;
};

/// @brief Code points `[first, last]` all have canonical combining class `combining_class`.
struct combining_class_run {
  char32_t first;
  char32_t last;
  std::uint8_t combining_class;
};

/// @brief `first` followed by `second` canonically composes to `composite`.
struct composition_pair {
  char32_t first;
  char32_t second;
  char32_t composite;
};

/// @brief The code points the decompositions are slices of.
std::span<const char32_t> decomposition_pool();
/// @brief Sorted by code point: every code point but the Hangul syllables that NFD changes.
std::span<const canonical_decomposition> canonical_decompositions();
/// @brief Sorted, disjoint runs of every code point of non-zero combining class.
std::span<const combining_class_run> combining_class_runs();
/// @brief Sorted by `(first, second)`: the primary composites, Hangul syllables excepted.
std::span<const composition_pair> primary_composites();

/// @brief The canonical combining class of `code_point` (0 for a starter or unassigned).
int combining_class(char32_t code_point);
/// @brief Appends the full canonical decomposition of `code_point` (itself if it has none).
void append_canonical_decomposition(char32_t code_point, std::u32string& out);
/// @brief The primary composite of `first` followed by `second`, or 0 if they do not compose.
char32_t primary_composite(char32_t first, char32_t second);

/// @brief NFC: canonical decomposition, canonical ordering, canonical composition.
///
/// Sources: the pieces of a decomposed code point keep its source, a composite covers the
/// sources of its parts (`span_union`). Where canonical ordering moves a mark, or a mark
/// composes past another, the spans are then widened as little as keeps both their begins and
/// their ends non-decreasing, so that consecutive code points still map to a byte range of the
/// prompt. Escaped bytes (`is_escaped_byte`) pass through as starters that compose with nothing.
mapped_text nfc(const mapped_text& text);

}  // namespace star::sd35::unicode
