// Token relevance selection (docs/math.md §2) with the linguistic rules, on hand-built
// SD3-like tokenizations: each rule's weights, the fallback chain and its reasons, every
// rejected input, and the weight-vector properties on seeded random tokenizations.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "star/tokens/select_core_tokens.hpp"
#include "support/compare.hpp"
#include "test_token_selection_fixtures.hpp"

using star::selection_rule;
using star::test::t5_offset;

namespace {

constexpr std::int64_t text_length = 333;

/// A weight vector over the 333 text positions with the given nonzero entries.
std::vector<double> weights_with(const std::vector<std::pair<std::int64_t, double>>& entries) {
  std::vector<double> w(text_length, 0.0);
  for (const auto& [j, value] : entries) w[static_cast<std::size_t>(j)] += value;
  return w;
}

star::token_selection select(const star::test::tokenized_prompt& p,
                             const star::token_selection_options& options) {
  return star::select_core_tokens(p.prompt, p.tokenizations, star::test::sd3_layout(), options);
}

star::token_selection_options with_rule(selection_rule rule) {
  star::token_selection_options options;
  options.rule = rule;
  return options;
}

/// The text-block positions of the special tokens.
std::vector<std::int64_t> special_positions(const star::test::tokenized_prompt& p) {
  std::vector<std::int64_t> out;
  for (std::size_t t = 0; t < p.tokenizations.size(); ++t)
    for (const auto& token : p.tokenizations[t].tokens)
      if (token.special) out.push_back((t == 0 ? 0 : t5_offset) + token.position);
  return out;
}

}  // namespace

TEST_CASE("tokens: quoted rule weights the OCR text in both the CLIP and T5 blocks") {
  const auto p = star::test::ocr_prompt();
  const auto got = select(p, with_rule(selection_rule::quoted));
  CHECK(got.rule_used == selection_rule::quoted);
  CHECK(got.fallback_reason.empty());
  CHECK_FALSE(got.uniform());
  CHECK(got.selected_words == std::vector<std::string>{"Hello", "World"});
  // "Hello": CLIP 6, T5 "H" 5 and "ello" 6 -> 1/2 over 3 tokens; "World": CLIP 7, T5 7.
  star::test::require_close(got.weights,
                            weights_with({{6, 1.0 / 6}, {t5_offset + 5, 1.0 / 6},
                                          {t5_offset + 6, 1.0 / 6}, {7, 0.25},
                                          {t5_offset + 7, 0.25}}),
                            1e-15);
}

TEST_CASE("tokens: quoted rule keeps punctuation of the quoted text and only the first pair") {
  const std::string prompt = "a neon sign reading \"OPEN 24/7!\" next to \"CLOSED\"";
  const auto p = star::test::make_tokenized(
      prompt, {"a", "neon", "sign", "reading", "\"", "OPEN", "24", "/", "7", "!", "\"", "next",
               "to", "\"", "CLOSED", "\""},
      {"a", "neon", "sign", "reading", "\"", "OP", "EN", "24/7", "!", "\"", "next", "to", "\"",
       "CLOSED", "\""});
  const auto got = select(p, with_rule(selection_rule::quoted));
  CHECK(got.selected_words == std::vector<std::string>{"OPEN", "24/7!"});
  // "OPEN": CLIP 6, T5 5, 6 (1/6 each); "24/7!": CLIP 7, 8, 9, 10, T5 7, 8 (1/12 each).
  star::test::require_close(
      got.weights,
      weights_with({{6, 1.0 / 6}, {t5_offset + 5, 1.0 / 6}, {t5_offset + 6, 1.0 / 6},
                    {7, 1.0 / 12}, {8, 1.0 / 12}, {9, 1.0 / 12}, {10, 1.0 / 12},
                    {t5_offset + 7, 1.0 / 12}, {t5_offset + 8, 1.0 / 12}}),
      1e-15);
}

