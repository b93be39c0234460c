// Unicode NFC on mapped text: Python's unicodedata 14.0.0 results (computed when the test was
// written), canonical equivalence and idempotence, and the map back to the prompt's bytes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sd35/tokenizers/mapped_text.hpp"
#include "sd35/tokenizers/unicode.hpp"
#include "sd35/tokenizers/unicode_nfc.hpp"

namespace {

namespace unicode = star::sd35::unicode;
using star::sd35::mapped_text;

std::u32string code_points(const mapped_text& text) {
  std::u32string out;
  for (const auto& ch : text) out += ch.code_point;
  return out;
}

std::string nfc_utf8(std::string_view prompt) {
  return star::sd35::encode_utf8(unicode::nfc(star::sd35::decode_mapped(prompt)));
}

using spans_t = std::vector<std::pair<std::int64_t, std::int64_t>>;

/// The prompt byte ranges of NFC(prompt)'s code points.
spans_t nfc_spans(std::string_view prompt) {
  spans_t out;
  for (const auto& ch : unicode::nfc(star::sd35::decode_mapped(prompt)))
    out.emplace_back(ch.source.begin, ch.source.end);
  return out;
}

/// Text of the given code points, each mapped to its own 4-byte slot.
mapped_text slots(std::u32string_view text) {
  mapped_text out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto begin = static_cast<std::int64_t>(4 * i);
    out.push_back({text[i], {begin, begin + 4}});
  }
  return out;
}

/// The test's own NFD: full decomposition, then each run of marks stably sorted by class.
std::u32string nfd(std::u32string_view text) {
  std::u32string out;
  for (const char32_t cp : text) unicode::append_canonical_decomposition(cp, out);
  const auto is_mark = [](char32_t cp) { return unicode::combining_class(cp) != 0; };
  for (auto run = out.begin(); run != out.end();) {
    run = std::find_if(run, out.end(), is_mark);
    const auto run_end = std::find_if_not(run, out.end(), is_mark);
    std::stable_sort(run, run_end, [](char32_t a, char32_t b) {
      return unicode::combining_class(a) < unicode::combining_class(b);
    });
    run = run_end;
  }
  return out;
}

/// The spans of `output = nfc(input)` stay in prompt order, leave no prompt byte out, and each
/// covers the input code points its code point was made of.
void check_sources(const mapped_text& input, const mapped_text& output,
                   std::int64_t prompt_size) {
  if (input.empty()) {
    CHECK(output.empty());
    return;
  }
  REQUIRE_FALSE(output.empty());
  CHECK(output.front().source.begin == 0);
  CHECK(output.back().source.end == prompt_size);
  for (std::size_t i = 0; i < output.size(); ++i) {
    const auto& span = output[i].source;
    INFO("output " << i << " U+" << std::hex << static_cast<std::uint32_t>(output[i].code_point)
                   << std::dec << " span [" << span.begin << ", " << span.end << ")");
    CHECK(span.begin < span.end);
    if (i > 0) {
      CHECK(output[i - 1].source.begin <= span.begin);
      CHECK(output[i - 1].source.end <= span.end);
      CHECK(span.begin <= output[i - 1].source.end);  // no byte left out
    }
    std::u32string inside;
    for (const auto& ch : input)
      if (ch.source.begin >= span.begin && ch.source.end <= span.end)
        unicode::append_canonical_decomposition(ch.code_point, inside);
    auto pieces = nfd(std::u32string(1, output[i].code_point));
    std::sort(inside.begin(), inside.end());
    std::sort(pieces.begin(), pieces.end());
    CHECK(std::includes(inside.begin(), inside.end(), pieces.begin(), pieces.end()));
  }
}

struct python_case {
  const char* name;
  const char* input;
  const char* expected;  // unicodedata.normalize("NFC", input)
};

