#include "sd35/tokenizers/fix_text.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "sd35/tokenizers/fix_text_tables.hpp"
#include "sd35/tokenizers/unicode_nfc.hpp"

namespace star::sd35 {
namespace {

constexpr char32_t replacement_character = 0xFFFD;

/// Appends `text` as code points that all stand for the prompt bytes `source`.
void append_all(std::u32string_view text, const char_span& source, mapped_text& out) {
  for (const char32_t c : text) out.push_back({c, source});
}

char_span source_of(const mapped_text& text, std::size_t begin, std::size_t end) {
  return span_union(text[begin].source, text[end - 1].source);
}

bool is_ascii_alnum(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// ---- HTML references ------------------------------------------------------------------------

/// The value of `digits` in `base`, saturated above U+10FFFF; nothing if a character is not a
/// digit or there is none.
std::optional<char32_t> parse_number(std::u32string_view digits, unsigned base) {
  if (digits.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char32_t c : digits) {
    unsigned digit = 0;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
    else return std::nullopt;
    value = std::min<std::uint64_t>(value * base + digit, 0x110000);
  }
  return static_cast<char32_t>(value);
}

/// What `html.unescape` makes of `&#body;`, or nothing when `body` is not a number.
std::optional<std::u32string> numeric_reference(std::u32string_view body) {
  const bool hex = !body.empty() && (body[0] == 'x' || body[0] == 'X');
  const auto number = parse_number(hex ? body.substr(1) : body, hex ? 16 : 10);
  if (!number) return std::nullopt;
  const auto special = fix_text_tables::invalid_numeric_references();
  const auto it = std::lower_bound(special.begin(), special.end(), *number,
                                   [](const auto& entry, char32_t n) { return entry.number < n; });
  if (it != special.end() && it->number == *number) return std::u32string(it->text);
  if ((*number >= 0xD800 && *number <= 0xDFFF) || *number > 0x10FFFF)
    return std::u32string(1, replacement_character);
  if (std::ranges::binary_search(fix_text_tables::dropped_numeric_references(), *number))
    return std::u32string();
  return std::u32string(1, *number);
}

/// The characters `&name;` stands for, or nothing.
std::optional<std::u32string> named_reference(std::u32string_view name) {
  std::string ascii(name.begin(), name.end());  // `name` is ASCII letters and digits
  const auto table = fix_text_tables::named_references();
  const auto it = std::lower_bound(table.begin(), table.end(), ascii,
                                   [](const auto& entry, const std::string& n) {
                                     return entry.name < n;
                                   });
  if (it == table.end() || it->name != ascii) return std::nullopt;
  return std::u32string(it->text);
}

// ---- mojibake -------------------------------------------------------------------------------

/// The byte `c` was decoded from, by Latin-1 or Windows-1252; nothing for other characters.
std::optional<unsigned char> single_byte_of(char32_t c) {
  if (c < 0x100) return static_cast<unsigned char>(c);
  for (unsigned byte = 0x80; byte < 0xA0; ++byte)
    if (fix_text_tables::windows_1252(static_cast<unsigned char>(byte)) == c)
      return static_cast<unsigned char>(byte);
  return std::nullopt;
}

/// Punctuation that may follow a real word's last letter, e.g. `CAFÉ”`.
bool may_end_a_word(char32_t c) {
  static constexpr std::array<char32_t, 15> marks{0xA0,   0xAB,   0xBB,   0x2013, 0x2014,
                                                  0x2018, 0x2019, 0x201A, 0x201C, 0x201D,
                                                  0x201E, 0x2022, 0x2026, 0x2039, 0x203A};
  return std::ranges::find(marks, c) != marks.end();
}

/// A run of characters whose bytes are one UTF-8 character.
struct mojibake_run {
  std::size_t begin;
  std::size_t end;
  char32_t decoded;
  bool certain;  ///< not a two-character run ending in word-final punctuation
};

/// The run starting at `text[at]`, if its bytes are one valid multi-byte UTF-8 character.
std::optional<mojibake_run> run_at(const mapped_text& text, std::size_t at) {
  const auto lead = single_byte_of(text[at].code_point);
  if (!lead || *lead < 0xC2 || *lead > 0xF4) return std::nullopt;
  const std::size_t length = *lead < 0xE0 ? 2 : *lead < 0xF0 ? 3 : 4;
  if (at + length > text.size()) return std::nullopt;
  std::array<char, 4> bytes{static_cast<char>(*lead)};
  for (std::size_t i = 1; i < length; ++i) {
    const auto byte = single_byte_of(text[at + i].code_point);
    if (!byte) return std::nullopt;
    bytes[i] = static_cast<char>(*byte);
  }
  // An invalid sequence decodes as U+FFFD of length 1, so a whole-run decode is a valid one.
  const auto decoded = unicode::decode_utf8(std::string_view(bytes.data(), length), 0);
  if (decoded.length != length) return std::nullopt;
  const bool certain = length > 2 || !may_end_a_word(text[at + 1].code_point);
  return mojibake_run{at, at + length, decoded.code_point, certain};
}

bool is_word_character(char32_t c) { return unicode::is_letter(c) || unicode::is_number(c); }

// ---- the per-character fixes ----------------------------------------------------------------

/// Latin ligatures and digraphs that ftfy takes apart (other scripts' ligatures are kept).
std::optional<std::u32string_view> latin_ligature(char32_t c) {
  static constexpr std::array<std::pair<char32_t, std::u32string_view>, 22> ligatures{{
      {0x132, U"IJ"}, {0x133, U"ij"}, {0x149, U"\u02BCn"}, {0x1C4, U"D\u017D"},
      {0x1C5, U"D\u017E"}, {0x1C6, U"d\u017E"}, {0x1C7, U"LJ"}, {0x1C8, U"Lj"},
      {0x1C9, U"lj"}, {0x1CA, U"NJ"}, {0x1CB, U"Nj"}, {0x1CC, U"nj"},
      {0x1F1, U"DZ"}, {0x1F2, U"Dz"}, {0x1F3, U"dz"}, {0xFB00, U"ff"},
      {0xFB01, U"fi"}, {0xFB02, U"fl"}, {0xFB03, U"ffi"}, {0xFB04, U"ffl"},
      {0xFB05, U"\u017Ft"}, {0xFB06, U"st"},
  }};
  const auto it = std::ranges::find(ligatures, c, &std::pair<char32_t, std::u32string_view>::first);
  if (it == ligatures.end()) return std::nullopt;
  return it->second;
}

std::optional<std::u32string_view> width_fold(char32_t c) {
  const auto table = fix_text_tables::width_folds();
  const auto it =
      std::lower_bound(table.begin(), table.end(), c,
                       [](const auto& fold, char32_t x) { return fold.code_point < x; });
  if (it == table.end() || it->code_point != c) return std::nullopt;
  return it->text;
}

char32_t straight_quote(char32_t c) {
  if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) return '\'';
  if (c >= 0x201C && c <= 0x201F) return '"';
  return c;
}

char32_t c1_as_windows_1252(char32_t c) {
  return c >= 0x80 && c < 0xA0 ? fix_text_tables::windows_1252(static_cast<unsigned char>(c)) : c;
}

bool is_unintended_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/// Rewrites each character of `text` by `rewrite(c)`: the replacement text, or nothing to keep
/// the character.
template <class Rewrite>
mapped_text rewrite_each(const mapped_text& text, Rewrite rewrite) {
  mapped_text out;
  out.reserve(text.size());
  for (const auto& c : text) {
    if (const std::optional<std::u32string_view> replacement = rewrite(c.code_point))
      append_all(*replacement, c.source, out);
    else
      out.push_back(c);
  }
  return out;
}

mapped_text map_each(const mapped_text& text, char32_t (*map)(char32_t)) {
  mapped_text out = text;
  for (auto& c : out) c.code_point = map(c.code_point);
  return out;
}

/// CR LF, CR, U+2028, U+2029 and U+0085 become LF.
mapped_text unify_line_breaks(const mapped_text& text) {
  mapped_text out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i].code_point;
    if (c == '\r' && i + 1 < text.size() && text[i + 1].code_point == '\n') {
      out.push_back({'\n', source_of(text, i, i + 2)});
      ++i;
    } else if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back({'\n', text[i].source});
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

/// Removes `ESC [ (digit | ;)* letter`.
mapped_text remove_terminal_escapes(const mapped_text& text) {
  mapped_text out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i].code_point == 0x1B && i + 1 < text.size() && text[i + 1].code_point == '[') {
      std::size_t end = i + 2;
      while (end < text.size() &&
             ((text[end].code_point >= '0' && text[end].code_point <= '9') ||
              text[end].code_point == ';'))
        ++end;
      const char32_t final_char = end < text.size() ? text[end].code_point : 0;
      if ((final_char >= 'a' && final_char <= 'z') || (final_char >= 'A' && final_char <= 'Z')) {
        i = end;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

mapped_text remove_unintended_controls(const mapped_text& text) {
  mapped_text out;
  out.reserve(text.size());
  std::ranges::copy_if(text, std::back_inserter(out),
                       [](const mapped_char& c) { return !is_unintended_control(c.code_point); });
  return out;
}

bool same_code_points(const mapped_text& a, const mapped_text& b) {
  return std::ranges::equal(a, b, {}, &mapped_char::code_point, &mapped_char::code_point);
}

/// One line through every fix, repeated until nothing changes (as `ftfy.fix_and_explain`).
mapped_text fix_line(mapped_text line, bool unescape) {
  while (true) {
    const auto before = line;
    if (unescape) line = unescape_html(line);
    line = fix_mojibake(line);
    line = map_each(line, c1_as_windows_1252);
    line = rewrite_each(line, latin_ligature);
    line = rewrite_each(line, width_fold);
    line = map_each(line, straight_quote);
    line = unify_line_breaks(line);
    line = remove_terminal_escapes(line);
    line = remove_unintended_controls(line);
    line = unicode::nfc(line);
    if (same_code_points(line, before)) return line;
  }
}

}  // namespace

mapped_text unescape_html(const mapped_text& text) {
  constexpr std::size_t longest_name = 24;
  mapped_text out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i].code_point == '&') {
      const bool numeric = i + 1 < text.size() && text[i + 1].code_point == '#';
      const std::size_t body_begin = i + 1 + (numeric ? 1 : 0);
      std::size_t body_end = body_begin;
      while (body_end < text.size() && is_ascii_alnum(text[body_end].code_point)) ++body_end;
      const std::size_t body_length = body_end - body_begin;
      if (body_length >= 1 && body_length <= longest_name && body_end < text.size() &&
          text[body_end].code_point == ';') {
        std::u32string body;
        for (std::size_t k = body_begin; k < body_end; ++k) body += text[k].code_point;
        const auto characters = numeric ? numeric_reference(body) : named_reference(body);
        if (characters) {
          append_all(*characters, source_of(text, i, body_end + 1), out);
          i = body_end;
          continue;
        }
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

mapped_text fix_mojibake(const mapped_text& text) {
  std::vector<mojibake_run> runs;
  for (std::size_t at = 0; at < text.size();) {
    const auto run = run_at(text, at);
    if (run) runs.push_back(*run);
    at = run ? run->end : at + 1;
  }
  const auto repaired = [&](std::size_t k) {
    const auto& run = runs[k];
    const bool joined_before = k > 0 && runs[k - 1].end == run.begin;
    const bool joined_after = k + 1 < runs.size() && runs[k + 1].begin == run.end;
    const bool word_follows = run.end < text.size() && is_word_character(text[run.end].code_point);
    return run.certain || joined_before || joined_after || word_follows;
  };
  mapped_text out;
  out.reserve(text.size());
  std::size_t copied = 0;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    if (!repaired(k)) continue;
    out.insert(out.end(), text.begin() + static_cast<std::ptrdiff_t>(copied),
               text.begin() + static_cast<std::ptrdiff_t>(runs[k].begin));
    out.push_back({runs[k].decoded, source_of(text, runs[k].begin, runs[k].end)});
    copied = runs[k].end;
  }
  out.insert(out.end(), text.begin() + static_cast<std::ptrdiff_t>(copied), text.end());
  return out;
}

mapped_text fix_text(const mapped_text& text) {
  mapped_text out;
  out.reserve(text.size());
  bool unescape = true;  // off for good once a line holds '<'
  for (std::size_t begin = 0; begin < text.size();) {
    std::size_t end = begin;
    while (end < text.size() && text[end].code_point != '\n') ++end;
    end = std::min(end + 1, text.size());  // the line keeps its '\n'
    const mapped_text line(text.begin() + static_cast<std::ptrdiff_t>(begin),
                           text.begin() + static_cast<std::ptrdiff_t>(end));
    if (std::ranges::any_of(line, [](const mapped_char& c) { return c.code_point == '<'; }))
      unescape = false;
    const auto fixed = fix_line(line, unescape);
    out.insert(out.end(), fixed.begin(), fixed.end());
    begin = end;
  }
  return out;
}

}  // namespace star::sd35
