#include "sd35/tokenizers/clip_text.hpp"

#include <array>
#include <optional>
#include <string>

#include "sd35/tokenizers/fix_text.hpp"
#include "sd35/tokenizers/mapped_text.hpp"
#include "sd35/tokenizers/unicode.hpp"

namespace star::sd35 {
namespace {

/// Appends the lower-cased character (or the raw byte it carries) and its source map: byte by
/// byte where the UTF-8 length equals the source's, else every byte maps to the whole source.
/// `lowered` is scratch space, reused from call to call.
void append_normalized(const mapped_char& c, std::u32string& lowered, clip_normalized_text& out) {
  lowered.clear();
  unicode::append_lowercase(c.code_point, lowered);  // an escaped byte stays as it is
  const std::size_t first = out.text.size();
  for (const char32_t l : lowered) append_encoded(l, out.text);
  const std::size_t length = out.text.size() - first;
  const bool same_length = static_cast<std::int64_t>(length) == c.source.end - c.source.begin;
  for (std::size_t i = 0; i < length; ++i) {
    const auto exact = c.source.begin + static_cast<std::int64_t>(i);
    out.source.push_back(same_length ? char_span{exact, exact + 1} : c.source);
  }
}

bool starts_with_contraction(std::string_view text, std::size_t at, std::size_t end,
                             std::size_t& length) {
  static constexpr std::array<std::string_view, 7> suffixes{"s", "t", "re", "ve", "m", "ll", "d"};
  if (text[at] != '\'') return false;
  for (const auto suffix : suffixes) {
    if (at + 1 + suffix.size() > end) continue;
    bool equal = true;
    for (std::size_t i = 0; i < suffix.size(); ++i) {
      const char c = text[at + 1 + i];
      const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      equal = equal && lower == suffix[i];
    }
    if (equal) {
      length = 1 + suffix.size();
      return true;
    }
  }
  return false;
}

enum class char_class { space, letter, number, other };

char_class classify(char32_t code_point) {
  if (unicode::is_whitespace(code_point)) return char_class::space;
  if (unicode::is_letter(code_point)) return char_class::letter;
  if (unicode::is_number(code_point)) return char_class::number;
  return char_class::other;
}

/// CLIP's regex over `text[begin, end)`, which holds no added token.
void split_chunk(std::string_view text, std::size_t begin, std::size_t end,
                 std::vector<clip_piece>& out) {
  std::size_t at = begin;
  while (at < end) {
    const auto first = unicode::decode_utf8(text, at);
    const auto kind = classify(first.code_point);
    std::size_t contraction = 0;
    if (kind == char_class::space) {
      at += first.length;
    } else if (starts_with_contraction(text, at, end, contraction)) {
      out.push_back({at, at + contraction, false});
      at += contraction;
    } else if (kind == char_class::number) {
      out.push_back({at, at + first.length, false});
      at += first.length;
    } else {  // a maximal run of letters, or of characters that are neither
      std::size_t stop = at + first.length;
      while (stop < end) {
        const auto next = unicode::decode_utf8(text, stop);
        if (classify(next.code_point) != kind) break;
        stop += next.length;
      }
      out.push_back({at, stop, false});
      at = stop;
    }
  }
}

}  // namespace

char_span clip_normalized_text::prompt_span(std::size_t begin, std::size_t end) const {
  return {source[begin].begin, source[end - 1].end};
}

clip_normalized_text clip_normalize(std::string_view prompt) {
  clip_normalized_text out;
  out.text.reserve(prompt.size());
  out.source.reserve(prompt.size());
  std::optional<char_span> pending_space;  // a whitespace run not yet written
  std::u32string lowered;
  for (const auto& c : fix_text(decode_mapped(prompt))) {
    if (unicode::is_whitespace(c.code_point)) {
      pending_space = pending_space ? span_union(*pending_space, c.source) : c.source;
      continue;
    }
    if (pending_space && !out.text.empty()) {
      out.text += ' ';
      out.source.push_back(*pending_space);
    }
    pending_space.reset();
    append_normalized(c, lowered, out);
  }
  return out;
}

std::vector<clip_piece> clip_pretokenize(std::string_view text,
                                         std::span<const std::string> added_tokens) {
  std::vector<clip_piece> pieces;
  std::size_t chunk_begin = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t match = 0;
    for (const auto& token : added_tokens)
      if (!token.empty() && token.size() > match && text.substr(at, token.size()) == token)
        match = token.size();
    if (match == 0) {
      ++at;
      continue;
    }
    split_chunk(text, chunk_begin, at, pieces);
    pieces.push_back({at, at + match, true});
    at += match;
    chunk_begin = at;
  }
  split_chunk(text, chunk_begin, text.size(), pieces);
  return pieces;
}

}  // namespace star::sd35