TEST_CASE("tokens: metadata rule matches class names with plurals, colours and count words") {
  const auto p = star::test::geneval_prompt();
  auto options = with_rule(selection_rule::metadata);
  options.metadata = {{"cat", "red", 1}, {"Box", "BLUE", 2}};
  const auto got = select(p, options);
  CHECK(got.rule_used == selection_rule::metadata);
  CHECK(got.fallback_reason.empty());
  CHECK(got.selected_words == std::vector<std::string>{"red", "cat", "two", "blue", "boxes"});
  // Five words, 1/5 each: red (CLIP 5, T5 4), cat (CLIP 6, T5 "c" 5, "at" 6), two (CLIP 8,
  // T5 9), blue (CLIP 9, T5 10), boxes (CLIP 10, T5 "box" 11, "es" 12). The lone T5 "▁" at 8
  // covers no byte and gets nothing.
  star::test::require_close(
      got.weights,
      weights_with({{5, 0.1}, {t5_offset + 4, 0.1}, {6, 1.0 / 15}, {t5_offset + 5, 1.0 / 15},
                    {t5_offset + 6, 1.0 / 15}, {8, 0.1}, {t5_offset + 9, 0.1}, {9, 0.1},
                    {t5_offset + 10, 0.1}, {10, 1.0 / 15}, {t5_offset + 11, 1.0 / 15},
                    {t5_offset + 12, 1.0 / 15}}),
      1e-15);
}

TEST_CASE("tokens: metadata rule matches multi-word class names, digits and -ies plurals") {
  const auto p = star::test::make_tokenized(
      "3 Traffic Lights and puppies", {"3", "Traffic", "Lights", "and", "puppies"},
      {"3", "Traf", "fic", "Light", "s", "and", "pupp", "ies"});
  auto options = with_rule(selection_rule::metadata);
  options.metadata = {{"traffic light", "", 3}, {"puppy", "", 0}};
  const auto got = select(p, options);
  CHECK(got.selected_words == std::vector<std::string>{"3", "Traffic", "Lights", "puppies"});
  star::test::require_close(
      got.weights,
      weights_with({{1, 0.125}, {t5_offset + 0, 0.125}, {2, 1.0 / 12}, {t5_offset + 1, 1.0 / 12},
                    {t5_offset + 2, 1.0 / 12}, {3, 1.0 / 12}, {t5_offset + 3, 1.0 / 12},
                    {t5_offset + 4, 1.0 / 12}, {5, 1.0 / 12}, {t5_offset + 6, 1.0 / 12},
                    {t5_offset + 7, 1.0 / 12}}),
      1e-15);
  options.metadata = {{"light", "", 0}};  // a one-word name matches its plural anywhere
  CHECK(select(p, options).selected_words == std::vector<std::string>{"Lights"});
  options.metadata = {{"traffic", "", 0}};  // only the last word of a name takes plurals
  CHECK(select(p, options).selected_words == std::vector<std::string>{"Traffic"});
  options.metadata = {{"traffics light", "", 0}};
  CHECK(select(p, options).rule_used == selection_rule::content_words);
}

TEST_CASE("tokens: content_words rule skips stop words, the caller can replace the list") {
  const auto p = star::test::open_prompt();
  const auto got = select(p, with_rule(selection_rule::content_words));
  CHECK(got.rule_used == selection_rule::content_words);
  CHECK(got.fallback_reason.empty());
  CHECK(got.selected_words == std::vector<std::string>{"astronaut", "riding", "horse", "moon",
                                                       "digital", "art"});
  // Six words, 1/6 each: astronaut over CLIP 2 and T5 "astro" 1, "naut" 2; the others one
  // token per block.
  std::vector<std::pair<std::int64_t, double>> expected{
      {2, 1.0 / 18}, {t5_offset + 1, 1.0 / 18}, {t5_offset + 2, 1.0 / 18}};
  for (const std::int64_t j : {3, 5, 8, 10, 11}) {
    expected.push_back({j, 1.0 / 12});
    expected.push_back({t5_offset + j, 1.0 / 12});
  }
  star::test::require_close(got.weights, weights_with(expected), 1e-15);

  auto options = with_rule(selection_rule::content_words);
  options.stop_words = {"AN", "a", "on", "the", "riding", "digital", "art"};
  CHECK(select(p, options).selected_words ==
        std::vector<std::string>{"astronaut", "horse", "moon"});
}

