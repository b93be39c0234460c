// Every bad input of attention-map extraction is rejected with a star exception that names
// the argument (and prints the shapes for shape errors).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "star/attention/all.hpp"
#include "support/backends.hpp"
#include "support/random.hpp"

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double infinity = std::numeric_limits<double>::infinity();

}  // namespace

TEMPLATE_LIST_TEST_CASE("attention extraction rejects bad q, k and layouts", "[attention][errors]",
                        star::test::all_backends) {
  const TestType be{};
  const star::token_layout layout{2, 2, {{"clip", 2}, {"t5", 1}}, true};  // N = 4, L = 3, T = 7
  const auto q = be.full({1, 2, 7, 4}, 0.1);                              // [B, H, T, D]
  const auto k = be.full({1, 2, 7, 4}, 0.2);                              // [B, H, T, D]
  const std::vector<std::int64_t> columns{0, 2};

  const auto rank3 = be.full({2, 7, 4}, 0.1);  // [H, T, D]
  REQUIRE_THROWS_AS(star::image_row_lse(be, rank3, k, layout), star::shape_error);
  REQUIRE_THROWS_WITH(
      star::image_row_lse(be, rank3, k, layout),
      Catch::StartsWith("q:") && Catch::Contains("[B, H, T, D]") && Catch::Contains("[2, 7, 4]"));

  const auto wrong_tokens = be.full({1, 2, 8, 4}, 0.1);  // [B, H, T + 1, D]
  REQUIRE_THROWS_AS(star::attention_probabilities(be, wrong_tokens, wrong_tokens, layout, columns),
                    star::shape_error);
  REQUIRE_THROWS_WITH(
      star::attention_probabilities(be, wrong_tokens, wrong_tokens, layout, columns),
      Catch::StartsWith("q:") && Catch::Contains("total_tokens") &&
          Catch::Contains("[1, 2, 8, 4]"));

  const auto empty_heads = be.full({1, 0, 7, 4}, 0.1);  // [B, 0, T, D]
  REQUIRE_THROWS_AS(star::image_row_lse(be, empty_heads, empty_heads, layout), star::shape_error);

  const auto k_other = be.full({1, 2, 7, 3}, 0.2);  // [B, H, T, D - 1]
  REQUIRE_THROWS_AS(star::full_attention_image_rows(be, q, k_other, layout), star::shape_error);
  REQUIRE_THROWS_WITH(star::full_attention_image_rows(be, q, k_other, layout),
                      Catch::StartsWith("k:") && Catch::Contains("[1, 2, 7, 4]") &&
                          Catch::Contains("[1, 2, 7, 3]"));

  const star::token_layout no_text{2, 2, {}, true};
  REQUIRE_THROWS_AS(star::image_row_lse(be, q, k, no_text), star::option_error);
  REQUIRE_THROWS_WITH(star::image_row_lse(be, q, k, no_text), Catch::Contains("text_segments"));
}

