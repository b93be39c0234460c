#include "sd35/tokenizers/unicode_nfc.hpp"

#include <algorithm>
#include <tuple>

namespace star::sd35::unicode {
namespace {

// Hangul syllables: S = s_base + (L - l_base) * n_count + (V - v_base) * t_count + (T - t_base).
constexpr char32_t s_base = 0xAC00;
constexpr char32_t l_base = 0x1100;
constexpr char32_t v_base = 0x1161;
constexpr char32_t t_base = 0x11A7;  // T index 0 means "no trailing consonant"
constexpr char32_t l_count = 19;
constexpr char32_t v_count = 21;
constexpr char32_t t_count = 28;
constexpr char32_t n_count = v_count * t_count;
constexpr char32_t s_count = l_count * n_count;

bool is_hangul_syllable(char32_t cp) { return cp >= s_base && cp < s_base + s_count; }

/// Pieces of `text`'s code points fully decomposed, each with the source of its code point.
mapped_text decompose(const mapped_text& text) {
  mapped_text out;
  out.reserve(text.size());
  std::u32string pieces;
  for (const auto& ch : text) {
    pieces.clear();
    append_canonical_decomposition(ch.code_point, pieces);
    for (const char32_t piece : pieces) out.push_back({piece, ch.source});
  }
  return out;
}

/// Stable-sorts every run of non-starters by combining class.
void order_marks(mapped_text& chars) {
  const auto is_mark = [](const mapped_char& ch) { return combining_class(ch.code_point) != 0; };
  const auto by_class = [](const mapped_char& a, const mapped_char& b) {
    return combining_class(a.code_point) < combining_class(b.code_point);
  };
  for (auto run = chars.begin(); run != chars.end();) {
    run = std::find_if(run, chars.end(), is_mark);
    const auto run_end = std::find_if_not(run, chars.end(), is_mark);
    std::stable_sort(run, run_end, by_class);
    run = run_end;
  }
}

/// Canonical composition of decomposed, canonically ordered text: each code point composes
/// with the last starter unless a code point between them is a starter or has a combining
/// class at least its own ("blocked").
mapped_text compose(const mapped_text& chars) {
  mapped_text out;
  out.reserve(chars.size());
  bool has_starter = false;
  std::size_t starter = 0;  // index in `out` of the last starter
  int last_class = 0;       // combining class of `out.back()`
  for (const auto& ch : chars) {
    const int cls = combining_class(ch.code_point);
    if (has_starter) {
      const bool adjacent = out.size() == starter + 1;
      const bool blocked = !adjacent && (last_class == 0 || last_class >= cls);
      const char32_t composite = blocked ? 0 : primary_composite(out[starter].code_point,
                                                                 ch.code_point);
      if (composite != 0) {
        out[starter] = {composite, span_union(out[starter].source, ch.source)};
        continue;
      }
    }
    if (cls == 0) {
      has_starter = true;
      starter = out.size();
    }
    last_class = cls;
    out.push_back(ch);
  }
  return out;
}

/// Widens the spans as little as makes both their begins and their ends non-decreasing.
void keep_spans_in_order(mapped_text& chars) {
  for (std::size_t i = 1; i < chars.size(); ++i)
    chars[i].source.end = std::max(chars[i].source.end, chars[i - 1].source.end);
  for (std::size_t i = chars.size(); i-- > 1;)
    chars[i - 1].source.begin = std::min(chars[i - 1].source.begin, chars[i].source.begin);
}

}  // namespace

int combining_class(char32_t code_point) {
  const auto runs = combining_class_runs();
  const auto it = std::upper_bound(
      runs.begin(), runs.end(), code_point,
      [](char32_t cp, const combining_class_run& run) { return cp < run.first; });
  if (it == runs.begin() || code_point > std::prev(it)->last) return 0;
  return std::prev(it)->combining_class;
}

void append_canonical_decomposition(char32_t code_point, std::u32string& out) {
  if (is_hangul_syllable(code_point)) {
    const char32_t index = code_point - s_base;
    out += l_base + index / n_count;
    out += v_base + index % n_count / t_count;
    if (index % t_count != 0) out += t_base + index % t_count;
    return;
  }
  const auto entries = canonical_decompositions();
  const auto it = std::lower_bound(
      entries.begin(), entries.end(), code_point,
      [](const canonical_decomposition& entry, char32_t cp) { return entry.code_point < cp; });
  if (it == entries.end() || it->code_point != code_point) {
    out += code_point;
    return;
  }
  const auto pieces = decomposition_pool().subspan(it->offset, it->length);
  out.append(pieces.begin(), pieces.end());
}

char32_t primary_composite(char32_t first, char32_t second) {
  if (first >= l_base && first < l_base + l_count && second >= v_base &&
      second < v_base + v_count)
    return s_base + ((first - l_base) * v_count + (second - v_base)) * t_count;
  if (is_hangul_syllable(first) && (first - s_base) % t_count == 0 && second > t_base &&
      second < t_base + t_count)
    return first + (second - t_base);
  const auto pairs = primary_composites();
  const auto it = std::lower_bound(
      pairs.begin(), pairs.end(), composition_pair{first, second, 0},
      [](const composition_pair& a, const composition_pair& b) {
        return std::tie(a.first, a.second) < std::tie(b.first, b.second);
      });
  return it != pairs.end() && it->first == first && it->second == second ? it->composite : 0;
}

mapped_text nfc(const mapped_text& text) {
  auto chars = decompose(text);
  order_marks(chars);
  auto out = compose(chars);
  keep_spans_in_order(out);
  return out;
}

}  // namespace star::sd35::unicode
