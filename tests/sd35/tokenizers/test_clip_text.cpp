// CLIP's normalisation, its map back to the prompt, the pre-tokenisation regex and the Unicode
// classes behind it.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "sd35/tokenizers/clip_text.hpp"
#include "sd35/tokenizers/unicode.hpp"

namespace {

using star::sd35::clip_normalize;
using star::sd35::clip_pretokenize;

std::vector<std::string> piece_texts(const std::string& text,
                                     const std::vector<std::string>& added = {}) {
  std::vector<std::string> out;
  for (const auto& piece : clip_pretokenize(text, added))
    out.push_back(text.substr(piece.begin, piece.end - piece.begin));
  return out;
}

}  // namespace

TEST_CASE("normalisation collapses and strips whitespace and lower-cases", "[clip][normalize]") {
  CHECK(clip_normalize("  A  Photo\tOf\r\n\u00A0CATS  ").text == "a photo of cats");
  CHECK(clip_normalize("\u00DCN\u00CFC\u00D6D\u00C9 \u0416\u0418\u0412").text ==
        "\u00FCn\u00EFc\u00F6d\u00E9 \u0436\u0438\u0432");
  CHECK(clip_normalize("").text.empty());
  CHECK(clip_normalize(" \t\n ").text.empty());
  CHECK(clip_normalize("\u0130").text == "i\u0307");           // the one two-code-point lower
  CHECK(clip_normalize("\u212A").text == "k");                 // KELVIN SIGN: 3 bytes -> 1
  CHECK(clip_normalize("stra\u00DFe").text == "stra\u00DFe");  // str.lower keeps sharp s
}

TEST_CASE("normalised bytes map back to the prompt bytes they came from", "[clip][normalize]") {
  const std::string prompt = "  Big  \u00C9t\u00E9\u212A ";
  const auto normalized = clip_normalize(prompt);
  REQUIRE(normalized.text == "big \u00E9t\u00E9k");
  REQUIRE(normalized.source.size() == normalized.text.size());
  const auto big = normalized.prompt_span(0, 3);
  CHECK(prompt.substr(static_cast<std::size_t>(big.begin),
                      static_cast<std::size_t>(big.end - big.begin)) == "Big");
  const auto e_acute = normalized.prompt_span(4, 6);  // same length when lower-cased: exact
  CHECK(e_acute.begin == 7);
  CHECK(e_acute.end == 9);
  const auto half = normalized.prompt_span(4, 5);  // one byte of a 2-byte character
  CHECK(half.begin == 7);
  CHECK(half.end == 8);
  const auto kelvin = normalized.prompt_span(9, 10);  // 'k' from 3 bytes: the whole character
  CHECK(kelvin.begin == 12);
  CHECK(kelvin.end == 15);
}

TEST_CASE("bytes that are not UTF-8 are kept as they are", "[clip][normalize]") {
  const std::string prompt = std::string("A") + static_cast<char>(0xFF) + "B";
  const auto normalized = clip_normalize(prompt);
  CHECK(normalized.text == std::string("a") + static_cast<char>(0xFF) + "b");
  CHECK(piece_texts(normalized.text).size() == 3);
}

TEST_CASE("pre-tokenisation follows CLIP's regex", "[clip][pretokenize]") {
  CHECK(piece_texts("a t-shirt printed with 'hello, world!'") ==
        std::vector<std::string>{"a", "t", "-", "shirt", "printed", "with", "'", "hello", ",",
                                 "world", "!'"});
  CHECK(piece_texts("it's we'll they'd've i'm") ==
        std::vector<std::string>{"it", "'s", "we", "'ll", "they", "'d", "'ve", "i", "'m"});
  CHECK(piece_texts("?'s") == std::vector<std::string>{"?'", "s"});  // greedy punctuation run
  CHECK(piece_texts("2024, 3.14") ==
        std::vector<std::string>{"2", "0", "2", "4", ",", "3", ".", "1", "4"});
  CHECK(piece_texts("caf\u00E9 \u65E5\u672C\u8A9E \u043C\u0438\u0440") ==
        std::vector<std::string>{"caf\u00E9", "\u65E5\u672C\u8A9E", "\u043C\u0438\u0440"});
  CHECK(piece_texts("\u00B2\u00BD x\u0661") ==  // superscript two, one half, Arabic-Indic one
        std::vector<std::string>{"\u00B2", "\u00BD", "x", "\u0661"});
  CHECK(piece_texts("\U0001F642\U0001F680 ok") ==
        std::vector<std::string>{"\U0001F642\U0001F680", "ok"});
  CHECK(piece_texts("").empty());
}

TEST_CASE("added tokens are split out whole before the regex", "[clip][pretokenize]") {
  const std::vector<std::string> specials{"<|startoftext|>", "<|endoftext|>"};
  CHECK(piece_texts("?<|endoftext|>x", specials) ==
        std::vector<std::string>{"?", "<|endoftext|>", "x"});
  const auto pieces = clip_pretokenize("wow!!! ok?!", std::vector<std::string>{"!"});
  std::vector<bool> added;
  for (const auto& p : pieces) added.push_back(p.added_token);
  CHECK(added == std::vector<bool>{false, true, true, true, false, false, true});
  CHECK(piece_texts("wow!!! ok?!", {"!"}) ==
        std::vector<std::string>{"wow", "!", "!", "!", "ok", "?", "!"});
}

TEST_CASE("Unicode classes and lower-casing agree with Python on spot checks", "[clip][unicode]") {
  using namespace star::sd35::unicode;
  for (const char32_t letter : {U'a', U'Z', U'\u00E9', U'\u00DF', U'\u0416', U'\u05D0', U'\u0628',
                                U'\u3042', U'\u65E5', U'\uFF41', U'\U00020000'})
    CHECK(is_letter(letter));
  for (const char32_t number : {U'0', U'9', U'\u00B2', U'\u00BD', U'\u0661', U'\u2160', U'\uFF11'})
    CHECK(is_number(number));
  for (const char32_t other : {U' ', U'!', U'\'', U'-', U'\u00A0', U'\u0301', U'\u2014',
                               U'\U0001F642', U'\u200B'}) {
    CHECK_FALSE(is_letter(other));
    CHECK_FALSE(is_number(other));
  }
  for (const char32_t space : {U' ', U'\t', U'\n', U'\x1C', U'\u0085', U'\u00A0', U'\u2003',
                               U'\u3000'})
    CHECK(is_whitespace(space));
  CHECK_FALSE(is_whitespace(U'\u200B'));
  std::u32string lowered;
  for (const char32_t c : {U'A', U'\u00C0', U'\u0100', U'\u0391', U'\u0410', U'\u0400', U'\uFF21',
                           U'\U00010400', U'a', U'1'})
    append_lowercase(c, lowered);
  CHECK(lowered == U"a\u00E0\u0101\u03B1\u0430\u0450\uFF41\U00010428a1");
}

TEST_CASE("UTF-8 decoding rejects malformed sequences byte by byte", "[clip][unicode]") {
  using star::sd35::unicode::decode_utf8;
  const std::string text = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x99\x82";
  CHECK(decode_utf8(text, 0).code_point == U'\u00E9');
  CHECK(decode_utf8(text, 2).code_point == U'\u20AC');
  CHECK(decode_utf8(text, 5).code_point == U'\U0001F642');
  for (const std::string bad : {"\x80", "\xC3", "\xC0\x80", "\xED\xA0\x80", "\xE2\x28\xA1"}) {
    const auto decoded = decode_utf8(bad, 0);
    CHECK(decoded.code_point == 0xFFFD);
    CHECK(decoded.length == 1);
  }
}