TEMPLATE_LIST_TEST_CASE("attention extraction rejects bad columns, lse and options",
                        "[attention][errors]", star::test::all_backends) {
  const TestType be{};
  const star::token_layout layout{2, 2, {{"clip", 2}, {"t5", 1}}, false};  // N = 4, L = 3, T = 7
  const auto q = be.full({1, 2, 7, 4}, 0.1);                               // [B, H, T, D]
  const auto k = be.full({1, 2, 7, 4}, 0.2);                               // [B, H, T, D]
  const std::vector<std::int64_t> columns{0, 2};

  const std::vector<std::int64_t> out_of_range{0, 3};
  REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, out_of_range),
                    star::shape_error);
  REQUIRE_THROWS_WITH(star::attention_probabilities(be, q, k, layout, out_of_range),
                      Catch::Contains("columns") && Catch::Contains("3"));
  const std::vector<std::int64_t> negative{-1};
  REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, negative), star::shape_error);
  const std::vector<std::int64_t> none;
  REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, none), star::value_error);
  REQUIRE_THROWS_WITH(star::attention_probabilities(be, q, k, layout, none),
                      Catch::Contains("columns") && Catch::Contains("empty"));

  const auto lse_wrong = be.full({1, 2, 7}, 0.0);  // [B, H, T] instead of [B, H, N]
  REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, columns, lse_wrong),
                    star::shape_error);
  REQUIRE_THROWS_WITH(
      star::attention_probabilities(be, q, k, layout, columns, lse_wrong),
      Catch::Contains("lse") && Catch::Contains("[1, 2, 4]") && Catch::Contains("[1, 2, 7]"));
  for (const double bad : {not_a_number, infinity, -infinity}) {
    const auto lse_bad =
        be.from_host(std::vector<double>{0, 0, 0, bad, 0, 0, 0, 0}, {1, 2, 4});  // [B, H, N]
    REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, columns, lse_bad),
                      star::value_error);
    REQUIRE_THROWS_WITH(star::attention_probabilities(be, q, k, layout, columns, lse_bad),
                        Catch::Contains("lse"));
  }

  star::attention_options to_image;
  to_image.direction = star::attention_direction::text_to_image;
  const auto lse = star::image_row_lse(be, q, k, layout);  // [B, H, N]
  REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, columns, lse, to_image),
                    star::option_error);
  REQUIRE_THROWS_WITH(star::attention_probabilities(be, q, k, layout, columns, lse, to_image),
                      Catch::Contains("direction"));
  REQUIRE_THROWS_AS(star::full_attention_image_to_text(be, q, k, layout, to_image),
                    star::option_error);

  star::attention_options zero_chunk;
  zero_chunk.lse_key_chunk = 0;
  REQUIRE_THROWS_AS(star::image_row_lse(be, q, k, layout, zero_chunk), star::option_error);
  REQUIRE_THROWS_WITH(star::image_row_lse(be, q, k, layout, zero_chunk),
                      Catch::Contains("lse_key_chunk"));
  for (const double bad : {0.0, -1.0, not_a_number, infinity}) {
    star::attention_options bad_scale;
    bad_scale.scale = bad;
    REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, columns, bad_scale),
                      star::option_error);
    REQUIRE_THROWS_WITH(star::attention_probabilities(be, q, k, layout, columns, bad_scale),
                        Catch::Contains("scale"));
  }
  star::attention_options bad_direction;
  bad_direction.direction = static_cast<star::attention_direction>(7);
  REQUIRE_THROWS_WITH(star::attention_probabilities(be, q, k, layout, columns, bad_direction),
                      Catch::Contains("direction"));
}

TEST_CASE("select_text_columns rejects bad weight vectors", "[attention][errors]") {
  const star::token_layout layout{2, 2, {{"clip", 2}, {"t5", 2}}, true};  // L = 4
  REQUIRE_THROWS_AS(star::select_text_columns(std::vector<double>{1, 0, 0}, layout),
                    star::shape_error);
  REQUIRE_THROWS_WITH(star::select_text_columns(std::vector<double>{1, 0, 0}, layout),
                      Catch::StartsWith("w:") && Catch::Contains("[4]") && Catch::Contains("[3]"));
  for (const double bad : {not_a_number, infinity, -0.5}) {
    REQUIRE_THROWS_AS(star::select_text_columns(std::vector<double>{1, bad, 0, 0}, layout),
                      star::value_error);
    REQUIRE_THROWS_WITH(star::select_text_columns(std::vector<double>{1, bad, 0, 0}, layout),
                        Catch::StartsWith("w:") && Catch::Contains("entry 1"));
  }
  REQUIRE_THROWS_AS(star::select_text_columns(std::vector<double>(4, 0.0), layout),
                    star::value_error);
}