TEST_CASE("tokens: explicit rule takes caller spans and words, overlap decides membership") {
  const auto p = star::test::open_prompt();
  auto options = with_rule(selection_rule::explicit_spans);
  options.explicit_spans = {{3, 12}};            // "astronaut"
  options.explicit_words = {"Digital Art", "zebra"};  // a phrase; an absent word
  auto got = select(p, options);
  CHECK(got.rule_used == selection_rule::explicit_spans);
  CHECK(got.selected_words == std::vector<std::string>{"astronaut", "digital", "art"});
  star::test::require_close(
      got.weights,
      weights_with({{2, 1.0 / 9}, {t5_offset + 1, 1.0 / 9}, {t5_offset + 2, 1.0 / 9},
                    {10, 1.0 / 6}, {t5_offset + 10, 1.0 / 6}, {11, 1.0 / 6},
                    {t5_offset + 11, 1.0 / 6}}),
      1e-15);

  // Bytes 5..7 ("tr") overlap CLIP "astronaut" [3, 12) and T5 "astro" [3, 8), not "naut".
  options.explicit_spans = {{5, 7}};
  options.explicit_words = {};
  got = select(p, options);
  CHECK(got.selected_words == std::vector<std::string>{"tr"});
  star::test::require_close(got.weights, weights_with({{2, 0.5}, {t5_offset + 1, 0.5}}), 1e-15);
}

TEST_CASE("tokens: the uniform rule spreads weight over the non-special tokens") {
  const auto p = star::test::ocr_prompt();
  const auto got = select(p, with_rule(selection_rule::uniform));
  CHECK(got.uniform());
  CHECK(got.fallback_reason.empty());
  CHECK(got.selected_words.empty());
  std::vector<std::pair<std::int64_t, double>> expected;
  for (std::int64_t j = 1; j <= 8; ++j) expected.push_back({j, 1.0 / 17});
  for (std::int64_t j = 0; j <= 8; ++j) expected.push_back({t5_offset + j, 1.0 / 17});
  star::test::require_close(got.weights, weights_with(expected), 1e-15);
}

TEST_CASE("tokens: fallback quoted -> content_words when the prompt has no quotes") {
  const auto p = star::test::open_prompt();
  const auto got = select(p, with_rule(selection_rule::quoted));
  CHECK(got.rule_used == selection_rule::content_words);
  CHECK_THAT(got.fallback_reason, Catch::Contains("quoted") && Catch::Contains("double quotes") &&
                                      Catch::Contains("content_words"));
  CHECK(got.weights == select(p, with_rule(selection_rule::content_words)).weights);
}

TEST_CASE("tokens: fallback quoted -> content_words for empty quotes") {
  const auto p = star::test::make_tokenized("A blank sign that says \"  \"",
                                            {"A", "blank", "sign", "that", "says", "\"", "\""},
                                            {"A", "blank", "sign", "that", "says", "\"", "\""});
  const auto got = select(p, with_rule(selection_rule::quoted));
  CHECK(got.rule_used == selection_rule::content_words);
  CHECK(got.selected_words == std::vector<std::string>{"blank", "sign", "says"});
  CHECK_THAT(got.fallback_reason, Catch::Contains("quoted"));
}

TEST_CASE("tokens: fallback metadata -> content_words when no metadata word occurs") {
  const auto p = star::test::open_prompt();
  auto options = with_rule(selection_rule::metadata);
  options.metadata = {{"giraffe", "purple", 4}};
  const auto got = select(p, options);
  CHECK(got.rule_used == selection_rule::content_words);
  CHECK_THAT(got.fallback_reason, Catch::Contains("metadata") && Catch::Contains("content_words"));
  options.metadata = {};
  CHECK(select(p, options).rule_used == selection_rule::content_words);
}

TEST_CASE("tokens: fallback explicit -> content_words when the spans cover no token") {
  const auto p = star::test::open_prompt();
  auto options = with_rule(selection_rule::explicit_spans);
  options.explicit_spans = {{2, 3}, {12, 12}};  // a space between tokens; an empty range
  const auto got = select(p, options);
  CHECK(got.rule_used == selection_rule::content_words);
  CHECK_THAT(got.fallback_reason, Catch::Contains("explicit") &&
                                      Catch::Contains("overlap no non-special token"));
  options.explicit_spans = {};
  CHECK_THAT(select(p, options).fallback_reason, Catch::Contains("explicit"));
}

