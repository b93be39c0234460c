// The attention_topk selection rule over every backend: the normalised spatial entropy, the
// choice of the k most focused non-special tokens, its mapping to words across segments, its
// fallback, and its rejected inputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "star/tokens/attention_topk.hpp"
#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/random.hpp"
#include "test_token_selection_fixtures.hpp"

using star::selection_rule;
using star::test::t5_offset;

namespace {

constexpr std::int64_t text_length = 333;
constexpr std::int64_t image_tokens = 4;  // a 2 x 2 grid

using map_rows = std::vector<std::pair<std::int64_t, std::vector<double>>>;

/// [L, N] maps: every row diffuse (entropy 1) except the given rows.
std::vector<double> maps_with(const map_rows& rows) {
  std::vector<double> maps(text_length * image_tokens, 1.0);
  for (const auto& [j, row] : rows)
    for (std::int64_t n = 0; n < image_tokens; ++n)
      maps[static_cast<std::size_t>(j * image_tokens + n)] = row[static_cast<std::size_t>(n)];
  return maps;
}

/// The open prompt's maps: CLIP BOS (special) and "riding" (no mass) would win if they were
/// allowed; then CLIP "moon" (entropy 0), T5 "horse", T5 "astro", CLIP ",".
std::vector<double> open_prompt_maps() {
  return maps_with({{0, {5, 0, 0, 0}},
                    {3, {0, 0, 0, 0}},
                    {8, {2, 0, 0, 0}},
                    {t5_offset + 5, {4, 1, 0, 0}},
                    {t5_offset + 1, {3, 3, 1, 0}},
                    {9, {3, 3, 3, 0}}});
}

star::token_selection_options topk(std::int64_t k) {
  star::token_selection_options options;
  options.rule = selection_rule::attention_topk;
  options.top_k = k;
  return options;
}

std::vector<double> weights_with(const std::vector<std::pair<std::int64_t, double>>& entries) {
  std::vector<double> w(text_length, 0.0);
  for (const auto& [j, value] : entries) w[static_cast<std::size_t>(j)] += value;
  return w;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("tokens: normalised spatial entropy matches a host formula",
                        "[tokens]", star::test::all_backends) {
  TestType be{};
  const std::uint64_t seed = 5;
  INFO("seed " << seed);
  auto values = star::test::uniform(6 * 9, seed, 0.0, 1.0);
  for (std::size_t n = 0; n < 9; ++n) values[9 + n] = n == 4 ? 2.5 : 0.0;  // a delta row
  for (std::size_t n = 0; n < 9; ++n) values[18 + n] = 0.5;                // a flat row
  const auto maps = be.from_host(values, {6, 9});                          // [L, N]
  const auto entropy = star::normalized_spatial_entropy(be, maps);         // [L]
  REQUIRE(be.shape_of(entropy) == star::shape{6});
  std::vector<double> expected;
  for (std::size_t j = 0; j < 6; ++j) {
    double mass = 0.0, h = 0.0;
    for (std::size_t n = 0; n < 9; ++n) mass += values[j * 9 + n];
    for (std::size_t n = 0; n < 9; ++n) {
      const double p = values[j * 9 + n] / mass;
      if (p > 0) h -= p * std::log(p);
    }
    expected.push_back(h / std::log(9.0));
  }
  CHECK(expected[1] == 0.0);
  CHECK(expected[2] == Approx(1.0));
  star::test::require_close(be.to_host(entropy), expected,
                            10 * star::test::tolerance<TestType>::value);
}

TEMPLATE_LIST_TEST_CASE("tokens: attention_topk picks the most focused non-special tokens and "
                        "weights their words in every segment",
                        "[tokens]", star::test::all_backends) {
  TestType be{};
  const auto p = star::test::open_prompt();
  const auto layout = star::test::sd3_layout();
  const auto maps = be.from_host(open_prompt_maps(), {text_length, image_tokens});  // [L, N]

  auto got = star::select_core_tokens(be, maps, p.prompt, p.tokenizations, layout, topk(2));
  CHECK(got.rule_used == selection_rule::attention_topk);
  CHECK(got.fallback_reason.empty());
  CHECK(got.selected_words == std::vector<std::string>{"horse", "moon"});
  // moon: CLIP 8, T5 8; horse: CLIP 5, T5 5; 1/2 per word over its two tokens.
  star::test::require_close(got.weights,
                            weights_with({{8, 0.25}, {t5_offset + 8, 0.25}, {5, 0.25},
                                          {t5_offset + 5, 0.25}}),
                            1e-15);

  // k = 3 adds T5 "astro", which stands for the word "astronaut" (CLIP 2, T5 1 and 2).
  got = star::select_core_tokens(be, maps, p.prompt, p.tokenizations, layout, topk(3));
  CHECK(got.selected_words == std::vector<std::string>{"astronaut", "horse", "moon"});
  star::test::require_close(
      got.weights,
      weights_with({{2, 1.0 / 9}, {t5_offset + 1, 1.0 / 9}, {t5_offset + 2, 1.0 / 9},
                    {5, 1.0 / 6}, {t5_offset + 5, 1.0 / 6}, {8, 1.0 / 6},
                    {t5_offset + 8, 1.0 / 6}}),
      1e-15);

  // k = 4 adds the CLIP ",": it overlaps no word, so its own byte range is the unit and the
  // T5 "," gets the same share.
  got = star::select_core_tokens(be, maps, p.prompt, p.tokenizations, layout, topk(4));
  CHECK(got.selected_words == std::vector<std::string>{"astronaut", "horse", "moon", ","});
  CHECK(got.weights[9] == Approx(0.125));
  CHECK(got.weights[t5_offset + 9] == Approx(0.125));
  CHECK(got.weights[0] == 0.0);  // BOS: special, however focused
  CHECK(got.weights[3] == 0.0);  // "riding": zero-mass map
}

TEMPLATE_LIST_TEST_CASE("tokens: attention_topk with k above the candidates takes them all",
                        "[tokens]", star::test::all_backends) {
  TestType be{};
  const auto p = star::test::ocr_prompt();
  const auto maps = be.from_host(maps_with({}), {text_length, image_tokens});  // [L, N]
  const auto got = star::select_core_tokens(be, maps, p.prompt, p.tokenizations,
                                            star::test::sd3_layout(), topk(1000));
  CHECK(got.rule_used == selection_rule::attention_topk);
  CHECK(got.selected_words == std::vector<std::string>{"A", "sign", "that", "says", "\"",
                                                       "Hello", "World", "\""});
  double total = 0.0;
  for (const double w : got.weights) total += w;
  CHECK(total == Approx(1.0).margin(1e-12));
}

TEMPLATE_LIST_TEST_CASE("tokens: attention_topk falls back to content_words without mass",
                        "[tokens]", star::test::all_backends) {
  TestType be{};
  const auto p = star::test::open_prompt();
  const auto layout = star::test::sd3_layout();
  const auto maps = be.full({text_length, image_tokens}, 0.0);  // [L, N]
  const auto got = star::select_core_tokens(be, maps, p.prompt, p.tokenizations, layout, topk(3));
  CHECK(got.rule_used == selection_rule::content_words);
  CHECK_THAT(got.fallback_reason, Catch::Contains("attention_topk") &&
                                      Catch::Contains("content_words"));
  star::token_selection_options content;
  CHECK(got.weights ==
        star::select_core_tokens(p.prompt, p.tokenizations, layout, content).weights);
  // The other rules ignore the maps and behave as the host overload.
  content.rule = selection_rule::quoted;
  const auto quoted =
      star::select_core_tokens(be, maps, p.prompt, p.tokenizations, layout, content);
  CHECK(quoted.fallback_reason ==
        star::select_core_tokens(p.prompt, p.tokenizations, layout, content).fallback_reason);
}

TEMPLATE_LIST_TEST_CASE("tokens: attention_topk skips tokens that cover no prompt byte before "
                        "taking the top k",
                        "[tokens]", star::test::all_backends) {
  TestType be{};
  const auto p = star::test::geneval_prompt();  // T5 8 is a non-special token covering no byte
  const auto layout = star::test::sd3_layout();
  // T5 8 is the most focused map (entropy 0), CLIP "cat" the next (4 1 0 0).
  const auto maps = be.from_host(maps_with({{t5_offset + 8, {5, 0, 0, 0}}, {6, {4, 1, 0, 0}}}),
                                 {text_length, image_tokens});  // [L, N]
  const auto got = star::select_core_tokens(be, maps, p.prompt, p.tokenizations, layout, topk(1));
  CHECK(got.rule_used == selection_rule::attention_topk);
  CHECK(got.fallback_reason.empty());
  CHECK(got.selected_words == std::vector<std::string>{"cat"});
  // "cat": CLIP 6, T5 "c" 5 and "at" 6.
  star::test::require_close(
      got.weights,
      weights_with({{6, 1.0 / 3}, {t5_offset + 5, 1.0 / 3}, {t5_offset + 6, 1.0 / 3}}), 1e-15);

  // Only T5 8 has mass: the fallback's reason says so truly.
  std::vector<double> only_empty(text_length * image_tokens, 0.0);
  only_empty[(t5_offset + 8) * image_tokens] = 1.0;
  const auto fallback = star::select_core_tokens(
      be, be.from_host(only_empty, {text_length, image_tokens}), p.prompt, p.tokenizations,
      layout, topk(1));  // maps [L, N]
  CHECK(fallback.rule_used == selection_rule::content_words);
  CHECK_THAT(fallback.fallback_reason,
             Catch::StartsWith("attention_topk: no non-special token that covers a prompt byte "
                               "has an attention map with non-zero mass"));
}

TEMPLATE_LIST_TEST_CASE("tokens: attention_topk rejects bad k and bad maps", "[tokens]",
                        star::test::all_backends) {
  TestType be{};
  const auto p = star::test::open_prompt();
  const auto layout = star::test::sd3_layout();
  const auto good = open_prompt_maps();
  const auto maps = be.from_host(good, {text_length, image_tokens});  // [L, N]
  const auto call = [&](const typename TestType::tensor& m, std::int64_t k) {
    return star::select_core_tokens(be, m, p.prompt, p.tokenizations, layout, topk(k));
  };
  REQUIRE_THROWS_AS(call(maps, 0), star::option_error);
  REQUIRE_THROWS_WITH(call(maps, -3), Catch::Contains("top_k"));

  const auto wide = be.full({text_length, 5}, 1.0);  // [L, N + 1]
  REQUIRE_THROWS_AS(call(wide, 2), star::shape_error);
  REQUIRE_THROWS_WITH(call(wide, 2), Catch::Contains("attention_maps") &&
                                         Catch::Contains("[333, 5]") &&
                                         Catch::Contains("[333, 4]"));
  const auto flat = be.full({text_length * image_tokens}, 1.0);  // [L * N]
  REQUIRE_THROWS_WITH(call(flat, 2), Catch::Contains("attention_maps"));

  auto negative = good;
  negative[17] = -0.5;
  REQUIRE_THROWS_AS(call(be.from_host(negative, {text_length, image_tokens}), 2),
                    star::value_error);
  REQUIRE_THROWS_WITH(call(be.from_host(negative, {text_length, image_tokens}), 2),
                      Catch::Contains("attention_maps"));
  auto not_finite = good;
  not_finite[40] = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_AS(call(be.from_host(not_finite, {text_length, image_tokens}), 2),
                    star::value_error);
  not_finite[40] = std::numeric_limits<double>::infinity();
  REQUIRE_THROWS_WITH(call(be.from_host(not_finite, {text_length, image_tokens}), 2),
                      Catch::Contains("attention_maps"));

  const auto one_pixel = be.full({3, 1}, 1.0);  // [L, 1]
  REQUIRE_THROWS_AS(star::normalized_spatial_entropy(be, one_pixel), star::shape_error);
  REQUIRE_THROWS_WITH(star::normalized_spatial_entropy(be, one_pixel),
                      Catch::Contains("attention_maps") && Catch::Contains("N >= 2"));
}