const python_case python_cases[] = {
    {"decomposed e acute", "e\u0301", "\u00E9"},
    {"A + ring above", "A\u030A", "\u00C5"},
    {"ANGSTROM SIGN singleton", "\u212B", "\u00C5"},
    {"OHM SIGN singleton", "\u2126", "\u03A9"},
    {"KELVIN SIGN singleton", "\u212A", "K"},
    {"EN QUAD singleton", "\u2000", "\u2002"},
    {"CJK compatibility ideograph", "\uF900", "\u8C48"},
    {"grave tone mark singleton", "a\u0340", "\u00E0"},
    {"dot below then circumflex", "a\u0323\u0302", "\u1EAD"},
    {"circumflex then dot below", "a\u0302\u0323", "\u1EAD"},
    {"horn and dot below in order", "o\u031B\u0323", "\u1EE3"},
    {"horn and dot below reversed", "o\u0323\u031B", "\u1EE3"},
    {"two-level composition", "A\u0308\u0304", "\u01DE"},
    {"u diaeresis acute", "u\u0308\u0301", "\u01D8"},
    {"reordered marks without composite", "x\u0302\u0323", "x\u0323\u0302"},
    {"composes past a lower class", "a\u0316\u0301", "\u00E1\u0316"},
    {"blocked by an equal class", "a\u0305\u0301", "a\u0305\u0301"},
    {"blocked by a starter", "a-\u0301", "a-\u0301"},
    {"long s dot above + dot below", "\u1E9B\u0323", "\u1E9B\u0323"},
    {"Hangul L+V", "\u1100\u1161", "\uAC00"},
    {"Hangul L+V+T", "\u1100\u1161\u11A8", "\uAC01"},
    {"Hangul LV syllable + T", "\uAC00\u11A8", "\uAC01"},
    {"Hangul LVT syllable + T", "\uAC01\u11A8", "\uAC01\u11A8"},
    {"Hangul syllables unchanged", "\uD55C\uAD6D\uC5B4", "\uD55C\uAD6D\uC5B4"},
    {"exclusion: DEVANAGARI QA", "\u0958", "\u0915\u093C"},
    {"exclusion: decomposed QA stays", "\u0915\u093C", "\u0915\u093C"},
    {"exclusion: Hebrew alef patah", "\u05D0\u05B7", "\u05D0\u05B7"},
    {"exclusion: musical half note", "\U0001D15E", "\U0001D157\U0001D165"},
    {"non-starter decomposition U+0344", "\u0344", "\u0308\u0301"},
    {"starter + starter (Oriya)", "\u0B47\u0B3E", "\u0B4B"},
    {"Vietnamese decomposed", "Tie\u0302\u0301ng Vie\u0323\u0302t \u0111e\u0323p qua\u0301",
     "Ti\u1EBFng Vi\u1EC7t \u0111\u1EB9p qu\u00E1"},
    {"Vietnamese marks reversed", "Vi\u0323\u0302t", "V\u1ECB\u0302t"},
    {"Greek oxia becomes tonos", "\u1F71", "\u03AC"},
    {"Greek decomposed tonos", "\u03B1\u0301\u03C9\u0301", "\u03AC\u03CE"},
    {"Greek iota dialytika tonos", "\u03B9\u0308\u0301", "\u0390"},
    {"Greek psili perispomeni ypogegrammeni", "\u03C9\u0314\u0342\u0345", "\u1FA7"},
    {"Japanese dakuten", "\u304B\u3099", "\u304C"},
    {"already NFC", "Caf\u00E9 d\u00E9j\u00E0 vu, \u00C5ngstr\u00F6m",
     "Caf\u00E9 d\u00E9j\u00E0 vu, \u00C5ngstr\u00F6m"},
    {"ASCII", "a photo of a cat", "a photo of a cat"},
    {"CJK unchanged", "\u6771\u4EAC\u30BF\u30EF\u30FC", "\u6771\u4EAC\u30BF\u30EF\u30FC"},
    {"emoji with a mark", "\U0001F600\u0301", "\U0001F600\u0301"},
    {"empty", "", ""},
};

/// Code points that compose, decompose, reorder and block one another, Hangul jamo and
/// syllables, and (as U+DC00 + byte) bytes that are not UTF-8.
const char32_t random_alphabet[] = {
    U'a', U'e', U'o', U'u', U'A', U'x', U' ', U'-', 0xE9, 0x1EAD, 0x1D8, 0x212B, 0x300, 0x301,
    0x302, 0x303, 0x304, 0x305, 0x308, 0x30A, 0x316, 0x31B, 0x323, 0x327, 0x328, 0x340, 0x344,
    0x345, 0x3B1, 0x3B9, 0x3C9, 0x313, 0x314, 0x342, 0x1F71, 0x1100, 0x1112, 0x1161, 0x1175,
    0x11A8, 0x11C2, 0xAC00, 0xAC01, 0xD7A3, 0x915, 0x93C, 0x958, 0xB47, 0xB3E, 0x304B, 0x3099,
    0x1D157, 0x1D165, 0x1D15E, 0xDCFF, 0xDC80};