TEST_CASE("tokens: fallback to uniform when every word is a stop word") {
  const auto p = star::test::make_tokenized("a photo of the", {"a", "photo", "of", "the"},
                                            {"a", "pho", "to", "of", "the"});
  const auto direct = select(p, with_rule(selection_rule::content_words));
  CHECK(direct.uniform());
  CHECK_THAT(direct.fallback_reason, Catch::Contains("content_words") &&
                                         Catch::Contains("stop word") &&
                                         Catch::Contains("uniform"));
  std::vector<std::pair<std::int64_t, double>> expected;
  for (std::int64_t j = 1; j <= 4; ++j) expected.push_back({j, 1.0 / 9});
  for (std::int64_t j = 0; j <= 4; ++j) expected.push_back({t5_offset + j, 1.0 / 9});
  star::test::require_close(direct.weights, weights_with(expected), 1e-15);

  const auto chained = select(p, with_rule(selection_rule::quoted));
  CHECK(chained.uniform());
  CHECK_THAT(chained.fallback_reason, Catch::Contains("quoted") &&
                                          Catch::Contains("content_words") &&
                                          Catch::Contains("uniform"));
}

TEST_CASE("tokens: an empty prompt is uniform with all-zero weights") {
  const auto p = star::test::make_tokenized("", {}, {});
  const auto got = select(p, with_rule(selection_rule::content_words));
  CHECK(got.uniform());
  CHECK_FALSE(got.fallback_reason.empty());
  CHECK(got.weights == std::vector<double>(text_length, 0.0));
}

TEST_CASE("tokens: weights sum to 1, are >= 0 and vanish on special tokens (random)") {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    INFO("seed " << seed);
    const auto p = star::test::random_tokenized(4 + seed % 37, seed);
    INFO("prompt " << p.prompt);
    std::vector<star::token_selection_options> all_options;
    for (const auto rule : {selection_rule::quoted, selection_rule::content_words,
                            selection_rule::metadata, selection_rule::explicit_spans,
                            selection_rule::uniform})
      all_options.push_back(with_rule(rule));
    all_options[2].metadata = {{"dog", "red", 2}, {"umbrella", "blue", 3}};
    all_options[3].explicit_words = {"cat", "neon cafe"};
    all_options[3].explicit_spans = {{0, static_cast<std::int64_t>(p.prompt.size() / 3)}};
    const auto specials = special_positions(p);
    for (const auto& options : all_options) {
      INFO("rule " << star::to_string(options.rule));
      const auto got = select(p, options);
      REQUIRE(got.weights.size() == text_length);
      REQUIRE(std::accumulate(got.weights.begin(), got.weights.end(), 0.0) ==
              Approx(1.0).margin(1e-12));
      for (const double w : got.weights) REQUIRE(w >= 0.0);
      for (const std::int64_t j : specials)
        REQUIRE(got.weights[static_cast<std::size_t>(j)] == 0.0);
      REQUIRE((got.rule_used != options.rule) == !got.fallback_reason.empty());
      REQUIRE(got.selected_words.empty() == got.uniform());
    }
  }
}

TEST_CASE("tokens: token positions outside their segment are a shape_error") {
  auto p = star::test::ocr_prompt();
  p.tokenizations[0].tokens[3].position = 77;
  REQUIRE_THROWS_AS(select(p, {}), star::shape_error);
  REQUIRE_THROWS_WITH(select(p, {}), Catch::Contains("tokenizations[0].tokens[3].position") &&
                                         Catch::Contains("77"));
  p = star::test::ocr_prompt();
  p.tokenizations[1].tokens[0].position = -1;
  REQUIRE_THROWS_WITH(select(p, {}), Catch::Contains("tokenizations[1].tokens[0].position"));
}

