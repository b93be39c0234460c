// fix_text: the subset of ftfy.fix_text that CLIP's reference tokenizer applies. Expected
// values are ftfy 6.3.1's documented examples, Python's html.unescape and unicodedata, and the
// behaviour fix_text.hpp documents where it departs from ftfy.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sd35/tokenizers/fix_text.hpp"

namespace {

using star::sd35::decode_mapped;
using star::sd35::encode_utf8;

std::string fixed(const std::string& prompt) {
  return encode_utf8(star::sd35::fix_text(decode_mapped(prompt)));
}

void check_all(const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [prompt, expected] : cases) {
    INFO("prompt '" << prompt << "'");
    CHECK(fixed(prompt) == expected);
  }
}

}  // namespace

TEST_CASE("fix_text reproduces ftfy's documented examples", "[fix_text]") {
  check_all({
      {"\xC3\xA2\xC5\x93\xE2\x80\x9D No problems", "\xE2\x9C\x94 No problems"},  // âœ” -> ✔
      {"&macr;\\_(\xC3\xA3\xC2\x83\xC2\x84)_/&macr;", "\xC2\xAF\\_(\xE3\x83\x84)_/\xC2\xAF"},
      {"Broken text&hellip; it&#x2019;s \xEF\xAC\x82ubberi\xEF\xAC\x81" "c!",
       "Broken text\xE2\x80\xA6 it's flubberific!"},
      {"\xEF\xBC\xAC\xEF\xBC\xAF\xEF\xBC\xB5\xEF\xBC\xA4\xE3\x80\x80\xEF\xBC\xAE\xEF\xBC\xAF"
       "\xEF\xBC\xA9\xEF\xBC\xB3\xEF\xBC\xA5\xEF\xBC\xB3",
       "LOUD NOISES"},
      {"\xEF\xBC\xB5\xEF\xBE\x80\xEF\xBD\xB0\xEF\xBE\x9D", "U\xE3\x82\xBF\xE3\x83\xBC\xE3\x83\xB3"},
      {"\xEF\xAC\x82u\xEF\xAC\x83" "e\xEF\xAC\x86", "fluffiest"},
      {"\xE2\x80\x9Chere\xE2\x80\x99s a test\xE2\x80\x9D", "\"here's a test\""},
      {"\x1B[36;44mI'm blue, da ba dee da ba doo...\x1B[0m", "I'm blue, da ba dee da ba doo..."},
      {"Content-type: text/plain\r\n\r\nHi.", "Content-type: text/plain\n\nHi."},
      {"This is how Microsoft \r trolls Mac users", "This is how Microsoft \n trolls Mac users"},
      {"\xEF\xBB\xBFWhere do you want to go today?", "Where do you want to go today?"},
  });
}

TEST_CASE("fix_text unescapes HTML references as ftfy does", "[fix_text][html]") {
  check_all({
      {"&lt;tag&gt;", "<tag>"},
      {"&Jscr;ohn &HilbertSpace;ancock", "\xF0\x9D\x92\xA5ohn \xE2\x84\x8B" "ancock"},
      {"&checkmark;", "\xE2\x9C\x93"},
      {"P&EACUTE;REZ", "P\xC3\x89REZ"},
      {"BUNDESSTRA&SZLIG;E", "BUNDESSTRASSE"},
      {"&ntilde; &Ntilde; &NTILDE; &nTILDE;", "\xC3\xB1 \xC3\x91 \xC3\x91 &nTILDE;"},
      {"this&not that", "this&not that"},                      // no ';': left alone
      {"&#65;&#x42;&#X43;", "ABC"},
      {"&#128;", "\xE2\x82\xAC"},                               // html.unescape: Windows-1252
      {"a&#0;b", "a\xEF\xBF\xBD" "b"},
      {"a&#1;b", "ab"},                                         // dropped by html.unescape
      {"&#xD800; &#99999999999999999999;", "\xEF\xBF\xBD \xEF\xBF\xBD"},
      {"&#12a; &#x; &nosuchentity;", "&#12a; &#x; &nosuchentity;"},
      {"&aaaaaaaaaaaaaaaaaaaaaaaaa;", "&aaaaaaaaaaaaaaaaaaaaaaaaa;"},  // 25 characters
      {"&amp;amp;", "&"},                                       // fixed until nothing changes
      // the first line holding '<' turns unescaping off for itself and every later line
      {"a &amp; b\n<c> &amp;\n&amp;", "a & b\n<c> &amp;\n&amp;"},
  });
}

