#pragma once
/// @file
/// @brief CLIP's text preparation before BPE: normalisation with a map back to the prompt's
/// bytes, and CLIP's pre-tokenisation regex.
///
/// Normalisation is transformers' CLIPTokenizer's (with ftfy installed, as diffusers' SD3
/// pipeline runs it): `whitespace_clean(ftfy.fix_text(prompt)).lower()`. `fix_text`
/// (fix_text.hpp) repairs HTML references, mojibake, ligatures, fullwidth forms, curly quotes
/// and control characters and applies NFC; then runs of Python `\s` become one space, the ends
/// are stripped, and every code point is lower-cased as Python's `str.lower()` does.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "star/tokens/tokenization.hpp"

namespace star::sd35 {

/// @brief A prompt after CLIP's normalisation, with the prompt bytes behind every byte.
struct clip_normalized_text {
  std::string text;               ///< the normalised UTF-8 text BPE runs on
  std::vector<char_span> source;  ///< [text.size()] prompt bytes that produced each byte

  /// @brief The prompt bytes behind `text[begin, end)`, `begin < end`: exact bytes where a
  /// character kept its UTF-8 length when lower-cased, else its whole source character.
  char_span prompt_span(std::size_t begin, std::size_t end) const;
};

/// @brief `whitespace_clean(fix_text(prompt)).lower()` with the byte map back to `prompt`.
/// Bytes that are not valid UTF-8 are kept as they are.
clip_normalized_text clip_normalize(std::string_view prompt);

/// @brief One piece of the pre-tokenised text: bytes `[begin, end)` of the normalised text.
struct clip_piece {
  std::size_t begin = 0;
  std::size_t end = 0;
  bool added_token = false;  ///< one of the `added_tokens`, not a BPE word
};

/// @brief Splits normalised text into the pieces CLIP's BPE encodes: first out the
/// `added_tokens` (exact matches, like transformers' added-token trie; longest first), then each
/// remaining chunk with
/// `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
/// (IGNORECASE), skipping whitespace. transformers matches added tokens in the raw prompt,
/// here they are matched after lower-casing: the two differ only for an upper-case
/// `<|ENDOFTEXT|>` glued to punctuation. Letters and numbers are classified with the tables of
/// unicode.hpp (of the Unicode version named in unicode_tables.cpp's first line).
/// @param text          normalised text (`clip_normalize(...).text`)
/// @param added_tokens  strings split out whole, e.g. `<|endoftext|>` and a pad token `!`
std::vector<clip_piece> clip_pretokenize(std::string_view text,
                                         std::span<const std::string> added_tokens);

}  // namespace star::sd35