TEMPLATE_LIST_TEST_CASE("relevance maps, the accumulator and smoothing reject bad inputs",
                        "[attention][errors]", star::test::all_backends) {
  const TestType be{};
  const auto probs = be.full({2, 3, 4, 2}, 0.25);  // [B, H, N, S]

  REQUIRE_THROWS_AS(star::relevance_map(be, be.full({3, 4, 2}, 0.25), std::vector<double>{1, 1}),
                    star::shape_error);
  REQUIRE_THROWS_WITH(star::relevance_map(be, be.full({3, 4, 2}, 0.25), std::vector<double>{1, 1}),
                      Catch::Contains("probabilities") && Catch::Contains("[3, 4, 2]"));
  REQUIRE_THROWS_AS(star::relevance_map(be, probs, std::vector<double>{1, 1, 1}),
                    star::shape_error);
  REQUIRE_THROWS_WITH(star::relevance_map(be, probs, std::vector<double>{1, 1, 1}),
                      Catch::Contains("weights") && Catch::Contains("[2, 3, 4, 2]"));
  for (const double bad : {not_a_number, infinity, -1.0}) {
    REQUIRE_THROWS_AS(star::relevance_map(be, probs, std::vector<double>{1, bad}),
                      star::value_error);
    REQUIRE_THROWS_WITH(star::relevance_map(be, probs, std::vector<double>{1, bad}),
                        Catch::Contains("weights"));
  }

  star::relevance_accumulator<TestType> empty(be);
  REQUIRE(empty.blocks_added() == 0);
  REQUIRE_THROWS_AS(empty.result(), star::value_error);
  REQUIRE_THROWS_WITH(empty.result(), Catch::Contains("no block"));
  star::relevance_accumulator<TestType> filtered(be, std::set<std::int64_t>{2});
  REQUIRE_FALSE(filtered.add(0, be.full({2, 4}, 1.0)));
  REQUIRE_THROWS_WITH(filtered.result(), Catch::Contains("block_filter"));
  REQUIRE_THROWS_AS(star::relevance_accumulator<TestType>(be, std::set<std::int64_t>{}),
                    star::option_error);
  REQUIRE_THROWS_WITH(star::relevance_accumulator<TestType>(be, std::set<std::int64_t>{-1, 2}),
                      Catch::Contains("block_filter"));

  star::relevance_accumulator<TestType> accumulator(be);
  REQUIRE_THROWS_AS(accumulator.add(-1, be.full({2, 4}, 1.0)), star::value_error);
  REQUIRE_THROWS_WITH(accumulator.add(0, be.full({2, 4, 1}, 1.0)),
                      Catch::Contains("map") && Catch::Contains("[2, 4, 1]"));
  REQUIRE(accumulator.add(0, be.full({2, 4}, 1.0)));
  REQUIRE_THROWS_AS(accumulator.add(1, be.full({2, 5}, 1.0)), star::shape_error);
  REQUIRE_THROWS_WITH(accumulator.add(1, be.full({2, 5}, 1.0)), Catch::Contains("map") &&
                                                                    Catch::Contains("[2, 4]") &&
                                                                    Catch::Contains("[2, 5]"));
  REQUIRE(accumulator.blocks_added() == 1);
  REQUIRE(accumulator.add(1, be.full({2, 4}, not_a_number)));
  REQUIRE_THROWS_AS(accumulator.result(), star::value_error);
  REQUIRE_THROWS_WITH(accumulator.result(), Catch::Contains("result"));

  const star::token_layout layout{2, 3, {{"t5", 2}}, true};  // N = 6
  const auto map = be.full({2, 6}, 1.0);                     // [B, N]
  for (const double bad : {-0.5, not_a_number, infinity}) {
    REQUIRE_THROWS_AS(star::smooth_on_grid(be, map, layout, bad), star::option_error);
    REQUIRE_THROWS_WITH(star::smooth_on_grid(be, map, layout, bad),
                        Catch::Contains("smooth_sigma"));
  }
  REQUIRE_THROWS_AS(star::smooth_on_grid(be, be.full({2, 5}, 1.0), layout, 1.0), star::shape_error);
  REQUIRE_THROWS_WITH(
      star::smooth_on_grid(be, be.full({2, 5}, 1.0), layout, 1.0),
      Catch::Contains("map") && Catch::Contains("[2, 5]") && Catch::Contains("[2, 6]"));
  REQUIRE_THROWS_AS(star::smooth_on_grid(be, be.full({12}, 1.0), layout, 1.0), star::shape_error);
  REQUIRE_THROWS_AS(star::gaussian_blur_matrix(0, 1.0), star::option_error);
  REQUIRE_THROWS_WITH(star::gaussian_blur_matrix(4, 0.0), Catch::Contains("sigma"));
}

