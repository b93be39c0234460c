#include "sd35/tokenizers/unicode.hpp"

#include <algorithm>

namespace star::sd35::unicode {
namespace {

constexpr char32_t replacement = 0xFFFD;

bool in_ranges(std::span<const code_point_range> ranges, char32_t code_point) {
  const auto it = std::upper_bound(
      ranges.begin(), ranges.end(), code_point,
      [](char32_t cp, const code_point_range& range) { return cp < range.first; });
  return it != ranges.begin() && code_point <= std::prev(it)->last;
}

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

decoded decode_utf8(std::string_view text, std::size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0x80) return {lead, 1};
  std::size_t length = 0;
  char32_t code_point = 0;
  char32_t minimum = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code_point = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code_point = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code_point = lead & 0x07, minimum = 0x10000;
  } else {
    return {replacement, 1};
  }
  if (at + length > text.size()) return {replacement, 1};
  for (std::size_t i = 1; i < length; ++i) {
    const auto byte = static_cast<unsigned char>(text[at + i]);
    if (!is_continuation(byte)) return {replacement, 1};
    code_point = (code_point << 6) | (byte & 0x3F);
  }
  if (code_point < minimum || code_point > 0x10FFFF ||
      (code_point >= 0xD800 && code_point <= 0xDFFF))
    return {replacement, 1};
  return {code_point, length};
}

void append_utf8(char32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

bool is_letter(char32_t code_point) { return in_ranges(letters(), code_point); }

bool is_number(char32_t code_point) { return in_ranges(numbers(), code_point); }

bool is_whitespace(char32_t code_point) {
  switch (code_point) {
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000:
      return true;
    default:
      return (code_point >= 0x09 && code_point <= 0x0D) ||
             (code_point >= 0x1C && code_point <= 0x1F) ||
             (code_point >= 0x2000 && code_point <= 0x200A);
  }
}

void append_lowercase(char32_t code_point, std::u32string& out) {
  if (code_point == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING DOT
    out += U'i';
    out += char32_t{0x307};
    return;
  }
  const auto runs = lowercase_runs();
  const auto it = std::upper_bound(
      runs.begin(), runs.end(), code_point,
      [](char32_t cp, const lower_run& run) { return cp < run.first; });
  if (it != runs.begin()) {
    const auto& run = *std::prev(it);
    if (code_point <= run.last && (code_point - run.first) % run.stride == 0) {
      out += static_cast<char32_t>(static_cast<std::int64_t>(code_point) + run.delta);
      return;
    }
  }
  out += code_point;
}

}  // namespace star::sd35::unicode