std::string random_prompt(std::mt19937_64& rng) {
  std::uniform_int_distribution<std::size_t> length(0, 24);
  std::uniform_int_distribution<std::size_t> pick(0, std::size(random_alphabet) - 1);
  std::string out;
  for (std::size_t n = length(rng); n > 0; --n) {
    const char32_t cp = random_alphabet[pick(rng)];
    if (star::sd35::is_escaped_byte(cp))
      out += static_cast<char>(cp - 0xDC00);
    else
      unicode::append_utf8(cp, out);
  }
  return out;
}

}  // namespace

TEST_CASE("NFC matches Python's unicodedata on hand-picked strings", "[unicode][nfc]") {
  for (const auto& c : python_cases) {
    INFO(c.name);
    CHECK(nfc_utf8(c.input) == c.expected);
  }
}

TEST_CASE("NFC of every single code point matches Python's (FNV-1a hash of all results)",
          "[unicode][nfc]") {
  // Python: h = FNV-1a 64 over NFC(chr(cp)) of every non-surrogate cp in order, each result
  // followed by 0x110000; 1120 code points change.
  std::uint64_t hash = 0xCBF29CE484222325ULL;
  const auto mix = [&hash](char32_t value) { hash = (hash ^ value) * 0x100000001B3ULL; };
  int changed = 0;
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const auto out = code_points(unicode::nfc(slots(std::u32string(1, cp))));
    if (out != std::u32string(1, cp)) ++changed;
    for (const char32_t c : out) mix(c);
    mix(0x110000);
  }
  CHECK(changed == 1120);
  CHECK(hash == 0xAB67FBC7B166CF6DULL);
}

TEST_CASE("NFC of every code point is canonically equivalent to it and stable",
          "[unicode][nfc]") {
  int failures = 0;
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const std::u32string one(1, cp);
    const auto composed = code_points(unicode::nfc(slots(one)));
    const bool ok = nfd(composed) == nfd(one) &&
                    code_points(unicode::nfc(slots(nfd(one)))) == composed &&
                    code_points(unicode::nfc(slots(composed))) == composed;
    if (!ok && ++failures <= 5) FAIL_CHECK("U+" << std::hex << static_cast<std::uint32_t>(cp));
  }
  CHECK(failures == 0);
}

TEST_CASE("NFC is idempotent and canonically equivalent and keeps sources on random strings",
          "[unicode][nfc]") {
  for (std::uint64_t seed = 0; seed < 2000; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    const auto prompt = random_prompt(rng);
    const auto input = star::sd35::decode_mapped(prompt);
    const auto output = unicode::nfc(input);
    CHECK(code_points(unicode::nfc(output)) == code_points(output));
    CHECK(nfd(code_points(output)) == nfd(code_points(input)));
    check_sources(input, output, static_cast<std::int64_t>(prompt.size()));
  }
}

TEST_CASE("NFC sources: pieces keep their code point's bytes and composites span their parts",
          "[unicode][nfc]") {
  CHECK(nfc_spans("xe\u0301y") == spans_t{{0, 1}, {1, 4}, {4, 5}});
  CHECK(nfc_spans("\u0958") == spans_t{{0, 3}, {0, 3}});  // decomposed, excluded
  CHECK(nfc_spans("\u212B!") == spans_t{{0, 3}, {3, 4}});  // singleton
  CHECK(nfc_spans("\u1100\u1161\u11A8.") == spans_t{{0, 9}, {9, 10}});  // Hangul L+V+T
  CHECK(nfc_spans("a\u0323\u0302b") == spans_t{{0, 5}, {5, 6}});  // two marks composed
  CHECK(nfc_spans("\u1EADb") == spans_t{{0, 3}, {3, 4}});  // already composed
}