TEMPLATE_LIST_TEST_CASE("image_to_text_probabilities rejects bad rows, lse and options",
                        "[attention][errors]", star::test::all_backends) {
  const TestType be{};
  const auto q_image = be.full({1, 2, 4, 3}, 0.1);     // [B, H, N, D]
  const auto k_selected = be.full({1, 2, 2, 3}, 0.2);  // [B, H, S, D]
  const auto lse = be.full({1, 2, 4}, 1.0);            // [B, H, N]

  const auto rank3 = be.full({2, 4, 3}, 0.1);  // [H, N, D]
  REQUIRE_THROWS_AS(star::image_to_text_probabilities(be, rank3, k_selected, lse),
                    star::shape_error);
  REQUIRE_THROWS_WITH(star::image_to_text_probabilities(be, rank3, k_selected, lse),
                      Catch::StartsWith("q_image:") && Catch::Contains("[2, 4, 3]"));
  const auto no_image = be.full({1, 2, 0, 3}, 0.1);  // [B, H, 0, D]
  REQUIRE_THROWS_WITH(star::image_to_text_probabilities(be, no_image, k_selected,
                                                        be.full({1, 2, 0}, 1.0)),
                      Catch::StartsWith("q_image:") && Catch::Contains("[1, 2, 0, 3]"));
  for (const star::shape& bad : {star::shape{1, 2, 2, 4}, star::shape{2, 2, 2, 3},
                                 star::shape{1, 1, 2, 3}, star::shape{1, 2, 0, 3}}) {
    INFO("k_selected " << star::to_string(bad));
    REQUIRE_THROWS_AS(star::image_to_text_probabilities(be, q_image, be.full(bad, 0.2), lse),
                      star::shape_error);
    REQUIRE_THROWS_WITH(star::image_to_text_probabilities(be, q_image, be.full(bad, 0.2), lse),
                        Catch::StartsWith("k_selected:") && Catch::Contains("[1, 2, 4, 3]") &&
                            Catch::Contains(star::to_string(bad)));
  }
  REQUIRE_THROWS_WITH(star::image_to_text_probabilities(be, q_image, be.full({2, 2, 3}, 0.2), lse),
                      Catch::StartsWith("k_selected:") && Catch::Contains("[B, H, S, D]"));
  REQUIRE_THROWS_AS(
      star::image_to_text_probabilities(be, q_image, k_selected, be.full({1, 2, 5}, 1.0)),
      star::shape_error);
  REQUIRE_THROWS_WITH(
      star::image_to_text_probabilities(be, q_image, k_selected, be.full({1, 2, 5}, 1.0)),
      Catch::StartsWith("lse:") && Catch::Contains("[1, 2, 4]") && Catch::Contains("[1, 2, 5]"));
  for (const double bad : {not_a_number, infinity, -infinity}) {
    const auto lse_bad =
        be.from_host(std::vector<double>{0, 0, 0, bad, 0, 0, 0, 0}, {1, 2, 4});  // [B, H, N]
    REQUIRE_THROWS_AS(star::image_to_text_probabilities(be, q_image, k_selected, lse_bad),
                      star::value_error);
    REQUIRE_THROWS_WITH(star::image_to_text_probabilities(be, q_image, k_selected, lse_bad),
                        Catch::StartsWith("lse:"));
  }
  const star::attention_options to_image{.direction = star::attention_direction::text_to_image};
  REQUIRE_THROWS_AS(star::image_to_text_probabilities(be, q_image, k_selected, lse, to_image),
                    star::option_error);
  REQUIRE_THROWS_WITH(star::image_to_text_probabilities(be, q_image, k_selected, lse, to_image),
                      Catch::Contains("direction"));
  const star::attention_options bad_scale{.scale = -1.0};
  REQUIRE_THROWS_WITH(star::image_to_text_probabilities(be, q_image, k_selected, lse, bad_scale),
                      Catch::Contains("scale"));
}