TEST_CASE("tokens: byte offsets outside the prompt or reversed are a value_error") {
  auto p = star::test::ocr_prompt();
  p.tokenizations[1].tokens[2].char_end = 1000;
  REQUIRE_THROWS_AS(select(p, {}), star::value_error);
  REQUIRE_THROWS_WITH(select(p, {}), Catch::Contains("tokenizations[1].tokens[2]") &&
                                         Catch::Contains("1000"));
  p = star::test::ocr_prompt();
  p.tokenizations[0].tokens[2].char_begin = 9;
  p.tokenizations[0].tokens[2].char_end = 4;
  REQUIRE_THROWS_AS(select(p, {}), star::value_error);
  REQUIRE_THROWS_WITH(select(p, {}), Catch::Contains("tokenizations[0].tokens[2]"));
  p = star::test::ocr_prompt();
  p.tokenizations[0].tokens[1].char_begin = -2;
  REQUIRE_THROWS_AS(select(p, {}), star::value_error);
}

TEST_CASE("tokens: unknown or repeated segments and repeated positions are a value_error") {
  auto p = star::test::ocr_prompt();
  p.tokenizations[1].segment = "t5xxl";
  REQUIRE_THROWS_AS(select(p, {}), star::value_error);
  REQUIRE_THROWS_WITH(select(p, {}), Catch::Contains("tokenizations[1].segment") &&
                                         Catch::Contains("t5xxl") && Catch::Contains("clip"));
  p = star::test::ocr_prompt();
  p.tokenizations[1].segment = "clip";
  REQUIRE_THROWS_AS(select(p, {}), star::value_error);
  REQUIRE_THROWS_WITH(select(p, {}), Catch::Contains("twice"));
  p = star::test::ocr_prompt();
  p.tokenizations[0].tokens[4].position = 3;
  REQUIRE_THROWS_WITH(select(p, {}), Catch::Contains("tokenizations[0].tokens[4].position"));
}

TEST_CASE("tokens: bad options and rule inputs name the field") {
  const auto p = star::test::open_prompt();
  auto options = with_rule(selection_rule::content_words);
  options.top_k = 0;
  REQUIRE_THROWS_AS(select(p, options), star::option_error);
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("top_k"));
  options = with_rule(static_cast<selection_rule>(42));
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("rule"));
  options = with_rule(selection_rule::attention_topk);  // needs the maps overload
  REQUIRE_THROWS_AS(select(p, options), star::option_error);
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("rule") &&
                                              Catch::Contains("attention_maps"));

  options = with_rule(selection_rule::explicit_spans);
  options.explicit_spans = {{0, 2}, {40, 60}};
  REQUIRE_THROWS_AS(select(p, options), star::value_error);
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("explicit_spans[1]"));
  options.explicit_spans = {{5, 4}};
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("explicit_spans[0]"));
  options.explicit_spans = {};
  options.explicit_words = {"horse", " ,"};
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("explicit_words[1]"));

  options = with_rule(selection_rule::metadata);
  options.metadata = {{"horse", "", 0}, {"", "red", 0}};
  REQUIRE_THROWS_AS(select(p, options), star::value_error);
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("metadata[1].class_name"));
  options.metadata = {{"horse", "", -2}};
  REQUIRE_THROWS_WITH(select(p, options), Catch::Contains("metadata[0].count"));
}

TEST_CASE("tokens: words, case folding and plural matching") {
  using star::text::split_words;
  const std::string text = "Don't  t-shirt, caf\xc3\xa9 -x 42!";
  std::vector<std::string> words;
  for (const auto w : split_words(text)) words.emplace_back(star::text::substring(text, w));
  CHECK(words == std::vector<std::string>{"Don't", "t-shirt", "caf\xc3\xa9", "x", "42"});
  CHECK(star::text::ascii_lower("RED Cat\xc3\x89") == "red cat\xc3\x89");
  CHECK(star::text::same_word_or_plural("cats", "cat"));
  CHECK(star::text::same_word_or_plural("box", "boxes"));
  CHECK(star::text::same_word_or_plural("puppies", "puppy"));
  CHECK_FALSE(star::text::same_word_or_plural("cart", "cat"));
  CHECK_FALSE(star::text::same_word_or_plural("catss", "cat"));
}