TEST_CASE("NFC sources: moved marks widen as little as keeps spans in prompt order",
          "[unicode][nfc]") {
  // x U+0302 U+0323 -> x U+0323 U+0302: the swapped marks share the bytes of both.
  CHECK(nfc_spans("x\u0302\u0323y") == spans_t{{0, 1}, {1, 5}, {1, 5}, {5, 6}});
  // a U+0316 U+0301 -> a-acute U+0316: the acute composes past U+0316, which then ends where
  // the composite does.
  CHECK(nfc_spans("a\u0316\u0301y") == spans_t{{0, 5}, {1, 5}, {5, 6}});
}

TEST_CASE("NFC passes bytes that are not UTF-8 through as starters", "[unicode][nfc]") {
  const std::string prompt = std::string("e") + static_cast<char>(0xFF) + "\u0301" +
                             static_cast<char>(0x80) + "e\u0301";
  const auto output = unicode::nfc(star::sd35::decode_mapped(prompt));
  CHECK(code_points(output) == std::u32string{U'e', star::sd35::escaped_byte(0xFF), 0x301,
                                              star::sd35::escaped_byte(0x80), 0xE9});
  check_sources(star::sd35::decode_mapped(prompt), output,
                static_cast<std::int64_t>(prompt.size()));
}

TEST_CASE("helpers: combining class and canonical decomposition and primary composite",
          "[unicode][nfc]") {
  CHECK(unicode::combining_class(U'A') == 0);
  CHECK(unicode::combining_class(0x301) == 230);
  CHECK(unicode::combining_class(0x316) == 220);
  CHECK(unicode::combining_class(0x31B) == 216);
  CHECK(unicode::combining_class(0x345) == 240);
  CHECK(unicode::combining_class(0x1D165) == 216);
  CHECK(unicode::combining_class(0x10FFFF) == 0);

  const auto decomposition = [](char32_t cp) {
    std::u32string out;
    unicode::append_canonical_decomposition(cp, out);
    return out;
  };
  CHECK(decomposition(U'A') == U"A");
  CHECK(decomposition(0x1E09) == std::u32string{U'c', 0x327, 0x301});   // recursive, full
  CHECK(decomposition(0xAC00) == std::u32string{0x1100, 0x1161});
  CHECK(decomposition(0xD7A3) == std::u32string{0x1112, 0x1175, 0x11C2});
  CHECK(decomposition(0xDCFF) == std::u32string{0xDCFF});

  CHECK(unicode::primary_composite(U'A', 0x30A) == 0xC5);
  CHECK(unicode::primary_composite(0xC4, 0x304) == 0x1DE);
  CHECK(unicode::primary_composite(0x1100, 0x1161) == 0xAC00);
  CHECK(unicode::primary_composite(0xAC00, 0x11A8) == 0xAC01);
  CHECK(unicode::primary_composite(0xAC01, 0x11A8) == 0);               // LVT + T
  CHECK(unicode::primary_composite(0xAC00, 0x11A7) == 0);               // T index 0
  CHECK(unicode::primary_composite(0x915, 0x93C) == 0);                 // excluded
  CHECK(unicode::primary_composite(0x308, 0x301) == 0);                 // U+0344 is not primary
  CHECK(unicode::primary_composite(U'x', 0x301) == 0);
}

TEST_CASE("the generated tables are sorted as their binary searches need", "[unicode][nfc]") {
  const auto decompositions = unicode::canonical_decompositions();
  const auto pool = unicode::decomposition_pool();
  for (std::size_t i = 0; i < decompositions.size(); ++i) {
    CHECK(decompositions[i].offset + decompositions[i].length <= pool.size());
    if (i > 0) CHECK(decompositions[i - 1].code_point < decompositions[i].code_point);
  }
  const auto runs = unicode::combining_class_runs();
  for (std::size_t i = 0; i < runs.size(); ++i) {
    CHECK(runs[i].first <= runs[i].last);
    CHECK(runs[i].combining_class != 0);
    if (i > 0) CHECK(runs[i - 1].last < runs[i].first);
  }
  const auto composites = unicode::primary_composites();
  for (std::size_t i = 1; i < composites.size(); ++i)
    CHECK(std::pair(composites[i - 1].first, composites[i - 1].second) <
          std::pair(composites[i].first, composites[i].second));
  CHECK(decompositions.size() == 2061);
  CHECK(composites.size() == 941);
}