TEMPLATE_LIST_TEST_CASE("lse_relevance_accumulator rejects bad selections, options and rows",
                        "[attention][errors]", star::test::all_backends) {
  using accumulator = star::lse_relevance_accumulator<TestType>;
  const TestType be{};
  const star::token_layout layout{2, 2, {{"clip", 2}, {"t5", 1}}, true};  // N = 4, L = 3, T = 7
  const auto q = be.full({1, 2, 7, 4}, 0.1);                              // [B, H, T, D]
  const auto lse = be.full({1, 2, 4}, 1.0);                               // [B, H, N]

  REQUIRE_THROWS_AS(accumulator(be, {{}, {}}), star::value_error);
  REQUIRE_THROWS_WITH(accumulator(be, {{}, {}}), Catch::StartsWith("selection.indices:"));
  REQUIRE_THROWS_AS(accumulator(be, {{0, 1}, {1.0}}), star::shape_error);
  REQUIRE_THROWS_WITH(accumulator(be, {{0, 1}, {1.0}}),
                      Catch::StartsWith("selection.weights:") && Catch::Contains("[2]") &&
                          Catch::Contains("[1]"));
  for (const double bad : {not_a_number, infinity, -1.0}) {
    REQUIRE_THROWS_AS(accumulator(be, {{0, 1}, {1.0, bad}}), star::value_error);
    REQUIRE_THROWS_WITH(accumulator(be, {{0, 1}, {1.0, bad}}),
                        Catch::StartsWith("selection.weights:") && Catch::Contains("entry 1"));
  }
  const star::attention_options to_image{.direction = star::attention_direction::text_to_image};
  REQUIRE_THROWS_AS(accumulator(be, {{0}, {1.0}}, to_image), star::option_error);
  REQUIRE_THROWS_WITH(accumulator(be, {{0}, {1.0}}, to_image), Catch::Contains("direction"));
  REQUIRE_THROWS_WITH(accumulator(be, {{0}, {1.0}}, {.scale = 0.0}), Catch::Contains("scale"));
  REQUIRE_THROWS_WITH(accumulator(be, {{0}, {1.0}}, {}, std::set<std::int64_t>{}),
                      Catch::Contains("block_filter"));

  accumulator outside_text(be, {{0, 3}, {1.0, 1.0}});  // L = 3
  REQUIRE_THROWS_AS(outside_text.add(0, q, q, layout, lse), star::shape_error);
  REQUIRE_THROWS_WITH(outside_text.add(0, q, q, layout, lse),
                      Catch::Contains("selection.indices") && Catch::Contains("3"));
  accumulator two_columns(be, {{0, 2}, {1.0, 1.0}}, {}, std::set<std::int64_t>{0});
  REQUIRE_THROWS_AS(two_columns.add(-1, q, q, layout, lse), star::value_error);
  REQUIRE_THROWS_WITH(two_columns.add(0, be.full({1, 2, 8, 4}, 0.1), q, layout, lse),
                      Catch::StartsWith("q:") && Catch::Contains("[1, 2, 8, 4]"));
  REQUIRE_THROWS_WITH(two_columns.add(0, q, q, layout, be.full({1, 2, 7}, 1.0)),
                      Catch::StartsWith("lse:") && Catch::Contains("[1, 2, 7]"));
  const auto q_image = be.full({1, 2, 4, 4}, 0.1);  // [B, H, N, D]
  REQUIRE_THROWS_AS(two_columns.add_selected_rows(0, q_image, be.full({1, 2, 3, 4}, 0.1), lse),
                    star::shape_error);
  REQUIRE_THROWS_WITH(two_columns.add_selected_rows(0, q_image, be.full({1, 2, 3, 4}, 0.1), lse),
                      Catch::StartsWith("k_selected:") && Catch::Contains("S = 2") &&
                          Catch::Contains("[1, 2, 3, 4]"));
  REQUIRE_THROWS_WITH(two_columns.add_selected_rows(0, q_image, be.full({1, 2, 2, 3}, 0.1), lse),
                      Catch::StartsWith("k_selected:") && Catch::Contains("[1, 2, 2, 3]"));
  // A block outside the filter is skipped before any check.
  REQUIRE_FALSE(two_columns.add(1, be.full({1, 2, 8, 4}, 0.1), q, layout, lse));
  REQUIRE(two_columns.blocks_added() == 0);
}

TEMPLATE_LIST_TEST_CASE("a non-finite lse through lse_relevance_accumulator is a value_error at "
                        "result(), the public entries reject it at once",
                        "[attention][errors]", star::test::all_backends) {
  const TestType be{};
  const star::token_layout layout{2, 2, {{"clip", 2}, {"t5", 1}}, true};  // N = 4, L = 3, T = 7
  const star::text_selection selection{{0, 2}, {0.5, 1.0}};
  const auto q = be.from_host(star::test::normal(56, 5), {1, 2, 7, 4});  // [B, H, T, D]
  const auto k = be.from_host(star::test::normal(56, 6), {1, 2, 7, 4});  // [B, H, T, D]
  const auto lse = star::image_row_lse(be, q, k, layout);                // [B, H, N]
  for (const double bad : {not_a_number, infinity, -infinity}) {
    INFO("lse entry " << bad);
    auto host = be.to_host(lse);
    host[5] = bad;
    const auto lse_bad = be.from_host(host, {1, 2, 4});  // [B, H, N]

    star::lse_relevance_accumulator<TestType> accumulator(be, selection);
    REQUIRE(accumulator.add(0, q, k, layout, lse));
    REQUIRE_NOTHROW(accumulator.add(1, q, k, layout, lse_bad));  // no read-back per block
    REQUIRE(accumulator.add(2, q, k, layout, lse));
    REQUIRE(accumulator.blocks_added() == 3);
    REQUIRE_THROWS_AS(accumulator.result(), star::value_error);
    REQUIRE_THROWS_WITH(accumulator.result(),
                        Catch::Contains("relevance_accumulator.result") &&
                            Catch::Contains("NaN or Inf"));

    REQUIRE_THROWS_AS(star::attention_probabilities(be, q, k, layout, selection.indices, lse_bad),
                      star::value_error);
    REQUIRE_THROWS_AS(star::block_relevance(be, q, k, layout, selection, lse_bad),
                      star::value_error);
    REQUIRE_THROWS_WITH(star::block_relevance(be, q, k, layout, selection, lse_bad),
                        Catch::StartsWith("lse:"));
  }
  // The same blocks with a finite lse: a finite mean (the failure above is the lse's).
  star::lse_relevance_accumulator<TestType> accumulator(be, selection);
  for (std::int64_t block = 0; block < 3; ++block) accumulator.add(block, q, k, layout, lse);
  REQUIRE_NOTHROW(accumulator.result());
}
