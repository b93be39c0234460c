#pragma once
/// @file
/// @brief The text repair that CLIP's reference tokenizers run before BPE: `ftfy.fix_text`
/// (ftfy 6.3, default settings), on text that remembers its prompt bytes.
///
/// transformers' CLIPTokenizer (with ftfy installed, as in diffusers' SD3 pipeline) tokenises
/// `whitespace_clean(ftfy.fix_text(prompt)).lower()`, and this code does what it does.
/// openai/CLIP's `basic_clean` also runs `html.unescape` twice after `fix_text`; references that
/// `fix_text` leaves (on a line after a `<`, or without the closing `;`) are replaced there but
/// not here. The fixes, in ftfy's order, repeated until the text stops changing, line by line:
/// - HTML references: `&amp;`, `&EACUTE;`, `&#x2019;` (only those ending in `;`; none at all
///   once a line holding `<` has been seen, as the text may then be HTML);
/// - mojibake: UTF-8 that was decoded as Latin-1 or Windows-1252 (`cafÃ©` → `café`);
/// - C1 controls read as Windows-1252; Latin ligatures (`ﬁ` → `fi`); fullwidth and halfwidth
///   forms (`ｔｅｘｔ` → `text`, U+3000 → space); curly quotes made straight; line breaks made
///   `\n`; ANSI terminal escapes and unintended control characters removed;
/// - Unicode NFC.
///
/// What differs from ftfy: mojibake is found per character sequence by the rule of
/// `fix_mojibake` rather than by ftfy's statistical "badness" model, and only Latin-1 and
/// Windows-1252 mojibake is repaired (not the other code pages ftfy tries, nor the
/// `restore_byte_a0` / lossy-sequence variants); lone surrogates cannot occur in UTF-8 input,
/// and bytes that are not UTF-8 pass through untouched.

#include "sd35/tokenizers/mapped_text.hpp"

namespace star::sd35 {

/// @brief `ftfy.fix_text(text)` as described in the file comment; every output code point
/// keeps the prompt bytes it came from (a replacement covers all the bytes it replaced).
mapped_text fix_text(const mapped_text& text);

/// @brief Repairs mojibake: each run of 2-4 characters whose Latin-1 / Windows-1252 bytes form
/// one valid multi-byte UTF-8 character becomes that character. A two-character run whose
/// second character is punctuation a real word may end in (quotes, dashes, `…`, `«»`, NBSP:
/// `CAFÉ”`, `Fuß“`) is repaired only when a letter or a digit follows it directly, or another
/// mojibake run directly precedes or follows it.
mapped_text fix_mojibake(const mapped_text& text);

/// @brief Replaces the HTML references of `text` (see the file comment) by their characters.
mapped_text unescape_html(const mapped_text& text);

}  // namespace star::sd35