TEST_CASE("fix_text repairs Latin-1 and Windows-1252 mojibake", "[fix_text][mojibake]") {
  check_all({
      {"mojibake: caf\xC3\x83\xC2\xA9", "mojibake: caf\xC3\xA9"},
      {"caf\xC3\x83\xC6\x92\xC3\x82\xC2\xA9", "caf\xC3\xA9"},  // twice mis-decoded
      {"it\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2s", "it's"},         // â€™ -> ’ -> '
      {"\xC3\x83\xE2\x80\x9C" "scar", "\xC3\x93scar"},          // Ã“scar -> Óscar
      {"\xC3\x90\xC5\xB8\xC3\x91\xE2\x82\xAC\xC3\x90\xC2\xB8\xC3\x90\xC2\xB2\xC3\x90\xC2\xB5"
       "\xC3\x91\xE2\x80\x9A",
       "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82"},     // Привет
      {"\xC3\xB0\xC5\xB8\xCB\x9C\xE2\x82\xAC", "\xF0\x9F\x98\x80"},  // four bytes: 😀
      {"na\xC3\xAFve caf\xC3\xA9", "na\xC3\xAFve caf\xC3\xA9"},  // real Latin-1 text stays
  });
}

TEST_CASE("fix_text keeps a word-final accented letter before a quote", "[fix_text][mojibake]") {
  check_all({
      {"\xE2\x80\x9C" "CAF\xC3\x89\xE2\x80\x9D", "\"CAF\xC3\x89\""},
      {"\xE2\x80\x9E" "Fu\xC3\x9F\xE2\x80\x9C ist", "\"Fu\xC3\x9F\" ist"},
  });
}

TEST_CASE("fix_text removes unintended control characters and keeps the rest",
          "[fix_text][controls]") {
  check_all({
      {"zero\xE2\x80\x8Bwidth and bell\x07" "char", "zero\xE2\x80\x8Bwidth and bellchar"},
      {"tab\tand\x0C" "feed", "tab\tand\x0C" "feed"},
      {"c1 \xC2\x80 control", "c1 \xE2\x82\xAC control"},  // read as Windows-1252
      {"rtl \xE2\x80\x8F mark", "rtl \xE2\x80\x8F mark"},
      {"lines\xE2\x80\xA8" "and\xC2\x85" "breaks", "lines\nand\xE2\x80\xA6" "breaks"},  // C1 first
  });
}

TEST_CASE("fix_text ends with NFC and passes invalid UTF-8 through", "[fix_text][nfc]") {
  check_all({
      {"accents decomposed: e\xCC\x81", "accents decomposed: \xC3\xA9"},
      {"bad \xFF byte \xC3", "bad \xFF byte \xC3"},
  });
}

TEST_CASE("fix_text maps every output character to the prompt bytes it replaced",
          "[fix_text][offsets]") {
  const std::string prompt = "x &amp; caf\xC3\x83\xC2\xA9 \xEF\xAC\x81";  // x &amp; cafÃ© ﬁ
  const auto out = star::sd35::fix_text(decode_mapped(prompt));
  REQUIRE(encode_utf8(out) == "x & caf\xC3\xA9 fi");
  struct expectation {
    std::size_t index;
    std::int64_t begin, end;
  };
  for (const auto& e : std::vector<expectation>{
           {0, 0, 1}, {2, 2, 7}, {4, 8, 9}, {7, 11, 15}, {8, 15, 16}, {9, 16, 19}, {10, 16, 19}}) {
    INFO("output character " << e.index);
    CHECK(out[e.index].source.begin == e.begin);
    CHECK(out[e.index].source.end == e.end);
  }
}

TEST_CASE("fix_text is idempotent on the CLIP fixture prompts", "[fix_text]") {
  std::ifstream in(std::string(STAR_TEST_DATA_DIR) + "/sd35/clip_tokenizer.json");
  const auto cases = nlohmann::json::parse(in).at("cases");
  for (const auto& c : cases) {
    const auto once = fixed(c.at("prompt").get<std::string>());
    INFO("case " << c.at("id"));
    CHECK(fixed(once) == once);
  }
}
